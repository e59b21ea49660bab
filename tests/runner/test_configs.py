"""Every config composes and builds: a config that breaks fails here, not for a user."""

from __future__ import annotations

import pytest

from mbdl.run import build
from tests.helpers import CONFIGS, compose_config

SPECTRUM = sorted((p.parent.name, p.stem) for p in (CONFIGS / "spectrum").glob("*/*.yaml"))
EXPERIMENTS = sorted(p.stem for p in (CONFIGS / "experiment").glob("*.yaml"))


def test_every_spectrum_file_has_a_method_and_a_task():
    methods = {p.stem for p in (CONFIGS / "method").glob("*.yaml")}
    tasks = {p.stem for p in (CONFIGS / "task").glob("*.yaml")}
    for task, method in SPECTRUM:
        assert task in tasks and method in methods, (task, method)


@pytest.mark.parametrize(("task", "method"), SPECTRUM)
def test_every_task_method_pair_builds(task, method):
    _, built, _, _ = build(compose_config(f"task={task}", f"method={method}"))
    assert built.assumed is not None


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_builds(experiment, tmp_path):
    """An experiment that reads a trained PnP denoiser (``method.denoiser``, trained by the user) gets a small one."""
    cfg = compose_config(f"experiment={experiment}")
    if cfg.method.get("denoiser") is not None:
        from mbdl.methods.imaging import NoiseLevelDenoiser, save_denoiser

        save_denoiser(NoiseLevelDenoiser(4, 2), tmp_path / "denoiser.pt", {})
        cfg = compose_config(f"experiment={experiment}", f"method.denoiser={tmp_path / 'denoiser.pt'}")
    build(cfg)
