"""scripts/reproduce_ultrasound.py: every row composes, and ``--quick`` runs a grid row and a trained row end to end."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

import reproduce_ultrasound as script
from tests.helpers import ROOT


@pytest.mark.parametrize("row", script.all_rows(), ids=lambda row: f"{row[1]}: {row[2]}")
def test_every_row_composes_with_each_value_of_its_grid(row):
    _, _, _, overrides, grid = row
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        for index in range(max(map(len, grid.values()), default=1)):  # an option that is no key of the config is refused
            cfg = compose("config", overrides=[*overrides, *(f"{option}={values[min(index, len(values) - 1)]}" for option, values in grid.items())])
            assert cfg.task.name == overrides[0].split("=")[1]


def test_quick_runs_a_grid_row_and_a_trained_row_and_writes_nothing():
    results = ROOT / "docs" / "results"
    before = {p.name: p.stat().st_mtime for p in results.glob(f"{script.NAME}*")}
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "disabled"}
    match = ["SVD filter", "density 130/cm²: learned convolutional"]
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "reproduce_ultrasound.py"), "--quick", "--match", *match], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    svd = next(line for line in lines if line.startswith("| SVD filter"))
    assert "not run" not in svd and "(chose method.rank=" in svd
    unfolded = [line for line in lines if line.startswith("| learned convolutional ISTA (unfolded), 10 layers, lr on validation |")]
    assert len(unfolded) == len(script.DENSITIES) and sum("not run" in line for line in unfolded) == len(script.DENSITIES) - 1
    assert not any(line.startswith("* Weights: black box") for line in lines), "no black-box row ran"
    assert {p.name: p.stat().st_mtime for p in results.glob(f"{script.NAME}*")} == before
