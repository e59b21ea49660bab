"""Test helpers: compose configs with Hydra's compose API and run them in-process or from the command line; tiny
sweeps and the records they leave, a made-up sweep for `mbdl compare` and the dashboard, and a task whose true model is
poisoned (the contract tests)."""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig
from torch import nn

from mbdl.results.record import write_record
from mbdl.tasks.base import Task

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


# --- sweeps: tiny sparse-recovery jobs and the records they leave ---------------------------------------------

#: a tiny sparse-recovery problem and data set (task=sparse_recovery is the default task)
TINY = ("task.n=20", "task.m=30", "task.k=2", "task.n_train=64", "task.n_val=32", "task.n_test=32")
#: one epoch for any method (``++``: a method with nothing to train has no optim block)
ONE_EPOCH = "++method.optim.epochs=1"


def sweep_dir(outputs: Path) -> Path:
    """The one sweep directory under ``outputs``."""
    (found,) = (outputs / "sweeps").glob("*/*")
    return found


def job_lr(record: dict) -> float:
    """The learning rate a job of the failing sweep was given."""
    return float(next(o for o in record["overrides"] if o.startswith("method.optim.lr=")).split("=")[1])


# --- a made-up sweep for mbdl compare and the dashboard ----------------------------------------------------------

METHODS = {"model_based": (0, -12.0), "unfolded": (7505, -20.0)}
SIZES = (10, 100)
SEEDS = (0, 1, 2)
HOSTILE = "<img src=x onerror=alert(1)>"


def nmse(method: str, n_train: int, seed: int) -> float:
    """A made-up test NMSE: trained methods improve with data, every seed differs."""
    params, level = METHODS[method]
    return level - (3.0 * np.log10(n_train) if params else 0.0) + 0.5 * seed


def make_sweep(root: Path, snr_db: tuple[float, ...] = (10.0,)) -> list[dict]:
    """Records of a sweep method x regime.n_train x (task.snr_db) x seed, one failed job with a hostile error text."""
    records = []
    for job, (method, n_train, snr, seed) in enumerate((m, n, s, e) for m in METHODS for n in SIZES for s in snr_db for e in SEEDS):
        overrides = [f"method={method}", f"regime.n_train={n_train}", f"seed={seed}"] + ([f"task.snr_db={snr}"] if len(snr_db) > 1 else [])
        record = {
            "task": "sparse_recovery", "method": method, "regime": "supervised", "seed": seed, "overrides": overrides,
            "status": "ok", "primary_metric": "nmse_db", "test/nmse_db": nmse(method, n_train, seed) - snr, "test/support_f1": 0.5,
            "bound/nmse_db": -30.0 - snr + 0.1 * seed, "curve/nmse_db": [-1.0 - i for i in range(5)], "params": METHODS[method][0],
            "train_time_s": 0.1 * (seed + 1), "infer_ms_per_sample": 0.01,
        }
        write_record(root / f"{job}_{method}", record)
        records.append(record)
    failed = {"task": "sparse_recovery", "method": "unfolded", "regime": "supervised", "seed": 3, "status": "failed",
              "overrides": ["method=unfolded", f"regime.n_train={SIZES[0]}", "seed=3"] + ([f"task.snr_db={snr_db[0]}"] if len(snr_db) > 1 else []),
              "error": f"FloatingPointError: non-finite val loss {HOSTILE}"}
    write_record(root / "99_unfolded_failed", failed)
    return records


# --- the contract: a task whose true model is poisoned ------------------------------------------------------------

def poisoned(value: object) -> object:
    """A copy of ``value`` with every floating-point tensor in it replaced by NaNs (new objects: nothing shared is touched)."""
    if isinstance(value, torch.Tensor):
        return torch.full_like(value, math.nan) if value.is_floating_point() or value.is_complex() else value
    if isinstance(value, nn.Module):
        module = copy.deepcopy(value)
        for tensor in [*module.buffers(), *module.parameters()]:
            if tensor.is_floating_point() or tensor.is_complex():
                tensor.data = torch.full_like(tensor, math.nan)
        return module
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.replace(value, **{f.name: poisoned(getattr(value, f.name)) for f in dataclasses.fields(value) if f.init})
    return value


def poison_true_model(task: Task) -> None:
    """Replace everything the task holds but its assumed model with NaN-filled copies."""
    for name, value in list(vars(task).items()):
        if name != "assumed":
            setattr(task, name, poisoned(value))
