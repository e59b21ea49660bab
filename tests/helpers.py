"""Test helpers: compose configs with Hydra's compose API and run them in-process or from the command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"


def compose_config(*overrides: str) -> DictConfig:
    """The composed config of ``overrides``, as ``python -m mbdl`` would see it."""
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def run_config(output_dir: Path, *overrides: str) -> dict[str, Any]:
    """Run one experiment in-process (no logger, no progress bar) and return its record."""
    from mbdl.run import run

    cfg = compose_config("~logger", "trainer.enable_progress_bar=false", "threads=1", *overrides)
    return run(cfg, str(output_dir))


def run_cli(*args: str, outputs: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m mbdl ARGS`` in a subprocess writing under ``outputs``."""
    env = {**os.environ, "MBDL_OUTPUTS": str(outputs), "WANDB_MODE": "disabled"}
    return subprocess.run([sys.executable, "-m", "mbdl", *args], capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT)


def method_loss(method: Any, task: Any, data: dict, kind: str = "supervised") -> Any:
    """``method``'s training loss of ``data`` under the regime loss ``kind`` of ``task``."""
    from mbdl.training.module import regime_objective

    return method.loss(data["x"], regime_objective(task, data, kind))


def batch_loss(module: Any, data: dict) -> Any:
    """The training loss of ``data`` for an :class:`~mbdl.training.module.Experiment`'s method under its regime."""
    return module.method.loss(data["x"], module.objective(data))


def fit_steps(module: Any, data: dict, steps: int = 30, lr: float = 1e-2) -> tuple[float, float]:
    """The training loss of ``data`` before and after ``steps`` Adam steps on it."""
    import torch

    optimizer = torch.optim.Adam(module.method.parameters(), lr=lr)
    before = batch_loss(module, data).item()
    for _ in range(steps):
        optimizer.zero_grad()
        batch_loss(module, data).backward()
        optimizer.step()
    return before, batch_loss(module, data).item()
