"""Sweeps that never lose or hide a result (issue 14): real processes killed and interrupted, corrupted records,
grids that conflict, bad inputs refused before the imports, the sweeper's objective on validation data only.

The kill and signal tests start ``python -m mbdl`` and send real signals (no mocks); each waits for a sign that
the job is under way (its directory, Lightning's first line) before signalling.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from mbdl.config import ConfigError, check_memory, declared_checks, job_key, preflight
from mbdl.jobs import FAILED_OBJECTIVE, objective
from mbdl.results.compare import compare
from mbdl.results.record import RECORD_NAME, finished_record, read_records, write_record
from mbdl.results.summary import progress_line
from mbdl.run import build
from bad_inputs import CASES, DOC
from tests.helpers import CONFIGS, ROOT, TINY, compose_config, run_cli


@pytest.fixture
def start_cli(outputs: Path, tmp_path: Path):  # noqa: ANN201 - a factory
    """``start_cli(*args)``: ``python -m mbdl ARGS`` in the background, stdout and stderr into ``tmp_path/log`` (read
    while it runs); a process still running when the test ends is killed."""
    started: list[subprocess.Popen] = []
    env = {**os.environ, "MBDL_OUTPUTS": str(outputs), "WANDB_MODE": "disabled"}

    def start(*args: str) -> subprocess.Popen:
        with (tmp_path / "log").open("w") as out:
            # SIGINT as a terminal delivers it: a process started with it ignored (pytest-xdist's workers, a background
            # job of a shell) keeps ignoring it, as Python does
            default_sigint = lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)  # noqa: E731
            started.append(subprocess.Popen([sys.executable, "-m", "mbdl", *args], stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT, preexec_fn=default_sigint))
        return started[-1]

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def wait_for(condition, timeout: float = 120.0) -> None:  # noqa: ANN001 - a predicate
    """Poll ``condition()`` until it holds."""
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < timeout, "timed out"
        time.sleep(0.1)


def sweep_dir(outputs: Path) -> Path:
    (found,) = (outputs / "sweeps").glob("*/*")
    return found


# 1. the sweeper's objective ---------------------------------------------------------------------------------------


def test_the_objective_is_the_validation_metric_in_the_declared_direction():
    record = {"status": "ok", "primary_metric": "psnr_db", "val/psnr_db": 30.0, "test/psnr_db": 31.0, "metric_info": {"psnr_db": {"higher_is_better": True}}}
    assert objective(record) == 30.0, "validation, never test"
    assert objective({**record, "status": "failed"}) == -FAILED_OBJECTIVE, "a failed run is the worst value of a maximised metric"
    assert objective({**record, "status": "ok", "val/psnr_db": float("nan")}) == -FAILED_OBJECTIVE
    assert objective({"status": "interrupted", "primary_metric": "nmse_db"}) == FAILED_OBJECTIVE


# 3. SIGTERM and SIGINT --------------------------------------------------------------------------------------------


def test_sigterm_records_the_job_interrupted_exits_143_and_resume_runs_it(outputs, tmp_path, start_cli):
    """A sweep whose process gets SIGTERM while its first job trains; then ``resume=true`` finishes it."""
    sweep = ("-m", "seed=0,1", "method.optim.epochs=300", "~early_stopping", *TINY)  # long enough to be interrupted on an idle machine
    log = tmp_path / "log"
    process = start_cli(*sweep)
    wait_for(lambda: "GPU available" in log.read_text())  # Lightning's Trainer of the first job: it trains now
    time.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    assert process.wait(60) == 143
    root = sweep_dir(outputs)
    (record,) = read_records(root)
    assert record["status"] == "interrupted" and "SIGTERM" in record["error"] and "seed=0" in record["overrides"]
    text = log.read_text()
    assert "[interrupted]" in text and "of 2 jobs, 1 not started" in text
    assert f"hydra.sweep.dir={root} resume=true" in text, "the summary says how to finish the sweep"

    done = run_cli(*sweep, f"hydra.sweep.dir={root}", "resume=true", outputs=outputs)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    records = read_records(root)
    assert sorted(r["seed"] for r in records) == [0, 1] and all(r["status"] == "ok" for r in records), "the interrupted job ran again"
    assert "progress: 2/2 jobs done" in done.stdout


def test_sigint_during_training_records_a_single_run_interrupted_and_exits_130(outputs, tmp_path, start_cli):
    log = tmp_path / "log"
    process = start_cli("method.optim.epochs=200", "~early_stopping", *TINY)
    wait_for(lambda: "GPU available" in log.read_text())
    time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    assert process.wait(60) == 130
    (record,) = read_records(outputs)
    assert record["status"] == "interrupted" and "SIGINT" in record["error"], "recorded (atomically), not reported as a success"
    assert "interrupted by SIGINT: recorded as interrupted in" in log.read_text()


# 4. a killed joblib worker ----------------------------------------------------------------------------------------


def worker_running(parent: int, job_dir: Path) -> int | None:
    """The child process of ``parent`` that holds a file of ``job_dir`` open (Hydra's job log): the job's worker."""
    children = [int(c) for t in Path(f"/proc/{parent}/task").iterdir() for c in (t / "children").read_text().split()]
    for child in children:
        try:
            if any(os.readlink(fd).startswith(str(job_dir)) for fd in Path(f"/proc/{child}/fd").iterdir()):
                return child
        except OSError:  # a process that ended meanwhile
            continue
    return None


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="finds the worker through /proc (Linux)")
def test_sigkill_of_one_joblib_worker_fails_its_job_only(outputs, tmp_path, start_cli):
    """Two jobs on two loky workers; the long one's worker gets SIGKILL (what the out-of-memory killer sends)."""
    log = tmp_path / "log"
    process = start_cli("-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "method.optim.epochs=20,5000", *TINY)
    started = lambda: [d for d in outputs.glob("sweeps/*/*/*") if (d / ".hydra" / "overrides.yaml").is_file()]  # noqa: E731
    wait_for(lambda: len(started()) == 2)
    (victim,) = [d for d in started() if "method.optim.epochs=5000" in (d / ".hydra" / "overrides.yaml").read_text()]
    wait_for(lambda: worker_running(process.pid, victim) is not None)
    os.kill(worker_running(process.pid, victim), signal.SIGKILL)
    assert process.wait(120) == 1, "a job failed: the sweep says so in its exit status"
    records = {r["run_dir"]: r for r in read_records(sweep_dir(outputs))}
    killed = records.pop(str(victim))
    assert killed["status"] == "failed" and "SIGKILL" in killed["error"] and "out-of-memory" in killed["error"], "recorded with the cause"
    (survivor,) = records.values()
    assert survivor["status"] == "ok", "the other job in flight finished"
    text = log.read_text()
    assert "TerminatedWorkerError" not in text and "1 of 2 jobs failed:" in text and "sweep directory:" in text
    assert "progress: 2/2 jobs done (1 failed)" in text


# 5. job directories named by their overrides; a resume with another grid ------------------------------------------


def job_dir_name(*overrides: str) -> str:
    with __import__("hydra").initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = __import__("hydra").compose("config", overrides=list(overrides), return_hydra_config=True)
    return str(cfg.hydra.sweep.subdir)


def test_a_job_directory_is_named_by_all_of_its_overrides():
    base = job_dir_name("method=unfolded", "seed=0", "method.optim.lr=1e-3")
    assert base == job_dir_name("seed=0", "method.optim.lr=1e-3", "method=unfolded", "resume=true"), "the same job in any grid, resumed or not"
    assert base != job_dir_name("method=unfolded", "seed=0", "method.optim.lr=1e-2"), "another learning rate is another job"
    assert base.startswith("sparse_recovery_unfolded_seed0_") and base.endswith(job_key(["method=unfolded", "seed=0", "method.optim.lr=1e-3"]))


def test_resume_with_a_different_grid_is_refused_and_overwrites_nothing(outputs):
    """A sweep directory holding the job ``method.lam=0.1``; a resume of the grid ``method.lam=0.2``."""
    root = outputs / "sweeps" / "old"
    job = root / "sparse_recovery_model_based_seed0_x"
    (job / ".hydra").mkdir(parents=True)
    old = ["method=model_based", "method.lam=0.1", "seed=0"]
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(old))
    write_record(job, {"task": "sparse_recovery", "method": "model_based", "regime": "supervised", "seed": 0, "status": "ok", "overrides": old})
    stamp = (job / RECORD_NAME).stat().st_mtime_ns
    done = run_cli("-m", "method=model_based", "method.lam=0.2", "seed=0", f"hydra.sweep.dir={root}", "resume=true", outputs=outputs)
    assert done.returncode == 1 and done.stderr.strip().splitlines()[-1].startswith(f"error: resume: {root} holds 1 of 1 jobs that this grid does not have")
    assert (job / RECORD_NAME).stat().st_mtime_ns == stamp and sorted(p.name for p in root.iterdir()) == [job.name]


# 6. unreadable and missing records --------------------------------------------------------------------------------


def test_compare_and_resume_survive_unreadable_records_and_report_jobs_without_one(tmp_path, capsys):
    root = tmp_path / "sweep"
    good = {"task": "sparse_recovery", "method": "model_based", "regime": "supervised", "seed": 0, "status": "ok", "primary_metric": "nmse_db", "test/nmse_db": -20.0, "overrides": ["seed=0"]}
    write_record(root / "ok", good)
    for name, text in {"empty": "", "truncated": json.dumps(good)[:40], "a_list": "[1, 2]"}.items():
        (root / name / ".hydra").mkdir(parents=True)
        (root / name / ".hydra" / "config.yaml").write_text(yaml.safe_dump({"task": {"name": "sparse_recovery"}, "method": {"name": "unfolded"}, "regime": {"name": "supervised"}, "seed": 1}))
        (root / name / RECORD_NAME).write_text(text)
    (root / "killed" / ".hydra").mkdir(parents=True)
    (root / "killed" / ".hydra" / "config.yaml").write_text(yaml.safe_dump({"task": {"name": "sparse_recovery"}, "method": {"name": "unfolded"}, "regime": {"name": "supervised"}, "seed": 2}))
    (root / "killed" / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(["seed=2"]))

    result = compare([root], tmp_path / "out")
    warnings = capsys.readouterr().err.strip().splitlines()
    assert len(warnings) == 3 and all(line.startswith("warning: ") and RECORD_NAME in line for line in warnings), "one line per bad file, naming it"
    assert {line.split()[1].rstrip(":") for line in warnings} == {str(root / n / RECORD_NAME) for n in ("empty", "truncated", "a_list")}
    status = {Path(r["run_dir"]).name: r["status"] for r in result["runs"]}
    assert status == {"ok": "ok", "empty": "unreadable", "truncated": "unreadable", "a_list": "unreadable", "killed": "missing"}
    assert "4 of 5 runs failed:" in result["table"] and "killed" in result["table"] and "no run record" in result["table"]
    (row,) = [r for r in result["rows"] if r["method"] == "unfolded"]
    assert row["runs"] == 4 and row["failed"] == 4, "counted, with their identity from the saved config"
    assert finished_record(root / "truncated", ["seed=1"]) is None and finished_record(root / "ok", ["seed=0", "resume=true"]) == good, "resume re-runs the unreadable"


# 7, 8. bad inputs: one line naming the option, before any work, no run directory; fast ones before torch ---------


def normalised(message: str) -> str:
    """A message with its numbers (times, memory, paths with dates) masked."""
    return re.sub(r"\d+(\.\d+)?", "#", message)


def documented() -> dict[str, str]:
    """The message of every case in docs/reliability.md's bad-input table, by its command."""
    rows = [line.split(" | ") for line in DOC.read_text().splitlines() if line.startswith("| ") and "`python -m mbdl" in line]
    return {row[1].strip("`").removeprefix("python -m mbdl "): row[3].strip("`").replace("\\|", "|") for row in rows}


#: runs each case as ``python -m mbdl`` would, all in one process, and says whether torch was imported by then.
DRIVER = """
import contextlib, io, json, runpy, sys
results = []
for args in json.loads(sys.argv[1]):
    sys.argv, err = ["mbdl", *args], io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            runpy.run_module("mbdl", run_name="__main__")
            code = 0
        except SystemExit as stop:
            code = stop.code
    results.append(code if isinstance(code, str) else err.getvalue().strip().splitlines()[0])
print(json.dumps({"messages": results, "torch": "torch" in sys.modules}))
"""


def test_bad_inputs_are_refused_in_one_line_before_torch_is_imported(outputs):
    """The cases of scripts/bad_inputs.py that need no import of torch, in one process: each message is the table's."""
    cases = [args for args, _ in CASES if args not in AFTER_IMPORTS and "OUTPUTS" not in " ".join(args)]
    env = {**os.environ, "MBDL_OUTPUTS": str(outputs), "WANDB_MODE": "disabled"}
    done = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(cases)], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert not result["torch"], "refused before torch was imported"
    assert not outputs.exists(), "no run directory for a config that never started"
    table = documented()
    for args, message in zip(cases, result["messages"]):
        assert normalised(message) == normalised(table[" ".join(args)]), f"{args}: {message!r} is not the documented message"
    assert len(table) == len(CASES), "every case of scripts/bad_inputs.py is in the table: re-run the script"


#: the cases refused once the task and method are built (conditions between options, memory, foreign options).
AFTER_IMPORTS = [args for args, _ in CASES if args[0].startswith(("task.k", "task.n_train=1", "regime=layerwise", "+method.", "method.optim.optimizer")) or "method.lags=200" in args]


@pytest.mark.parametrize("args", AFTER_IMPORTS)
def test_bad_inputs_the_constructors_refuse_before_any_data(args):
    """The cases that need the task or method built (conditions between options, memory): refused by ``build``, which
    simulates nothing, with the table's message."""
    with pytest.raises(Exception) as info:
        build(compose_config(*args))
    error = info.value
    while not isinstance(error, ConfigError) and error.__cause__ is not None:
        error = error.__cause__
    assert isinstance(error, ConfigError)
    assert normalised(f"error: {error}") == normalised(documented()[" ".join(args)])


def test_a_refused_single_run_leaves_no_directory(outputs):
    """A constructor's refusal (after the imports) removes the run directory Hydra had made."""
    done = run_cli("task.k=300", outputs=outputs)
    assert done.returncode == 1 and done.stderr.strip().splitlines()[-1] == "error: task.k: must be at most task.m=200, got 300"
    assert not outputs.exists()


def test_the_memory_estimate_refuses_what_cannot_fit():
    check_memory({"task.n_val": 10, "task.n_test": 10}, 1000, available=10**6)
    with pytest.raises(ConfigError, match=r"^task\.n_train: the data sets need about 9\.31 GiB \(10000000020 samples of 1 B\), more than the 977 KiB of memory available$"):
        check_memory({"task.n_train": 10**10, "task.n_val": 10, "task.n_test": 10}, 1, available=10**6)


SPECTRUM = sorted(f"{p.parent.name}/{p.stem}" for p in (CONFIGS / "spectrum").glob("*/*.yaml"))


def declared() -> list:
    """``(overrides, check)`` for every check read from a constructor, each class once (read from the config files,
    a task's with its first method): the first of each kind per class in the default run, the others marked slow."""
    pairs, seen = [], set()
    targets = lambda path: [yaml.safe_load(path.read_text()).get("_target_")]  # noqa: E731
    for spectrum in SPECTRUM:
        task, method = spectrum.split("/")
        presets = sorted((CONFIGS / "task" / "model").glob("*.yaml")) if task == "tracking" else []
        nodes = [((f"task={task}", f"method={method}"), t) for t in targets(CONFIGS / "task" / f"{task}.yaml") + targets(CONFIGS / "spectrum" / f"{spectrum}.yaml")]
        nodes += [((f"task={task}", f"task/model={p.stem}", f"method={method}"), yaml.safe_load(p.read_text())["model"]["_target_"]) for p in presets]
        for overrides, target in nodes:
            for check in declared_checks(target) if target and target not in seen else ():
                first = (target, check.function) not in seen
                seen.add((target, check.function))
                pairs.append(pytest.param(overrides, check, marks=() if first else pytest.mark.slow, id=f"{target.rsplit('.', 1)[1]}:{check.option}"))
            seen.add(target)
    return pairs


@pytest.mark.parametrize("spectrum", SPECTRUM)
def test_every_config_passes_the_checks_preflight_reads(spectrum):
    task, method = spectrum.split("/")
    preflight(compose_config(f"task={task}", f"method={method}"))


@pytest.mark.parametrize(("overrides", "check"), declared())
def test_declared_checks_are_the_constructors_own(overrides, check):
    """Every check that preflight reads from a constructor's source refuses what the constructor refuses, with the same
    message (a value past the limit, or a choice that does not exist)."""
    bad = "nonsense_choice" if check.function == "check_choice" else (0 if check.strict else -1) if check.integer else (0.0 if check.strict else -1.0)
    cfg = compose_config(*overrides, f"{check.option}={bad}")
    with pytest.raises(ConfigError) as fast:
        preflight(cfg)
    with pytest.raises(Exception) as slow:
        build(cfg)
    cause = slow.value
    while not isinstance(cause, ConfigError) and cause.__cause__ is not None:
        cause = cause.__cause__
    assert str(fast.value) == str(cause)


# 9. the thread count ----------------------------------------------------------------------------------------------


def test_single_runs_and_sweep_jobs_default_to_the_same_thread_count():
    assert compose_config().threads == 1


# 11. progress ----------------------------------------------------------------------------------------------------


def test_the_progress_line_counts_and_estimates_the_rest():
    assert progress_line(8, 0.0, ["ok", "failed"], 20.0) == "progress: 2/8 jobs done (1 failed); 0:00:20 elapsed, about 0:01:00 left"
    assert progress_line(4, 0.0, ["skipped", "skipped", "ok"], 30.0) == "progress: 3/4 jobs done (2 skipped); 0:00:30 elapsed, about 0:00:30 left"
    assert progress_line(None, 0.0, ["ok"], 3661.0) == "progress: 1/? jobs done; 1:01:01 elapsed"
