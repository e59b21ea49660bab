"""Experiment trackers: Weights & Biases that never blocks, and closing every tracker after each job.

``logger=wandb`` builds :func:`wandb_logger`: online when an API key is configured
(``WANDB_API_KEY`` or a ``~/.netrc`` entry written by ``wandb login``), offline otherwise
(``wandb sync <run dir>/wandb/offline-run-*`` uploads it later); ``WANDB_MODE`` wins over both.
"""

from __future__ import annotations

import netrc
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from omegaconf import DictConfig, OmegaConf

from mbdl.results.record import CONFIG_PATH, FIGURE_NAME, flatten

#: the record keys copied to the tracker's run summary (the test metrics are logged by the trainer).
SUMMARY_KEYS = ("status", "error", "primary_metric", "params", "train_time_s", "infer_ms_per_sample")


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


def wandb_logger(save_dir: str, project: str, entity: str | None = None, job_type: str | None = None, tags: list[str] | None = None) -> Any:
    """Lightning's ``WandbLogger`` for the current Hydra job, named, grouped and tagged from its config.

    The config is logged flat (see :func:`flat_config`); a multirun's jobs share the group named
    after the sweep directory. The run directory holds the wandb files (``<run dir>/wandb``).
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from lightning.pytorch.loggers import WandbLogger

    hydra_cfg = HydraConfig.get()
    cfg = _job_config(Path(hydra_cfg.runtime.output_dir))
    sweep = Path(hydra_cfg.sweep.dir).name if hydra_cfg.mode == RunMode.MULTIRUN else None
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


def _job_config(run_dir: Path) -> DictConfig:
    """The job's composed config, as Hydra saved it in ``<run dir>/.hydra/config.yaml`` before the job started."""
    return OmegaConf.load(run_dir / CONFIG_PATH)


def finish_trackers(record: dict[str, Any], run_dir: str | Path) -> None:
    """Close the job's W&B run (if one is open): log the run's figure and the record's summary, exit code 1 if failed.

    Without this, every job of a multirun (and of a reused joblib worker) logs into the first job's run.
    """
    wandb = sys.modules.get("wandb")
    if wandb is None or wandb.run is None:
        return
    figure = Path(run_dir) / FIGURE_NAME
    if figure.is_file():
        wandb.log({"figure": wandb.Image(str(figure))})
    wandb.run.summary.update({key: record[key] for key in SUMMARY_KEYS if key in record})
    wandb.finish(exit_code=0 if record.get("status") == "ok" else 1)
