"""Shared fixtures: compose configs with Hydra's compose API and run them in-process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"

# pytest-xdist runs two workers on two cores: one torch thread each (two threads per process
# under a busy neighbour run ~20x slower on this machine).
torch.set_num_threads(1)


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


@pytest.fixture
def outputs(tmp_path: Path) -> Path:
    return tmp_path / "outputs"
