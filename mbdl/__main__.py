"""Command line.

``python -m mbdl task=... method=... regime=... seed=...``  one run (``--help`` for more);
``python -m mbdl -m KEY=A,B ...``                           a sweep (docs/sweeps.md);
``python -m mbdl compare DIR ...``                          the comparison of finished runs.

The console script ``mbdl`` is the same command. Exit status (docs/reliability.md): 0 when the run, or every job
of the sweep, finished ok; 1 when an option is refused or a run or any job is not ok; 128 + the signal's number
(143 for SIGTERM, 130 for SIGINT) when interrupted, after the job in progress is recorded ``interrupted``.
"""

from __future__ import annotations

import gc
import importlib
import math
import sys
import traceback
import warnings
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from mbdl.config import ConfigError, preflight
from mbdl.jobs import (
    Interrupted,
    declarations,
    discard_run_dir,
    interrupts_raise,
    job_record,
    objective,
    shielded,
)
from mbdl.results.loggers import finish_trackers
from mbdl.results.record import finished_record, write_record
from mbdl.results.summary import interrupted_summary, job_line, results_table

#: the sub-commands that are not a Hydra run, and the module whose ``main(argv)`` runs each.
SUBCOMMANDS = {"compare": "mbdl.results.compare"}


def _config_error(error: BaseException) -> ConfigError | None:
    """The :class:`ConfigError` behind ``error`` (Hydra's ``instantiate`` wraps it), if any."""
    while error is not None and not isinstance(error, ConfigError):
        error = error.__cause__
    return error


def _require_finite(record: dict[str, Any]) -> None:
    """Fail a run whose primary test metric is NaN or infinite (it would poison the means over seeds)."""
    key = f"test/{record['primary_metric']}"
    value = record.get(key)
    if not (isinstance(value, (int, float)) and math.isfinite(value)):
        raise FloatingPointError(f"non-finite {key} = {value}")


def _writes_outputs() -> bool:
    """Whether this process writes the job's record, trackers and lines: not a DDP rank other than 0 (those only
    compute; rank 0 holds the same results). Lightning is imported by then, except for errors before the run."""
    rank_zero = sys.modules.get("mbdl.training.distributed")
    return rank_zero is None or rank_zero.is_rank_zero()


@hydra.main(version_base="1.3", config_path="../configs", config_name="config")
def app(cfg: DictConfig) -> float:
    """Run one job, always write its record, and return its objective (the primary validation metric)."""
    with interrupts_raise():  # a joblib worker runs jobs without main(): its signals too end in a record
        return _job(cfg)


def _job(cfg: DictConfig) -> float:
    hydra_cfg = HydraConfig.get()
    output_dir = hydra_cfg.runtime.output_dir
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    overrides = list(hydra_cfg.overrides.task)
    if cfg.get("resume") is True and (done := finished_record(output_dir, overrides)) is not None:
        print(job_line(done, "skipped, already finished"), flush=True)
        return objective(done)
    if multirun and "enable_progress_bar" in cfg.trainer:
        cfg.trainer.enable_progress_bar = False  # one line per job instead
    # the CSV logger writes into the run directory, which already holds .hydra/: not a problem worth a warning
    warnings.filterwarnings("ignore", message="Experiment logs directory .* exists and is not empty")
    record = job_record(cfg, overrides)
    try:
        preflight(cfg)  # a single run passed it before its directory was made; a sweep's job checks its own config here
        from mbdl.run import (
            run,  # imported here so that --help and config errors stay fast
        )

        record.update(run(cfg, output_dir), torch_threads=sys.modules["torch"].get_num_threads())
        _require_finite(record)
        record["status"] = "ok"
    except Interrupted as stop:
        with shielded():
            record = {**declarations(cfg.task._target_), **record, "status": "interrupted", "error": f"Interrupted: {stop.name} while the job ran"}
            write_record(output_dir, record)
            finish_trackers(record, output_dir)
            print(job_line(record), file=sys.stderr, flush=True)
        stop.run_dir, stop.sweep_dir = output_dir, str(Path(hydra_cfg.sweep.dir).absolute()) if multirun else None
        raise
    except Exception as error:  # noqa: BLE001 - every failure is recorded, then reported
        cause = _config_error(error)
        if cause is not None and not multirun and discard_run_dir(output_dir):
            sys.exit(f"error: {cause}")  # refused before any work: nothing to record, no run directory left behind
        record = {**declarations(cfg.task._target_), **record}
        record.update(status="failed", error=f"{type(cause or error).__name__}: {cause or error}")
        if not _writes_outputs():
            raise
        write_record(output_dir, record)
        finish_trackers(record, output_dir)
        if multirun:
            print(job_line(record), file=sys.stderr, flush=True)
            if cause is None:
                traceback.print_exc()
            return objective(record)
        if cause is not None:
            sys.exit(f"error: {cause}")
        raise
    if not _writes_outputs():
        return objective(record)
    write_record(output_dir, record)
    finish_trackers(record, output_dir)
    if multirun:
        print(job_line(record), flush=True)
    else:
        print(f"\n{results_table([record])}\n\nrun directory: {output_dir}", flush=True)
    return objective(record)


def main() -> None:
    """Console-script entry point ``mbdl``: a sub-command (``mbdl compare DIR``) or a Hydra run."""
    try:
        if len(sys.argv) > 1 and sys.argv[1] in SUBCOMMANDS:
            importlib.import_module(SUBCOMMANDS[sys.argv[1]]).main(sys.argv[2:])
        else:
            with interrupts_raise():
                app()
    except Interrupted as stop:
        print(interrupted_summary(stop, sys.argv[1:]), file=sys.stderr, flush=True)
        raise SystemExit(stop.exit_code) from None
    finally:
        # the interpreter's last garbage collection walks every object torch and Lightning made
        # (~1 s per process, docs/benchmarks.md); everything is written by now, so skip the walk
        gc.freeze()


if __name__ == "__main__":
    main()
