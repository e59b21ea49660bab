"""Command line.

``python -m mbdl task=... method=... regime=... seed=...``  one run (``--help`` for more);
``python -m mbdl -m KEY=A,B ...``                           a sweep (docs/sweeps.md);
``python -m mbdl compare DIR ...``                          the comparison of finished runs.

The console script ``mbdl`` is the same command.
"""

from __future__ import annotations

import gc
import importlib
import math
import sys
import traceback
import warnings
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import get_class
from omegaconf import DictConfig

from mbdl.config import ConfigError
from mbdl.results.loggers import finish_trackers
from mbdl.results.record import finished_record, write_record
from mbdl.results.summary import job_line, results_table

#: objective returned to a minimising sweeper for a failed run (its negative to a maximising one; Optuna cannot take NaN).
FAILED_OBJECTIVE = 1e9

#: the sub-commands that are not a Hydra run, and the module whose ``main(argv)`` runs each.
SUBCOMMANDS = {"compare": "mbdl.results.compare"}


def _config_error(error: BaseException) -> ConfigError | None:
    """The :class:`ConfigError` behind ``error`` (Hydra's ``instantiate`` wraps it), if any."""
    while error is not None and not isinstance(error, ConfigError):
        error = error.__cause__
    return error


def objective(record: dict[str, Any]) -> float:
    """What a sweeper optimises: the primary metric on the *validation* set (never the test set), in the direction
    the task declares; for a failed run the worst value, :data:`FAILED_OBJECTIVE` (its negative when higher is better)."""
    name = record.get("primary_metric")
    value = record.get(f"val/{name}")
    if record.get("status") == "ok" and isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    higher_is_better = (record.get("metric_info") or {}).get(name, {}).get("higher_is_better", False)
    return -FAILED_OBJECTIVE if higher_is_better else FAILED_OBJECTIVE


def _declarations(cfg: DictConfig) -> dict[str, Any]:
    """``primary_metric`` and ``metric_info`` of the configured task class (empty when it cannot be loaded)."""
    try:
        task = get_class(cfg.task._target_)
        return {"primary_metric": task.primary_metric, "metric_info": task.metric_info()}
    except Exception:  # noqa: BLE001 - a record of a failed run is written whatever else failed
        return {}


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


def _adapt_to_multirun(cfg: DictConfig) -> None:
    """In a multirun: one torch thread per job (unless ``threads`` is set) and no progress bar (one line per job instead)."""
    if cfg.threads is None:
        cfg.threads = 1
    if "enable_progress_bar" in cfg.trainer:
        cfg.trainer.enable_progress_bar = False


@hydra.main(version_base="1.3", config_path="../configs", config_name="config")
def app(cfg: DictConfig) -> float:
    """Run one job, always write its record, and return its objective (the primary validation metric)."""
    hydra_cfg = HydraConfig.get()
    output_dir = hydra_cfg.runtime.output_dir
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    overrides = list(hydra_cfg.overrides.task)
    if cfg.get("resume") and (done := finished_record(output_dir, overrides)) is not None:
        print(job_line(done, "skipped, already finished"), flush=True)
        return objective(done)
    if multirun:
        _adapt_to_multirun(cfg)
    # the CSV logger writes into the run directory, which already holds .hydra/: not a problem worth a warning
    warnings.filterwarnings("ignore", message="Experiment logs directory .* exists and is not empty")
    record: dict[str, Any] = {
        "task": cfg.task.name,
        "method": cfg.method.name,
        "regime": cfg.regime.name,
        "seed": cfg.seed,
        "overrides": overrides,
    }
    try:
        from mbdl.run import run  # imported here so that --help and config errors stay fast

        record.update(run(cfg, output_dir), torch_threads=sys.modules["torch"].get_num_threads())
        _require_finite(record)
        record["status"] = "ok"
    except Exception as error:  # noqa: BLE001 - every failure is recorded, then reported
        cause = _config_error(error)
        record = {**_declarations(cfg), **record}
        record.update(status="failed", error=f"{type(cause or error).__name__}: {cause or error}")
        if not _writes_outputs():
            raise
        write_record(output_dir, record)
        finish_trackers(record, output_dir)
        if multirun:
            print(job_line(record), file=sys.stderr, flush=True)
            if cause is None:
                traceback.print_exc()
            return FAILED_OBJECTIVE
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
            app()
    finally:
        # the interpreter's last garbage collection walks every object torch and Lightning made
        # (~1 s per process, docs/benchmarks.md); everything is written by now, so skip the walk
        gc.freeze()


if __name__ == "__main__":
    main()
