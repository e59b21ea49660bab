"""Trackers and run bookkeeping: W&B never blocks, names/groups/tags, flat config, objectives, resume, failure summary."""

from __future__ import annotations

import math

import pytest

from mbdl.__main__ import _require_finite
from mbdl.jobs import FAILED_OBJECTIVE, objective
from mbdl.results.loggers import flat_config, has_api_key, run_identity, wandb_mode
from mbdl.results.record import finished_record, write_record
from mbdl.results.summary import failure_summary, job_line
from tests.helpers import compose_config


@pytest.fixture
def no_wandb_env(monkeypatch, tmp_path):
    for key in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_BASE_URL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    return tmp_path / "netrc"


def test_wandb_is_offline_without_a_key_and_online_with_one(no_wandb_env, monkeypatch):
    assert not has_api_key() and wandb_mode() == "offline"
    no_wandb_env.write_text("machine api.wandb.ai\n  login user\n  password " + "k" * 40 + "\n")
    assert has_api_key() and wandb_mode() == "online"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert wandb_mode() == "disabled", "WANDB_MODE wins"


def test_wandb_key_from_the_environment_and_other_hosts(no_wandb_env, monkeypatch):
    no_wandb_env.write_text("machine wandb.example.org\n  login user\n  password secret\n")
    assert wandb_mode() == "offline", "a key for another host does not count"
    monkeypatch.setenv("WANDB_BASE_URL", "https://wandb.example.org")
    assert wandb_mode() == "online"
    monkeypatch.delenv("WANDB_BASE_URL")
    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)
    assert wandb_mode() == "online"


def test_run_identity_and_flat_config():
    cfg = compose_config("method=model_based", "seed=3")
    identity = run_identity(cfg, "14-00-00-123456")
    assert identity["name"] == "sparse_recovery-model_based-supervised-seed3"
    assert identity["group"] == "14-00-00-123456" and identity["tags"] == ["sparse_recovery", "model_based", "supervised", "sweep:14-00-00-123456"]
    assert run_identity(cfg, None)["group"] == "sparse_recovery-model_based"
    flat = flat_config(compose_config("method=model_based", "seed=3", "~logger"))
    assert flat["seed"] == 3 and flat["task.name"] == "sparse_recovery" and "method.optim.epochs" not in flat  # nothing to train, no optim block
    assert not any(isinstance(v, dict) for v in flat.values())


def test_objective_is_the_validation_metric_and_finite_for_every_outcome():
    ok = {"status": "ok", "primary_metric": "nmse_db", "val/nmse_db": -20.5, "test/nmse_db": -30.0}
    assert objective(ok) == -20.5, "the sweeper sees the validation metric, never the test metric"
    assert objective({**ok, "status": "failed"}) == FAILED_OBJECTIVE
    assert objective({**ok, "val/nmse_db": None}) == FAILED_OBJECTIVE and math.isfinite(FAILED_OBJECTIVE)
    psnr = {"status": "failed", "primary_metric": "psnr_db", "metric_info": {"psnr_db": {"label": "PSNR", "unit": "dB", "higher_is_better": True}}}
    assert objective(psnr) == -FAILED_OBJECTIVE, "a failed run is the worst value in the declared direction"
    for value in (float("nan"), float("inf"), None):
        with pytest.raises(FloatingPointError, match="non-finite test/nmse_db"):
            _require_finite({**ok, "test/nmse_db": value})


def test_resume_finds_only_finished_runs_with_the_same_overrides(tmp_path):
    overrides = ["method=unfolded", "seed=1"]
    assert finished_record(tmp_path, overrides) is None
    write_record(tmp_path, {"status": "failed", "overrides": overrides})
    assert finished_record(tmp_path, overrides) is None, "a failed job runs again"
    write_record(tmp_path, {"status": "ok", "overrides": overrides})
    assert finished_record(tmp_path, ["seed=1", "method=unfolded", "resume=true"])["status"] == "ok"
    assert finished_record(tmp_path, ["method=unfolded", "seed=2"]) is None, "another job in the same directory"


def test_failure_summary_names_each_failed_job():
    records = [
        {"status": "ok", "task": "t", "method": "a", "regime": "supervised", "seed": 0, "primary_metric": "e", "test/e": 1.0},
        {"status": "failed", "task": "t", "method": "b", "regime": "supervised", "seed": 1, "error": "FloatingPointError: nan", "run_dir": "/x/1_b",
         "overrides": ["method=b", "method.optim.lr=10"]},
    ]
    text = failure_summary(records)
    assert text.startswith("1 of 2 jobs failed:") and "/x/1_b" in text and "FloatingPointError: nan" in text
    assert "method.optim.lr=10" in job_line(records[1]) and failure_summary(records[:1]) == ""
