"""One Optuna study in a SQLite file, fed by two sweeper processes started at the same moment, read back with Optuna's API.

Two subprocesses side by side (~15-25 s on 2 cores): both open the new database at once (the storage callback
creates its tables under a lock), each runs its trials with its own sampler seed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml

from mbdl.jobs import objective
from mbdl.config import ConfigError
from mbdl.results.record import read_records
from mbdl.results.studies import prepare_storage
from tests.helpers import ONE_EPOCH, ROOT, TINY

TRIALS = 3
STUDY = "shared_unfolded"


def sweeper(outputs: Path, storage: str, index: int) -> subprocess.Popen:
    """``python -m mbdl -m hparams_search=unfolded`` on the shared study, its own sampler seed and sweep directory."""
    args = ["-m", "hparams_search=unfolded", f"hydra.sweeper.storage={storage}", f"hydra.sweeper.study_name={STUDY}",
            f"hydra.sweeper.n_trials={TRIALS}", f"hydra.sweeper.sampler.seed={index}", f"hydra.sweep.dir={outputs / f'sweeper{index}'}",
            "~logger", *TINY, ONE_EPOCH]
    env = {**os.environ, "MBDL_OUTPUTS": str(outputs), "WANDB_MODE": "disabled"}
    return subprocess.Popen([sys.executable, "-m", "mbdl", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)


def ran(trial: optuna.trial.FrozenTrial, record: dict) -> bool:
    """Whether ``record`` is the job of ``trial``: its overrides hold the trial's parameters as the sweeper wrote them."""
    return {f"{name}={value}" for name, value in trial.params.items()} <= set(record["overrides"])


def test_two_sweepers_at_once_add_their_trials_to_one_study(tmp_path):
    outputs = tmp_path / "outputs"
    database = tmp_path / "studies" / "optuna.db"  # its folder does not exist yet
    storage = f"sqlite:///{database}"
    processes = [sweeper(outputs, storage, index) for index in (0, 1)]
    for process in processes:
        stdout, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr[-3000:]

    study = optuna.load_study(study_name=STUDY, storage=storage)
    trials = study.trials
    assert len(trials) == 2 * TRIALS and all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    records = {index: read_records(outputs / f"sweeper{index}") for index in (0, 1)}
    assert all(len(r) == TRIALS and all(x["status"] == "ok" for x in r) for r in records.values())
    spans = {}
    for index, own in records.items():
        mine = {t.number: (t, r) for t in trials for r in own if ran(t, r)}
        assert len(mine) == TRIALS, "each job is one trial of the study"
        for trial, record in mine.values():
            assert trial.value == objective(record), "the study holds what the job's record says"
        spans[index] = (min(t.datetime_start for t, _ in mine.values()), max(t.datetime_complete for t, _ in mine.values()))
    assert spans[0][0] < spans[1][1] and spans[1][0] < spans[0][1], "the two sweepers added trials at the same time"

    everything = records[0] + records[1]
    best = min if study.direction == optuna.study.StudyDirection.MINIMIZE else max
    assert study.best_trial.value == best(objective(r) for r in everything)
    (best_job,) = [r for r in everything if ran(study.best_trial, r)]
    assert objective(best_job) == study.best_value
    last = max((outputs / f"sweeper{index}" / "optimization_results.yaml" for index in (0, 1)), key=lambda p: p.stat().st_mtime_ns)
    assert yaml.safe_load(last.read_text())["best_value"] == study.best_trial.value, "the last sweeper reports the study's best"


@pytest.mark.parametrize(("url", "message"), [
    ("nonsense", "is not a database URL"),
    ("postgresqlx://user@host/db", "Can't load plugin"),
    (3, "must be a database URL"),
])
def test_a_bad_storage_is_one_line_naming_the_option(url, message):
    with pytest.raises(ConfigError, match=f"^hydra.sweeper.storage: .*{message}") as error:
        prepare_storage(url)
    assert "\n" not in str(error.value)
