"""scripts/reproduce_imaging.py: every row composes (with its λ option, when it searches one) on its section's operator
and budget."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

import reproduce_imaging as script
from tests.helpers import ROOT

OPERATORS = {"cs": "CompressiveSensing", "mri": "MRI", "deblur": "Deblur"}
ROWS = [(section, row) for section in script.setups() for row in script.rows(section, "outputs/imaging_denoiser.pt")]


@pytest.mark.parametrize(("section", "row"), ROWS, ids=[f"{section}: {row[0]}" for section, row in ROWS])
def test_every_row_composes_on_its_operator_with_its_budget(section, row):
    _, _, overrides, grid = row
    operator = section.rstrip("0123456789")
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        for lam in grid[:1] or (None,):  # an option that is no key of the config is refused
            cfg = compose("config", overrides=[*overrides, *([f"method.lam={lam}"] if lam is not None else [])])
            assert cfg.task.operator._target_.endswith(OPERATORS[operator])
            if "regime.fresh_data=true" in overrides:  # a spectrum row's budget (the experiments carry their own)
                crops = script.LEARNED_TV_CROPS if "method=learned_optimizer" in overrides else script.TRAINED_CROPS
                assert (cfg.task.n_train, cfg.method.optim.epochs) == (crops.get(operator, script.TRAINED_CROPS[operator]), 3)
