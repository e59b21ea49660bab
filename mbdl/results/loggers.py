"""Experiment trackers (Weights & Biases, TensorBoard, MLflow), and closing every tracker after each job.

``logger=wandb`` builds :func:`wandb_logger`: online when an API key is configured
(``WANDB_API_KEY`` or a ``~/.netrc`` entry written by ``wandb login``), offline otherwise
(``wandb sync <run dir>/wandb/offline-run-*`` uploads it later); ``WANDB_MODE`` wins over both.
``logger=tensorboard`` builds :func:`tensorboard_logger` (event files in ``<run dir>/tensorboard``),
``logger=mlflow`` builds :func:`mlflow_logger` (a run in a local SQLite tracking store by default).

Every tracker logs the job's flat config, its test metrics and bounds (through the trainer), and,
when the job ends, whatever the outcome, :func:`finish_trackers` adds the per-iteration curve,
the figure and the record's status and closes it (a failed job is marked failed).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import netrc
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from omegaconf import DictConfig, OmegaConf

from mbdl.config import ConfigError, require
from mbdl.results.record import CONFIG_PATH, FIGURE_NAME, RESULT_PREFIXES, flatten
from mbdl.results.tables import is_number

#: the record keys copied to the tracker's run summary (the test metrics are logged by the trainer).
SUMMARY_KEYS = ("status", "error", "primary_metric", "params", "train_time_s", "infer_ms_per_sample")

#: the record's numbers that the trainer does not log (TensorBoard and MLflow get them when the job ends).
UNLOGGED_NUMBERS = ("params", "train_time_s")

#: the trackers built for the job running in this process, closed by :func:`finish_trackers`.
_OPEN: list[Any] = []

#: tracking-store URI schemes MLflow understands (``logger.mlflow.tracking_uri``).
MLFLOW_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql", "file", "http", "https", "databricks")

#: how MLflow calls the two ends of a job.
MLFLOW_STATUS = {True: "FINISHED", False: "FAILED"}


def has_api_key() -> bool:
    """Whether a W&B API key is configured: ``WANDB_API_KEY`` or a netrc entry for the W&B host."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    path = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        return path.is_file() and netrc.netrc(path).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def wandb_mode() -> str:
    """``WANDB_MODE`` if set, else ``"online"`` with an API key and ``"offline"`` without (never a login prompt)."""
    return os.environ.get("WANDB_MODE") or ("online" if has_api_key() else "offline")


def flat_config(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as one flat dict ``{"task.n": 150, "method.optim.lr": 1e-3, ...}`` (dashboards filter on these)."""
    return flatten(OmegaConf.to_container(cfg, resolve=True))


def run_identity(cfg: DictConfig, sweep: str | None) -> dict[str, Any]:
    """Name, group and tags of a tracked run: task, method, regime and seed; the sweep it belongs to."""
    name = f"{cfg.task.name}-{cfg.method.name}-{cfg.regime.name}-seed{cfg.seed}"
    tags = [cfg.task.name, cfg.method.name, cfg.regime.name] + ([f"sweep:{sweep}"] if sweep else [])
    return {"name": name, "group": sweep or f"{cfg.task.name}-{cfg.method.name}", "tags": tags}


def _current_job() -> tuple[DictConfig, str | None, Path]:
    """The running Hydra job's composed config, its sweep's name (``None`` for a single run) and its run directory."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    sweep = Path(hydra_cfg.sweep.dir).name if hydra_cfg.mode == RunMode.MULTIRUN else None
    return _job_config(run_dir), sweep, run_dir


def _job_config(run_dir: Path) -> DictConfig:
    """The job's composed config, as Hydra saved it in ``<run dir>/.hydra/config.yaml`` before the job started."""
    return OmegaConf.load(run_dir / CONFIG_PATH)


def wandb_logger(save_dir: str, project: str, entity: str | None = None, job_type: str | None = None, tags: list[str] | None = None) -> Any:
    """Lightning's ``WandbLogger`` for the current Hydra job, named, grouped and tagged from its config.

    The config is logged flat (see :func:`flat_config`); a multirun's jobs share the group named
    after the sweep directory. The run directory holds the wandb files (``<run dir>/wandb``).
    """
    from lightning.pytorch.loggers import WandbLogger

    cfg, sweep, _ = _current_job()
    identity = run_identity(cfg, sweep)
    identity["tags"] += list(tags or [])
    return WandbLogger(
        save_dir=save_dir,
        project=project,
        entity=entity,
        job_type=job_type,
        mode=wandb_mode(),
        config=flat_config(cfg),
        reinit="finish_previous",
        **identity,
    )


def _scalar_params(params: dict[str, Any]) -> dict[str, Any]:
    """Hyperparameter values as TensorBoard takes them: numbers, strings and booleans as they are, the rest as text."""
    return {key: value if isinstance(value, (bool, int, float, str)) else str(value) for key, value in params.items()}


def _metrics(record: dict[str, Any]) -> dict[str, float]:
    """The record's finite results (``val/``, ``test/``, ``bound/``, ``reference/`` of every metric)."""
    return {key: float(value) for key, value in record.items() if key.startswith(RESULT_PREFIXES) and is_number(value)}


def _unlogged_numbers(record: dict[str, Any]) -> dict[str, float]:
    """The record's :data:`UNLOGGED_NUMBERS` that are finite numbers."""
    return {key: float(record[key]) for key in UNLOGGED_NUMBERS if is_number(record.get(key))}


def _curve(record: dict[str, Any]) -> tuple[str, list[float]] | None:
    """The record's per-iteration curve of the primary metric (``curve/<metric>``, iterations from 1), if it has one."""
    key = f"curve/{record.get('primary_metric')}"
    values = record.get(key)
    return (key, values) if isinstance(values, list) else None


@contextlib.contextmanager
def _extra(name: str) -> Iterator[None]:
    """Turn a missing package of ``logger=<name>`` into one line naming the extra that installs it."""
    try:
        yield
    except ModuleNotFoundError as error:
        raise ConfigError(f"logger={name} needs the package {error.name}: pip install 'mbdl[{name}]'") from error


def tensorboard_logger(save_dir: str, name: str = "tensorboard") -> Any:
    """Lightning's ``TensorBoardLogger`` writing to ``<save_dir>/<name>`` for the current Hydra job.

    The training and test scalars come from the trainer (``train/loss``, ``val/loss``, ``test/<metric>``,
    ``bound/<metric>``); :func:`finish_trackers` adds the HParams entry (the flat config against the test
    metrics and bounds), ``curve/<metric>`` per iteration, the figure and the status, then closes the files.
    """
    require(bool(name) and "/" not in name, "logger.tensorboard.name", f"must be a folder name, got {name!r}")
    with _extra("tensorboard"):
        from lightning.pytorch.loggers import TensorBoardLogger
        from torch.utils.tensorboard.summary import hparams  # noqa: F401 - needs the tensorboard package

    class Tracker(TensorBoardLogger):
        kind = "TensorBoard"

        def finish(self, record: dict[str, Any], figure: Path | None) -> None:
            from matplotlib.image import imread
            from torch.utils.tensorboard.summary import hparams

            writer = self.experiment
            for summary in hparams(_scalar_params(dict(self.hparams)), _metrics(record)):  # the HParams dashboard's row of this run
                writer._get_file_writer().add_summary(summary)
            for key, value in _unlogged_numbers(record).items():
                writer.add_scalar(key, value, 0)
            if (curve := _curve(record)) is not None:
                for iteration, value in enumerate(curve[1], 1):
                    if value is not None:
                        writer.add_scalar(curve[0], value, iteration)
            if figure is not None:
                writer.add_image("figure", imread(figure), dataformats="HWC")
            writer.add_text("status", f"{record.get('status')}: {record['error']}" if record.get("error") else str(record.get("status")))
            self.finalize("success" if record.get("status") == "ok" else "failed")

    cfg, _, _ = _current_job()
    logger = Tracker(save_dir, name=name, version="", default_hp_metric=False)
    logger.log_hyperparams(flat_config(cfg))  # kept (and saved to hparams.yaml); written with the metrics when the job ends
    _OPEN.append(logger)
    return logger


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///...`` URI (relative paths from the working directory), else ``None``."""
    prefix = "sqlite:///"
    return Path(uri[len(prefix):]).resolve() if uri.startswith(prefix) and len(uri) > len(prefix) else None


@contextlib.contextmanager
def file_lock(path: Path | None) -> Iterator[None]:
    """Hold an exclusive lock on ``<path>.lock`` (nothing when ``path`` is ``None``): one process at a time creates a SQLite store."""
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def mlflow_logger(tracking_uri: str, experiment_name: str = "mbdl", artifact_location: str | None = None,
                  tags: dict[str, Any] | None = None) -> Any:
    """Lightning's ``MLFlowLogger`` for the current Hydra job: run ``<task>-<method>-<regime>-seed<seed>`` in ``experiment_name``.

    Parameters are the flat config; tags ``task``, ``method``, ``regime``, ``seed``, ``group`` (the sweep
    directory's name), ``run_dir`` and ``tags``. A relative ``sqlite:///`` path is taken from the working
    directory and made absolute (every job of a sweep, on any launcher, writes to the same file); the
    store, the experiment and the run are created under a file lock, so parallel jobs do not race to
    create the tables. ``artifact_location=None``: ``<folder of the database>/mlartifacts`` for a SQLite
    store, the server's default otherwise (used when the experiment is created).
    """
    scheme = urlparse(tracking_uri).scheme if isinstance(tracking_uri, str) else ""
    require(scheme.split("+")[0] in MLFLOW_SCHEMES, "logger.mlflow.tracking_uri",
            f"got {tracking_uri!r}; a URI such as sqlite:///outputs/mlflow.db, postgresql://host/db or http://host:5000")
    require(bool(experiment_name), "logger.mlflow.experiment_name", "must not be empty")
    with _extra("mlflow"):
        from lightning.pytorch.loggers import MLFlowLogger
        from mlflow.exceptions import MlflowException

    class Tracker(MLFlowLogger):
        kind = "MLflow"

        def finish(self, record: dict[str, Any], figure: Path | None) -> None:
            from mlflow.entities import Metric

            client, run_id, now = self.experiment, self.run_id, int(time.time() * 1000)
            metrics = [Metric(key, value, now, 0) for key, value in _unlogged_numbers(record).items()]
            if (curve := _curve(record)) is not None:
                metrics += [Metric(curve[0], value, now, step) for step, value in enumerate(curve[1], 1) if value is not None]
            client.log_batch(run_id, metrics=metrics)
            for key in ("status", "error"):
                if record.get(key):
                    client.set_tag(run_id, key, str(record[key])[:5000])
            if figure is not None:
                client.log_artifact(run_id, str(figure))
            client.set_terminated(run_id, MLFLOW_STATUS[record.get("status") == "ok"])

    for name in ("alembic", "mlflow.store.db.utils"):  # the lines of a new store's migrations
        logging.getLogger(name).setLevel(logging.WARNING)
    database = sqlite_path(tracking_uri)
    if database is not None:
        tracking_uri = f"sqlite:///{database}"
        artifact_location = artifact_location or str(database.parent / "mlartifacts")
    if artifact_location and "://" not in artifact_location:
        artifact_location = str(Path(artifact_location).resolve())
    cfg, sweep, run_dir = _current_job()
    identity = run_identity(cfg, sweep)
    run_tags = {"task": cfg.task.name, "method": cfg.method.name, "regime": cfg.regime.name, "seed": cfg.seed,
                "group": identity["group"], "run_dir": str(run_dir), **(tags or {})}
    with file_lock(database):
        logger = Tracker(experiment_name=experiment_name, run_name=identity["name"], tracking_uri=tracking_uri,
                         tags=run_tags, artifact_location=artifact_location)
        try:
            logger.experiment  # noqa: B018 - creates the store's tables, the experiment and the run
        except MlflowException as error:
            raise ConfigError(f"logger.mlflow.tracking_uri: {tracking_uri}: {str(error).splitlines()[0]}") from error
        logger.log_hyperparams(flat_config(cfg))
    _OPEN.append(logger)
    return logger


def finish_trackers(record: dict[str, Any], run_dir: str | Path) -> None:
    """Close every tracker of the job, whatever its outcome: log the figure, the curve and the record's status; failed if it failed.

    Without this, every job of a multirun (and of a reused joblib worker) logs into the first
    job's W&B run, and a failed job's TensorBoard and MLflow runs would stay open or be marked finished.
    A tracker that cannot be finished is reported on stderr; the job's record is already written.
    """
    figure = Path(run_dir) / FIGURE_NAME
    figure = figure if figure.is_file() else None
    while _OPEN:
        tracker = _OPEN.pop(0)
        try:
            tracker.finish(record, figure)
        except Exception as error:  # noqa: BLE001 - the record is written; a tracker's failure must not hide it
            print(f"warning: could not finish the job's {tracker.kind} run: {type(error).__name__}: {error}",
                  file=sys.stderr, flush=True)
    _finish_wandb(record, figure)


def _finish_wandb(record: dict[str, Any], figure: Path | None) -> None:
    """Close the job's W&B run (if one is open): the figure as an image, the record's summary, exit code 1 if it failed."""
    wandb = sys.modules.get("wandb")
    if wandb is None or wandb.run is None:
        return
    if figure is not None:
        wandb.log({"figure": wandb.Image(str(figure))})
    wandb.run.summary.update({key: record[key] for key in SUMMARY_KEYS if key in record})
    wandb.finish(exit_code=0 if record.get("status") == "ok" else 1)
