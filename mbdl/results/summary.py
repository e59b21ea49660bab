"""Plain-text tables of run records, and the progress lines of a multirun."""

from __future__ import annotations

import json
import shlex
import time
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from mbdl.config import sweep_grid
from mbdl.results.record import (
    PROGRESS_NAME,
    RECORD_NAME,
    RESULT_PREFIXES,
    read_records,
)
from mbdl.results.tables import fixed_width, format_value

#: the keys that identify a run in every line and table (the other overrides are shown after them).
IDENTITY = ("task", "method", "regime", "seed")


def results_table(records: list[dict[str, Any]]) -> str:
    """A fixed-width table: one row per run, its identity, status, and by metric its val, test, bound and reference values."""
    if not records:
        return "(no runs)"
    order = {prefix: i for i, prefix in enumerate(RESULT_PREFIXES)}
    metrics = sorted({k for r in records for k in r if k.startswith(RESULT_PREFIXES)}, key=lambda k: (k.split("/")[1], order[k.split("/")[0] + "/"]))
    columns = ["task", "method", "regime", "seed", "status", *metrics, "params", "train_time_s", "infer_ms_per_sample", "overrides"]
    rows = [[format_value(r.get(c) if c != "overrides" else " ".join(r.get("overrides", []))) for c in columns] for r in records]
    return fixed_width(columns, rows)


def job_line(record: dict[str, Any], note: str | None = None) -> str:
    """One line for a finished job: status, identity, its own overrides and the primary test metric against its bound."""
    status = note or record.get("status", "?")
    swept = " ".join(o for o in record.get("overrides", []) if o.split("=", 1)[0].lstrip("+~") not in (*IDENTITY, "resume"))
    head = f"[{status}] {record.get('task')} {record.get('method')} {record.get('regime')} seed={record.get('seed')}"
    head += f" {swept}" if swept else ""
    if record.get("status") != "ok":
        return f"{head}  error: {record.get('error', '')}"
    name = record.get("primary_metric")
    if f"test/{name}" not in record:
        name = next((k.split("/", 1)[1] for k in record if k.startswith("test/")), None)
    if name is None:
        return head
    kind = next((k for k in ("bound", "reference") if f"{k}/{name}" in record), "bound")
    return f"{head}  {name}={format_value(record['test/' + name])} ({kind} {format_value(record.get(f'{kind}/{name}'))})"


def planned_jobs(config: DictConfig) -> int | None:
    """How many jobs a multirun will run: the grid's size (basic sweeper), ``n_trials`` (Optuna), else unknown."""
    grid = sweep_grid(config)
    if grid is not None:
        return len(grid)
    trials = config.hydra.sweeper.get("n_trials")
    return trials if isinstance(trials, int) else None


def start_progress(sweep_dir: Path, total: int | None) -> None:
    """Begin the progress log of a multirun: ``progress.jsonl`` with the number of jobs and the start time."""
    sweep_dir.mkdir(parents=True, exist_ok=True)
    (sweep_dir / PROGRESS_NAME).write_text(json.dumps({"total": total, "start": time.time()}) + "\n")


def _clock(seconds: float) -> str:
    """``h:mm:ss``."""
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"


def progress_line(total: int | None, start: float, statuses: list[str], now: float) -> str:
    """``progress: 3/8 jobs done (1 failed); 0:00:42 elapsed, about 0:01:24 left``: the estimate is the time per job
    so far (skipped jobs left out) times the jobs left, so parallel workers are accounted for."""
    done, skipped = len(statuses), statuses.count("skipped")
    failed = done - skipped - statuses.count("ok")
    notes = [f"{failed} failed"] * bool(failed) + [f"{skipped} skipped"] * bool(skipped)
    line = f"progress: {done}/{total or '?'} jobs done" + (f" ({', '.join(notes)})" if notes else "")
    elapsed = now - start
    line += f"; {_clock(elapsed)} elapsed"
    if total and done - skipped and total > done:
        line += f", about {_clock(elapsed / (done - skipped) * (total - done))} left"
    return line


def report_job(sweep_dir: Path, job: str, status: str) -> str | None:
    """Log a finished job (``status``: its record's, or ``skipped``) in the multirun's progress log, which every
    process of the sweep appends to, and return the sweep's progress line (``None`` without a log)."""
    path = sweep_dir / PROGRESS_NAME
    if not path.is_file():
        return None
    with path.open("a") as f:  # one short line per write: appends from parallel workers do not interleave
        f.write(json.dumps({"job": job, "status": status, "end": time.time()}) + "\n")
    head = _progress_head(sweep_dir)
    statuses = [e["status"] for e in _progress(sweep_dir) if "job" in e]
    return progress_line(head.get("total"), head.get("start", time.time()), statuses, time.time())


def _progress(sweep_dir: Path) -> list[dict[str, Any]]:
    """The entries of a multirun's progress log (none without one)."""
    path = sweep_dir / PROGRESS_NAME
    entries = []
    for line in path.read_text().splitlines() if path.is_file() else []:
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:  # a line being written by another worker
            continue
    return entries


def _progress_head(sweep_dir: Path) -> dict[str, Any]:
    """The first entry of the progress log: the multirun's ``total`` and ``start`` (empty without a log)."""
    entries = _progress(sweep_dir)
    return entries[0] if entries and "start" in entries[0] else {}


class SweepProgress(Callback):
    """Hydra callback: the sweep's progress after every job (done / total, failures, elapsed, an estimate of the
    rest), the table of all jobs when the multirun ends, and a non-zero exit status when any job is not ok.

    The jobs may run in other processes (joblib's workers, SLURM jobs): they share the progress log in the sweep
    directory (:func:`report_job`).
    """

    def __init__(self) -> None:
        self.job_start = 0.0

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        start_progress(Path(str(config.hydra.sweep.dir)), planned_jobs(config))

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.job_start = time.time()

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if config.hydra.mode != RunMode.MULTIRUN:
            return
        run_dir = Path(config.hydra.runtime.output_dir)
        record_path = run_dir / RECORD_NAME
        record = next(iter(read_records(run_dir)), {"status": "missing"})
        skipped = record.get("status") == "ok" and record_path.stat().st_mtime < self.job_start
        line = report_job(Path(str(config.hydra.sweep.dir)), run_dir.name, "skipped" if skipped else record.get("status", "?"))
        if line:
            print(line, flush=True)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        records = read_records(sweep_dir)
        print(f"\n{results_table(records)}\n\n{failure_summary(records)}sweep directory: {sweep_dir}", flush=True)
        if any(r.get("status") != "ok" for r in records):
            raise SystemExit(1)


def failure_summary(records: list[dict[str, Any]]) -> str:
    """``"N of M jobs failed:"`` and one line per job that is not ok with its run directory, or ``""`` when none."""
    failed = [r for r in records if r.get("status") != "ok"]
    if not failed:
        return ""
    lines = [f"{len(failed)} of {len(records)} jobs failed:"]
    lines += [f"  {job_line(r)}\n    {r.get('run_dir', '')}" for r in failed]
    return "\n".join(lines) + "\n\n"


def interrupted_summary(stop: Any, argv: list[str]) -> str:
    """What an interrupted run or multirun leaves (``stop``: the :class:`~mbdl.jobs.Interrupted`), and for a multirun
    the command that finishes it (``argv``: this command's arguments)."""
    if stop.run_dir is None:
        return f"{stop}: before any job started, nothing recorded"
    if stop.sweep_dir is None:
        return f"{stop}: recorded as interrupted in {stop.run_dir}"
    records = read_records(stop.sweep_dir)
    ok = sum(r.get("status") == "ok" for r in records)
    total = _progress_head(Path(stop.sweep_dir)).get("total")
    started = f"of {total} jobs, {total - len(records)} not started, " if isinstance(total, int) and total >= len(records) else ""
    kept = [a for a in argv if a.split("=", 1)[0].lstrip("+~") not in ("hydra.sweep.dir", "resume")]
    command = shlex.join(["python", "-m", "mbdl", *kept, f"hydra.sweep.dir={stop.sweep_dir}", "resume=true"])
    return (
        f"{stop}: {started}{ok} finished ok, {len(records) - ok} not ok (those in progress recorded as interrupted) in {stop.sweep_dir}\n"
        f"finish the sweep with: {command}"
    )
