"""A real one-node SLURM cluster (Debian's slurm-wlm and munge) started for the test: a 4-job sweep with
``hydra/launcher=slurm``, then ``mbdl compare`` on it; the cluster is stopped at the end.

~40-60 s: the four jobs run as a SLURM job array, two at a time on 2 cores, each importing torch.
Skipped without the packages or root (``make test`` installs them), failed instead under ``CI=true``.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from mbdl.results.record import read_records
import single_node_slurm
from tests.helpers import ROOT, sweep_dir

SWEEP = ("task=sparse_recovery", "method=model_based", "method.iterations=5", "task.n_test=50", "seed=0,1,2,3")


def unavailable() -> str | None:
    """Why a cluster cannot be started here, or ``None``."""
    if missing := single_node_slurm.missing_commands():
        return f"{', '.join(missing)} not found: `make test` installs Debian's {' and '.join(single_node_slurm.PACKAGES)} (apt-get install)"
    if os.geteuid() != 0:
        return "starting slurmd and munged (as the munge user) needs root"
    return None


@pytest.fixture
def cluster():
    """A running cluster with all of its state in a new temporary folder; stopped (and checked stopped) afterwards."""
    if (reason := unavailable()) is not None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(reason)
        pytest.skip(reason)
    root = Path(tempfile.mkdtemp(prefix="mbdl-slurm-"))  # not pytest's tmp_path: munged (user munge) must reach its socket
    try:
        running = single_node_slurm.start(root)
        yield running
        running.stop()
        assert not running.daemons() and not running.step_processes(), "the cluster is gone after the stop"
    finally:
        single_node_slurm.Cluster(root).stop()
        shutil.rmtree(root, ignore_errors=True)


def mbdl(cluster: single_node_slurm.Cluster, outputs: Path, *args: str) -> subprocess.CompletedProcess:
    """``python -m mbdl ARGS`` as a cluster user: ``SLURM_CONF`` and the ``sacct`` stand-in on ``PATH``."""
    env = {**os.environ, **cluster.env, "MBDL_OUTPUTS": str(outputs), "WANDB_MODE": "disabled"}
    return subprocess.run([sys.executable, "-m", "mbdl", *args], capture_output=True, text=True, env=env, timeout=600, cwd=ROOT)


def test_a_sweep_on_a_real_slurm_cluster_then_mbdl_compare(cluster, tmp_path):
    outputs = tmp_path / "outputs"
    done = mbdl(cluster, outputs, "-m", "hydra/launcher=slurm", *SWEEP)
    assert done.returncode == 0, f"{done.stderr[-3000:]}\n{cluster.logs()}"
    root = sweep_dir(outputs)
    records = read_records(root)
    assert sorted(r["seed"] for r in records) == [0, 1, 2, 3] and all(r["status"] == "ok" for r in records)

    # the jobs ran as one SLURM job array (submitit's logs, one folder per task) that the controller saw complete
    assert cluster.wait(60), cluster.run("squeue")  # a job's process exits a moment after it wrote its result
    logs = sorted(p.name for p in (root / ".submitit").iterdir() if p.is_dir() and "_" in p.name)
    array = {name.split("_")[0] for name in logs}
    assert len(logs) == 4 and len(array) == 1, logs
    (job_id,) = array
    accounting = cluster.run("sacct", "-o", "JobID,State,NodeList", "--parsable2", "-j", job_id)
    from submitit.slurm.slurm import SlurmInfoWatcher

    states = SlurmInfoWatcher().read_info(accounting)
    assert {f"{job_id}_{i}" for i in range(4)} <= set(states), accounting
    assert all(states[f"{job_id}_{i}"]["State"] == "COMPLETED" for i in range(4)), accounting
    assert all("[ok] sparse_recovery model_based" in (root / ".submitit" / name / f"{name}_0_log.out").read_text() for name in logs)

    done = mbdl(cluster, outputs, "compare", str(root), "--out", str(tmp_path / "comparison"))
    assert done.returncode == 0, done.stderr[-3000:]
    with (tmp_path / "comparison" / "summary.csv").open() as f:
        (row,) = list(csv.DictReader(f))
    values = [r["test/nmse_db"] for r in records]
    assert row["method"] == "model_based" and row["runs"] == "4" and float(row["test/nmse_db"]) == pytest.approx(np.mean(values))
    assert "4 runs, 1 groups" in done.stdout
