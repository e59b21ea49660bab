"""Multiruns end to end: joblib, submitit's local executor, Optuna, a failing job, resume, and ``mbdl compare`` on the result.

Each sweep is one subprocess (~6-8 s of imports each): six launches in all (joblib, compare, failing, resume, submitit, Optuna).
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from mbdl.results.compare import compare
from mbdl.results.record import read_records
from tests.helpers import CONFIGS, ONE_EPOCH, ROOT, TINY, job_lr, run_cli, sweep_dir

def test_joblib_sweep_in_parallel_workers_then_mbdl_compare(outputs, tmp_path):
    done = run_cli("-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "method=model_based,unfolded", "regime.n_train=16,64", "seed=0,1", *TINY, ONE_EPOCH, outputs=outputs)
    assert done.returncode == 0, done.stderr[-3000:]
    root = sweep_dir(outputs)
    records = read_records(root)
    assert len(records) == 8 and all(r["status"] == "ok" for r in records)
    assert len({r["run_dir"] for r in records}) == 8, "jobs started in the same second get their own directories"
    assert all(r["torch_threads"] == 1 for r in records), "threads=null means 1 per job in a multirun"
    assert done.stdout.count("[ok] sparse_recovery") == 8, "one line per finished job"
    assert "progress: 8/8 jobs done; " in done.stdout and done.stdout.count("progress: ") == 8, "the sweep's progress after every job"
    assert "sweep directory:" in done.stdout and "jobs failed" not in done.stdout
    assert "GPU available" in done.stderr and "][lightning" not in done.stdout + done.stderr, "Lightning's lines once, not again through Hydra's handler"

    done = run_cli("compare", str(root), "--out", str(tmp_path), outputs=tmp_path)
    assert done.returncode == 0, done.stderr
    with (tmp_path / "summary.csv").open() as f:
        rows = {(r["method"], r["regime.n_train"]): r for r in csv.DictReader(f)}
    assert set(rows) == {(m, n) for m in ("model_based", "unfolded") for n in ("16", "64")}
    for (method, n_train), row in rows.items():
        values = [r["test/nmse_db"] for r in records if r["method"] == method and f"regime.n_train={n_train}" in r["overrides"]]
        assert row["runs"] == "2" and float(row["test/nmse_db"]) == pytest.approx(np.mean(values))
        assert float(row["test/nmse_db_std"]) == pytest.approx(np.std(values, ddof=1))
    assert "8 runs, 4 groups" in done.stdout and (tmp_path / "dashboard.html").stat().st_size > 5000


def mbdl_offline(outputs: Path, *args: str) -> subprocess.CompletedProcess:
    """``python -m mbdl ARGS`` with W&B left to decide its mode: no key, no netrc, no WANDB_MODE (so: offline)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(MBDL_OUTPUTS=str(outputs), NETRC=str(outputs / "no-netrc"), WANDB_CONFIG_DIR=str(outputs / "wandb-config"))
    return subprocess.run([sys.executable, "-m", "mbdl", *args], capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)


def test_a_failing_job_with_offline_wandb_then_resume(outputs):
    """Two jobs, W&B offline (no API key anywhere): a sane learning rate, and one that makes the loss non-finite."""
    sweep = ("-m", "logger=[csv,wandb]", "method=unfolded", "method.optim.lr=1e-3,1e12", *TINY, "method.optim.epochs=3")
    done = mbdl_offline(outputs, *sweep)
    assert done.returncode == 1, "a job failed: the exit status says so " + done.stderr[-3000:]
    root = sweep_dir(outputs)
    records = {job_lr(r): r for r in read_records(root)}
    ok, failed = records[1e-3], records[1e12]
    assert ok["status"] == "ok" and failed["status"] == "failed" and "non-finite" in failed["error"]
    assert "FloatingPointError" in done.stderr, "the failed job's line and traceback go to stderr"
    assert "1 of 2 jobs failed:" in done.stdout and Path(failed["run_dir"]).name in done.stdout.split("1 of 2 jobs failed:")[1]
    table = compare([root], outputs / "comparison")["table"]
    assert "1 of 2 runs failed:" in table and failed["run_dir"] in table and "non-finite" in table, "mbdl compare lists it too"

    for record in records.values():  # one offline W&B run per job, finished after the job
        (run,) = (Path(record["run_dir"]) / "wandb").glob("offline-run-*")
        log = (run.parent / "debug.log").read_text()
        assert f"'method.optim.lr': {job_lr(record)!r}" in log and "'task.n': 20" in log, "the job's own config, logged flat"
        assert f"got exitcode: {0 if record['status'] == 'ok' else 1}" in log, "wandb.finish after every job, failed ones with exit code 1"
        if record["status"] == "ok" and (Path(record["run_dir"]) / "figure.png").exists():
            assert list(run.glob("files/media/images/figure_*.png")), "the run's figure is logged as an image"

    stamp = (Path(ok["run_dir"]) / "metrics.json").stat().st_mtime_ns
    done = run_cli(*sweep, f"hydra.sweep.dir={root}", "resume=true", outputs=outputs)
    assert done.returncode == 1, "the failed job fails again " + done.stderr[-3000:]
    assert done.stdout.count("[skipped, already finished]") == 1, "the ok job is skipped"
    assert "progress: 2/2 jobs done (1 failed, 1 skipped)" in done.stdout
    assert (Path(ok["run_dir"]) / "metrics.json").stat().st_mtime_ns == stamp
    assert "[failed]" in done.stderr, "the failed job runs again"


def test_submitit_local_executor_runs_a_sweep(outputs):
    done = run_cli("-m", "hydra/launcher=submitit_local", "method=model_based", "seed=0,1", *TINY, ONE_EPOCH, outputs=outputs)
    assert done.returncode == 0, done.stderr[-3000:]
    records = read_records(sweep_dir(outputs))
    assert sorted(r["seed"] for r in records) == [0, 1] and all(r["status"] == "ok" for r in records)
    assert list((sweep_dir(outputs) / ".submitit").rglob("*_result.pkl")), "the jobs ran through submitit"


def test_optuna_search_of_a_few_trials_reports_the_best(outputs):
    done = run_cli("-m", "hparams_search=unfolded", "hydra.sweeper.n_trials=3", *TINY, ONE_EPOCH, outputs=outputs)
    assert done.returncode == 0, done.stderr[-3000:]
    records = read_records(sweep_dir(outputs))
    assert len(records) == 3 and all(r["status"] == "ok" for r in records)
    best = yaml.safe_load((sweep_dir(outputs) / "optimization_results.yaml").read_text())
    chosen = min(records, key=lambda r: r["val/nmse_db"])
    assert best["best_value"] == chosen["val/nmse_db"], "selected on validation data, never on the test set"
    assert best["best_value"] not in [r["test/nmse_db"] for r in records]
    assert {f"{k}={v}" for k, v in best["best_params"].items()} <= set(chosen["overrides"]), "the best trial is the one with the best val/ value"
    assert "progress: 3/3 jobs done" in done.stdout, "an Optuna search's progress counts its trials"


def hydra_config(*overrides: str):
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=True)


def test_slurm_launcher_config_builds_on_the_pinned_versions():
    from hydra.utils import instantiate

    cfg = hydra_config("hydra/launcher=slurm", "hydra.launcher.partition=debug")
    launcher = instantiate(cfg.hydra.launcher)
    assert type(launcher).__name__ == "SlurmLauncher" and launcher.params["cpus_per_task"] == 1 and launcher.params["partition"] == "debug"


TASKS = sorted(p.stem for p in (CONFIGS / "task").glob("*.yaml"))
#: the tasks each ready sweep is documented for (docs/sweeps.md).
SWEEP_TASKS = {"spectrum": TASKS, "data_efficiency": TASKS, "seeds": TASKS, "snr": TASKS, "iterations": ["clutter", "sparse_recovery", "ulm"]}


def test_every_sweep_config_is_documented_for_its_tasks():
    assert sorted(SWEEP_TASKS) == sorted(p.stem for p in (CONFIGS / "sweep").glob("*.yaml"))


@pytest.mark.parametrize(("name", "task"), [(name, task) for name, tasks in SWEEP_TASKS.items() for task in tasks])
def test_every_sweep_config_composes_for_each_of_its_methods(name, task):
    """Every method of the grid, with the first value of every other swept key, composes (a missing key fails here)."""
    params = hydra_config(f"sweep={name}").hydra.sweeper.params
    assert "seed" in params
    others = [f"{key}={str(values).split(',')[0]}" for key, values in params.items() if key != "method"]
    for method in params["method"].split(","):
        assert hydra_config(f"sweep={name}", f"task={task}", f"method={method}", *others).method.name == method


@pytest.mark.parametrize(
    ("name", "task"),
    [(p.stem, task) for p in sorted((CONFIGS / "hparams_search").glob("*.yaml")) for task in TASKS if (CONFIGS / "spectrum" / task / p.name).is_file()],
)
def test_every_hparams_search_config_composes_with_in_memory_storage(name, task):
    cfg = hydra_config(f"hparams_search={name}", f"task={task}")
    assert cfg.method.name == name and cfg.hydra.sweeper.storage is None and cfg.hydra.sweeper.params
    for key in cfg.hydra.sweeper.params:
        assert OmegaConf.select(cfg, key, default="missing") != "missing", f"{key} is not an option of {task}/{name}"
