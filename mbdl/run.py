"""One run: config -> task -> method -> simulated data -> Lightning fit/test -> run record."""

from __future__ import annotations

import inspect
import logging
import time
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch
from hydra.utils import get_object, instantiate
from omegaconf import DictConfig, OmegaConf

from mbdl.config import check_choice, check_positive, require
from mbdl.methods.base import LOSSES, Method
from mbdl.tasks.base import Task
from mbdl.training.callbacks import BestWeights
from mbdl.training.data import SimulatedData
from mbdl.training.module import Experiment, training_phases

#: keys of ``cfg.method`` that configure the run rather than the method's constructor.
RUN_KEYS = ("name", "optim")


class LightningNoise(logging.Filter):
    """Drops Lightning's litlogger advertisement, its note that a fit ran its ``max_epochs``, and repeats of
    its device summary, which every Trainer prints (48 Trainers in a 16-layer layer-wise run)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "litlogger" in message:
            return False
        if message.startswith("`Trainer.fit` stopped: `max_epochs="):  # every fit runs its max_epochs
            return False
        if message.startswith(("GPU available", "TPU available")):
            if message in self.seen:
                return False
            self.seen.add(message)
        return True


logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(LightningNoise())
# lightning 2.6 with torch 2.13: an internal deprecation, not ours to fix
warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated", category=FutureWarning)
# regime.fresh_data: the training stream has a length and is read in the main process (no workers to split it)
warnings.filterwarnings("ignore", message="Your `IterableDataset` has `__len__` defined")


def check_options(node: DictConfig, prefix: str) -> None:
    """Refuse keys of ``node`` that its ``_target_`` does not take (e.g. an experiment's settings for another method)."""
    parameters = inspect.signature(get_object(node._target_)).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    valid = [name for name in parameters if name != "task"]
    for key in node:
        if key != "_target_":
            require(key in valid, f"{prefix}.{key}", f"is not an option of {node._target_}; its options are {', '.join(valid)}")


def build(cfg: DictConfig) -> tuple[Task, Method, SimulatedData, Experiment]:
    """Validate the options and build every part of a run; no data are simulated yet.

    Seeds every generator with ``cfg.seed`` first, so that the methods' initial weights are
    reproducible (the data have their own per-split generators).
    """
    check_positive(cfg.seed, "seed", strict=False, integer=True)
    check_choice(cfg.regime.loss, "regime.loss", LOSSES)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    task: Task = instantiate(OmegaConf.masked_copy(cfg.task, [k for k in cfg.task if k != "name"]))
    method_kwargs = OmegaConf.masked_copy(cfg.method, [k for k in cfg.method if k not in RUN_KEYS])
    check_options(method_kwargs, "method")
    method: Method = instantiate(method_kwargs, task=task, _convert_="all")
    optim = cfg.method.optim
    check_positive(optim.epochs, "method.optim.epochs", strict=False, integer=True)
    data = SimulatedData(task, cfg.seed, optim.batch_size, cfg.regime.n_train, fresh=cfg.regime.fresh_data)
    module = Experiment(method, cfg.regime.loss, optim.lr, optim.weight_decay, optim.scheduler)
    return task, method, data, module


def make_trainer(cfg: DictConfig, output_dir: str, loggers: list[Any] | None = None) -> L.Trainer:
    """The Lightning Trainer of ``cfg.trainer`` for one fit or test (best weights kept in memory)."""
    return instantiate(
        cfg.trainer,
        max_epochs=cfg.method.optim.epochs,
        logger=loggers or False,
        callbacks=[BestWeights()],
        default_root_dir=output_dir,
    )


def fit(cfg: DictConfig, module: Experiment, data: SimulatedData, output_dir: str, loggers: list[Any] | None = None) -> float:
    """Train ``module`` when its method has trainable parameters and epochs to run; return the seconds it took.

    The training stream (shuffling, dropout) restarts from ``cfg.seed`` whatever building the
    method drew; there is one fit per phase: a single one, or the stages of layer-wise training
    (``regime.lr_decay``).
    """
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    method = module.method
    start = time.perf_counter()
    if method.trainable_parameters and cfg.method.optim.epochs:
        phases = training_phases(method, cfg.method.optim.lr, cfg.regime.get("lr_decay"), cfg.regime.get("warm_start", False))
        for index, phase in enumerate(phases, 1):
            if phase.warm_start is not None:
                phase.warm_start()
            module.enter(phase)
            trainer = make_trainer(cfg, output_dir, loggers)
            trainer.fit(module, datamodule=data)
            if len(phases) > 1:
                best = next(c.best for c in trainer.callbacks if isinstance(c, BestWeights))
                print(
                    f"phase {index}/{len(phases)}, depth {phase.depth}: {sum(p.numel() for p in phase.parameters)} parameters "
                    f"at lr {phase.lr:.2g}: best val/loss {best:.4g} ({time.perf_counter() - start:.0f} s)",
                    flush=True,
                )
        module.enter(None)
    return time.perf_counter() - start


def run(cfg: DictConfig, output_dir: str) -> dict[str, Any]:
    """Run one experiment and return its record (without writing it)."""
    if cfg.threads is not None:
        check_positive(cfg.threads, "threads", integer=True)
        torch.set_num_threads(cfg.threads)
    task, method, data, module = build(cfg)
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values()]
    train_time_s = fit(cfg, module, data, output_dir, loggers)
    make_trainer(cfg, output_dir, loggers).test(module, datamodule=data, verbose=False)
    figure = task.figure(module.estimate, data.split("test"))
    if figure is not None:
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        figure.savefig(Path(output_dir) / "figure.png", dpi=100)
        plt.close(figure)
    for logger in loggers:
        logger.finalize("success")
    return {"primary_metric": task.primary_metric, "params": method.trainable_parameters, "train_time_s": train_time_s, **module.results}
