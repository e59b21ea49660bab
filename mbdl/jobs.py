"""A job's life around its computation: the checks before it starts, its objective, and what is recorded when it is
refused, interrupted or killed.

* :class:`Preflight`, a Hydra callback, refuses a bad config before Hydra creates a run or sweep directory
  (:func:`mbdl.config.preflight`, the output directory, a ``resume`` into a sweep of another grid).
* :class:`Interrupted` is raised by SIGTERM and SIGINT inside :func:`interrupts_raise`: the job in progress is
  recorded ``interrupted`` and the process exits with ``128 + signal`` (143, 130).
* :func:`objective` is what a sweeper optimises: the validation metric, never a test metric.
"""

from __future__ import annotations

import math
import shutil
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from mbdl.config import (
    ConfigError,
    check_writable,
    preflight,
    require,
    same_job,
    sweep_grid,
)
from mbdl.results.record import (
    CONFIG_PATH,
    OVERRIDES_PATH,
    RECORD_NAME,
    job_identity,
    load_record,
    write_record,
)

#: objective returned to a minimising sweeper for a failed run (its negative to a maximising one; Optuna cannot take NaN).
FAILED_OBJECTIVE = 1e9
#: the signals that interrupt a job.
SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Interrupted(BaseException):
    """SIGTERM or SIGINT arrived. A :class:`BaseException`, like :class:`KeyboardInterrupt`, so that no
    ``except Exception`` on its way (Lightning's, a job's) takes it for a failure of the job.

    ``run_dir`` (and in a multirun ``sweep_dir``) are set once the job in progress is recorded, for the summary.
    """

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.run_dir: str | None = None
        self.sweep_dir: str | None = None
        super().__init__(f"interrupted by {self.name}")

    def __reduce__(self) -> tuple[type, tuple[int]]:  # raised in a joblib worker, re-raised in the launcher
        return type(self), (self.signum,)

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        """The shell's convention for a process ended by a signal: 128 + its number (SIGTERM 143, SIGINT 130)."""
        return 128 + self.signum


def _raise_interrupted(signum: int, frame: Any) -> None:
    raise Interrupted(signum)


@contextmanager
def interrupts_raise() -> Iterator[None]:
    """Within: SIGTERM and SIGINT raise :class:`Interrupted` in the main thread (where their handler is still
    Python's default, so a launcher's own handlers, submitit's say, are left alone); restored on leaving."""
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in SIGNALS:
            handler = signal.getsignal(signum)
            if handler in (signal.SIG_DFL, signal.default_int_handler):
                previous[signum] = signal.signal(signum, _raise_interrupted)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextmanager
def shielded() -> Iterator[None]:
    """Within: SIGTERM and SIGINT are ignored, so that a second signal cannot cut short the record of the first."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, signal.SIG_IGN) for signum in SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def objective(record: dict[str, Any]) -> float:
    """What a sweeper optimises: the primary metric on the *validation* set (never the test set), in the direction
    the task declares; for a run that is not ok the worst value, :data:`FAILED_OBJECTIVE` (its negative when higher
    is better)."""
    name = record.get("primary_metric")
    value = record.get(f"val/{name}")
    if record.get("status") == "ok" and isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    higher_is_better = (record.get("metric_info") or {}).get(name, {}).get("higher_is_better", False)
    return -FAILED_OBJECTIVE if higher_is_better else FAILED_OBJECTIVE


def declarations(task_target: str) -> dict[str, Any]:
    """``primary_metric`` and ``metric_info`` of the task class ``task_target`` (empty when it cannot be loaded)."""
    from hydra.utils import get_class

    try:
        task = get_class(task_target)
        return {"primary_metric": task.primary_metric, "metric_info": task.metric_info()}
    except Exception:  # noqa: BLE001 - a record of a failed run is written whatever else failed
        return {}


def job_record(cfg: DictConfig, overrides: list[str]) -> dict[str, Any]:
    """The identity every record of the job ``cfg`` starts with."""
    return {"task": cfg.task.name, "method": cfg.method.name, "regime": cfg.regime.name, "seed": cfg.seed, "overrides": overrides}


def record_lost_job(run_dir: str | Path, cfg: DictConfig, overrides: list[str], status: str, error: str, declared: bool = True) -> dict[str, Any]:
    """Record a job that could not record itself (its worker was killed, or the sweep was interrupted while it ran)
    as ``status`` with ``error``, unless it has a record by now; return the record that stands. ``declared``: with
    the task's metric declarations (which imports the task's module, and so torch)."""
    record = {**job_record(cfg, overrides), **(declarations(cfg.task._target_) if declared else {}), "status": status, "error": error}
    if not write_record(run_dir, record, overwrite=False):
        try:
            return load_record(Path(run_dir) / RECORD_NAME)
        except ValueError:  # an unreadable record stands for nothing
            write_record(run_dir, record)
    return record


#: what Hydra writes into a run directory before the job starts: its saved config, and the job's log file.
HYDRA_START_FILES = {CONFIG_PATH, CONFIG_PATH.with_name("hydra.yaml"), OVERRIDES_PATH}


def discard_run_dir(run_dir: str | Path) -> bool:
    """Remove the directory of a single run that was refused before any work: only when :class:`Preflight` saw this
    run create it and it holds nothing but what Hydra writes at a job's start; then its parents that this run
    created, if empty. Returns whether it was removed."""
    run_dir = Path(run_dir).absolute()
    created = Preflight.created
    if created is None or created[0] != run_dir:
        return False
    files = {p.relative_to(run_dir) for p in run_dir.rglob("*") if not p.is_dir()}
    if not all(f in HYDRA_START_FILES or (f.parent == Path(".") and f.suffix == ".log") for f in files):
        return False
    shutil.rmtree(run_dir)
    parent = run_dir.parent
    while parent != created[1] and parent.is_dir() and not any(parent.iterdir()):
        parent.rmdir()
        parent = parent.parent
    return True


def check_mode(config: DictConfig) -> None:
    """Refuse a sweep grid or an Optuna search chosen for a single run (they need ``-m``)."""
    choices = config.hydra.runtime.get("choices") or {}
    for group in ("sweep", "hparams_search"):
        choice = choices.get(group)
        require(choice in (None, "null"), group, f"{group}={choice} is a multirun: add -m (python -m mbdl -m {group}={choice} ...)")
    require(not config.hydra.sweeper.get("params"), "hydra.sweeper.params", "a search space is for a multirun: add -m")


def check_resume(config: DictConfig, sweep_dir: Path) -> None:
    """Refuse ``resume=true`` into a sweep directory that holds jobs the grid does not have (a different grid: its
    records would be mixed with this one's). Sweepers other than the basic one draw their jobs as they go: not checked."""
    grid = sweep_grid(config) if config.get("resume") is True and sweep_dir.is_dir() else None
    if grid is None:
        return
    planned = {same_job(job) for job in grid}
    started = sorted(p.parent.parent for p in sweep_dir.rglob(str(OVERRIDES_PATH)))
    foreign = [d for d in started if same_job(job_identity(d)["overrides"]) not in planned]
    if foreign:
        example = " ".join(same_job(job_identity(foreign[0])["overrides"]))
        raise ConfigError(
            f"resume: {sweep_dir} holds {len(foreign)} of {len(started)} jobs that this grid does not have "
            f"(e.g. {foreign[0].name}: {example}); resume a sweep with its own grid (more jobs may be added), or give a new hydra.sweep.dir"
        )


def refuse(check: Any) -> None:
    """Run ``check()``; on a :class:`ConfigError` print it as one line and exit with status 1."""
    try:
        check()
    except ConfigError as error:
        raise SystemExit(f"error: {error}") from None


class Preflight(Callback):
    """Hydra callback: the checks of :func:`mbdl.config.preflight` and of the output directory before Hydra creates
    the run directory (a single run) or the sweep directory (a multirun; each job then checks its own config).

    ``created`` holds, for a single run that passed, its run directory and the nearest folder that existed (when
    the run directory did not exist yet): what :func:`discard_run_dir` may remove if a later check refuses the run.
    """

    created: ClassVar[tuple[Path, Path] | None] = None

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        refuse(lambda: self._check_run(config))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        refuse(lambda: self._check_multirun(config))

    @classmethod
    def _check_run(cls, config: DictConfig) -> None:
        check_mode(config)
        preflight(config)
        run_dir = Path(str(config.hydra.run.dir)).absolute()
        existing = check_writable(run_dir, *_directory_option(config, run_dir, "hydra.run.dir"))
        cls.created = None if run_dir.exists() else (run_dir, existing)

    @staticmethod
    def _check_multirun(config: DictConfig) -> None:
        preflight(config, declared=False)
        sweep_dir = Path(str(config.hydra.sweep.dir)).absolute()
        check_writable(sweep_dir, *_directory_option(config, sweep_dir, "hydra.sweep.dir"))
        check_resume(config, sweep_dir)


def _directory_option(config: DictConfig, directory: Path, key: str) -> tuple[str, Path | None]:
    """The option that placed ``directory`` and the folder to name: ``paths.root`` (``MBDL_OUTPUTS``) when it lies
    under it, else ``key`` and the directory itself."""
    root = Path(str(config.paths.root)).absolute()
    return ("paths.root (MBDL_OUTPUTS)", root) if directory.is_relative_to(root) else (key, None)
