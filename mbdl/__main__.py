"""Command line: ``python -m mbdl task=... method=... regime=... seed=...`` (``--help`` for more)."""

from __future__ import annotations

import math
import sys
import traceback
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from mbdl.config import ConfigError
from mbdl.results.record import write_record
from mbdl.results.summary import job_line, results_table

def _config_error(error: BaseException) -> ConfigError | None:
    """The :class:`ConfigError` behind ``error`` (Hydra's ``instantiate`` wraps it), if any."""
    while error is not None and not isinstance(error, ConfigError):
        error = error.__cause__
    return error


#: objective returned to a sweeper for a failed run (Optuna cannot take NaN).
FAILED_OBJECTIVE = 1e9


@hydra.main(version_base="1.3", config_path="../configs", config_name="config")
def app(cfg: DictConfig) -> float:
    """Run one job, always write its record, and return its primary test metric."""
    hydra_cfg = HydraConfig.get()
    output_dir = hydra_cfg.runtime.output_dir
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    record: dict[str, Any] = {
        "task": cfg.task.name,
        "method": cfg.method.name,
        "regime": cfg.regime.name,
        "seed": cfg.seed,
        "overrides": list(hydra_cfg.overrides.task),
    }
    try:
        from mbdl.run import run  # imported here so that --help and config errors stay fast

        record.update(run(cfg, output_dir), status="ok")
    except Exception as error:  # noqa: BLE001 - every failure is recorded, then reported
        cause = _config_error(error)
        record.update(status="failed", error=f"{type(cause or error).__name__}: {cause or error}")
        write_record(output_dir, record)
        if multirun:
            print(job_line(record), file=sys.stderr, flush=True)
            traceback.print_exc()
            return FAILED_OBJECTIVE
        if cause is not None:
            sys.exit(f"error: {cause}")
        raise
    write_record(output_dir, record)
    if multirun:
        print(job_line(record), flush=True)
    else:
        print(f"\n{results_table([record])}\n\nrun directory: {output_dir}", flush=True)
    value = record.get(f"test/{record['primary_metric']}")
    return value if isinstance(value, float) and math.isfinite(value) else FAILED_OBJECTIVE


def main() -> None:
    """Console-script entry point ``mbdl``."""
    app()


if __name__ == "__main__":
    main()
