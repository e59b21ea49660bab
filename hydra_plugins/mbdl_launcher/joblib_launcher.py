"""``hydra/launcher=joblib`` (configs/hydra/launcher/joblib.yaml): parallel jobs in worker processes that survive the
loss of one of them.

Hydra's joblib launcher runs the jobs through one ``joblib.Parallel`` call on loky's pool: when one worker dies
(SIGKILL, which is what the out-of-memory killer sends) loky breaks the whole pool, the call raises
``TerminatedWorkerError``, the other jobs in flight are lost and the sweep ends without a summary. Here each
worker is a pool of its own (one loky worker, reused from job to job, so torch and Lightning are imported once
per worker): a dead worker takes down only its own job, which is recorded ``failed`` with the cause, and a new
worker takes its place. On SIGTERM/SIGINT the jobs in flight are recorded ``interrupted`` and the workers stopped.

Options (``hydra.launcher.*``): ``n_jobs``, the number of workers (-1: one per core); the joblib launcher's other
options are accepted for compatibility and have no effect.
"""

from __future__ import annotations

import logging
import os
import re
from collections import deque
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import (
    JobReturn,
    JobStatus,
    configure_log,
    filter_overrides,
    setup_globals,
)
from hydra_plugins.hydra_joblib_launcher import _core
from hydra_plugins.hydra_joblib_launcher.joblib_launcher import (
    JoblibLauncher as _JoblibLauncher,
)
from joblib import cpu_count
from joblib.externals.loky import BrokenProcessPool, ProcessPoolExecutor
from omegaconf import DictConfig, OmegaConf, open_dict

from mbdl.jobs import Interrupted, objective, record_lost_job, shielded
from mbdl.results.summary import job_line, report_job

log = logging.getLogger(__name__)


def execute_job(*args: Any) -> JobReturn:
    """The joblib launcher's execution of one job in a worker (:func:`hydra_plugins.hydra_joblib_launcher._core.execute_job`)."""
    return _core.execute_job(*args)


def _workers(n_jobs: int | None, jobs: int) -> int:
    """joblib's reading of ``n_jobs`` (-1: every core, -2: all but one, ...), at most one worker per job."""
    n_jobs = n_jobs or 1
    count = n_jobs if n_jobs > 0 else max(cpu_count() + 1 + n_jobs, 1)
    return max(min(count, jobs), 1)


class JoblibLauncher(_JoblibLauncher):
    """Hydra's joblib launcher (same options, same job execution) with one single-worker loky pool per slot."""

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        setup_globals()
        assert self.config is not None and self.task_function is not None and self.hydra_context is not None
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        jobs = deque((initial_job_idx + i, list(overrides)) for i, overrides in enumerate(job_overrides))
        slots = [None] * _workers(self.joblib.get("n_jobs"), len(jobs))
        log.info(f"Joblib launcher: {len(jobs)} jobs on {len(slots)} workers, sweep output dir: {sweep_dir}")
        for idx, overrides in jobs:
            log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
        singleton_state = Singleton.get_state()
        running: dict[Future, tuple[int, int, list[str]]] = {}
        returns: dict[int, JobReturn] = {}
        try:
            while jobs or running:
                for slot, pool in enumerate(slots):
                    if jobs and slot not in {s for s, _, _ in running.values()}:
                        if pool is None:
                            pool = slots[slot] = ProcessPoolExecutor(max_workers=1)
                        idx, overrides = jobs.popleft()
                        args = (idx, overrides, self.hydra_context, self.config, self.task_function, singleton_state)
                        running[pool.submit(execute_job, *args)] = (slot, idx, overrides)
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    slot, idx, overrides = running.pop(future)
                    try:
                        returns[idx] = future.result()
                    except BrokenProcessPool as error:  # the worker died: only this job is lost
                        slots[slot].shutdown(wait=False)
                        slots[slot] = None
                        returns[idx] = self._lost(idx, overrides, "failed", f"WorkerKilled: {_cause(error)}")
                    except Interrupted as stop:  # a signal reached the worker only: its job recorded itself
                        returns[idx] = self._lost(idx, overrides, "interrupted", f"Interrupted: {stop.name} while the job ran")
        except BaseException as error:
            with shielded():
                for pool in slots:
                    if pool is not None:
                        pool.shutdown(wait=False, kill_workers=True)
                slots = []
                name = error.name if isinstance(error, Interrupted) else type(error).__name__
                for _, idx, overrides in running.values():  # what the workers were doing when the sweep was stopped
                    self._lost(idx, overrides, "interrupted", f"Interrupted: {name} while the job ran", report=False)
            if isinstance(error, Interrupted):
                error.run_dir, error.sweep_dir = str(sweep_dir), str(sweep_dir.absolute())
            raise
        finally:
            for pool in slots:
                if pool is not None:
                    pool.shutdown(wait=True)
        return [returns[initial_job_idx + i] for i in range(len(job_overrides))]

    def _job_config(self, idx: int, overrides: list[str]) -> DictConfig:
        """The config of job ``idx`` as the worker composed it (the same cache: the same sweep directory)."""
        config = self.hydra_context.config_loader.load_sweep_config(self.config, overrides)
        with open_dict(config):
            config.hydra.job.id = f"{config.hydra.job.name}_{idx}"
            config.hydra.job.num = idx
        return config

    def _lost(self, idx: int, overrides: list[str], status: str, error: str, report: bool = True) -> JobReturn:
        """Record job ``idx``, which could not record itself, and the :class:`JobReturn` that stands for it;
        ``report``: print its line and the sweep's progress (a stopped sweep records quickly, without them)."""
        config = self._job_config(idx, overrides)
        previous = HydraConfig.instance().cfg
        HydraConfig.instance().set_config(config)
        try:
            run_dir = Path(str(config.hydra.sweep.dir)) / str(OmegaConf.select(config, "hydra.sweep.subdir"))
        finally:
            HydraConfig.instance().cfg = previous
        task_cfg = OmegaConf.masked_copy(config, [k for k in config if k != "hydra"])
        record = record_lost_job(run_dir, task_cfg, overrides, status, error, declared=report)
        if report:
            print(job_line(record), flush=True)
            line = report_job(Path(str(config.hydra.sweep.dir)), run_dir.name, record.get("status", status))
            if line:
                print(line, flush=True)
        return JobReturn(overrides=overrides, cfg=task_cfg, hydra_cfg=config, working_dir=os.getcwd(), task_name=config.hydra.job.name, status=JobStatus.COMPLETED, _return_value=objective(record))


def _cause(error: BaseException) -> str:
    """Why the worker died, from loky's message: its exit code (SIGKILL(-9) is the out-of-memory killer's signal)."""
    codes = re.search(r"exit codes of the workers are \{(.*?)\}", str(error))
    text = f"exit code {codes.group(1)}" if codes else f"{type(error).__name__}: {error}".splitlines()[0]
    hint = ", the out-of-memory killer's signal (or a kill -9)" if "SIGKILL" in text else ""
    return f"the worker process running this job died ({text}{hint})"
