"""One run: config -> task -> method -> simulated data -> Lightning fit/test -> run record."""

from __future__ import annotations

import inspect
import logging
import os
import time
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch
from hydra.utils import get_class, get_object, instantiate
from lightning.pytorch.callbacks import EarlyStopping
from omegaconf import DictConfig, OmegaConf

from mbdl.config import check_choice, check_memory, check_positive, preflight, require
from mbdl.methods.base import LOSSES, Method, fits_in_closed_form, training_phases
from mbdl.results.record import FIGURE_NAME, WEIGHTS_NAME
from mbdl.tasks.base import Task
from mbdl.training.callbacks import BestWeights
from mbdl.training.data import EVAL_BATCH_SIZE, SimulatedData
from mbdl.training.distributed import is_rank_zero
from mbdl.training.module import Experiment

#: the config folder of the package (the spectrum files of each task are under ``spectrum/<task>/``).
CONFIGS = Path(__file__).resolve().parents[1] / "configs"
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
# a machine with SLURM installed (a login node, this CI): Lightning's hint to run under srun, for a job that is not one
warnings.filterwarnings("ignore", message="The `srun` command is available on your system but is not used")
# regime.fresh_data: the training stream has a length and is read in the main process (no workers to split it)
warnings.filterwarnings("ignore", message="Your `IterableDataset` has `__len__` defined")
# trainer=ddp: the padding of the evaluation sampler is dropped when the ranks' estimates are gathered (mbdl.training.distributed)
warnings.filterwarnings("ignore", message="Using `DistributedSampler` with the dataloaders. During `trainer.test")
# lightning 2.6's all_gather with torch 2.13: an internal deprecation, not ours to fix
warnings.filterwarnings("ignore", message="torch.distributed.nn.functional.all_gather is deprecated")


def _options(node: DictConfig, excluded: tuple[str, ...]) -> DictConfig:
    """``node`` resolved (its interpolations may point anywhere in the config) without the keys ``excluded``."""
    resolved = OmegaConf.create(OmegaConf.to_container(node, resolve=True))
    return OmegaConf.masked_copy(resolved, [k for k in resolved if k not in excluded])


def check_options(node: DictConfig, prefix: str) -> None:
    """Refuse keys of ``node`` that its ``_target_`` does not take (e.g. an experiment's settings for another method)."""
    parameters = inspect.signature(get_object(node._target_)).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    valid = [name for name in parameters if name != "assumed"]
    for key in node:
        if key != "_target_":
            require(key in valid, f"{prefix}.{key}", f"is not an option of {node._target_}; its options are {', '.join(valid)}")


def optimizer_settings(cfg: DictConfig, method: Method) -> tuple[int, int, float, Any, Any]:
    """``epochs``, ``batch_size``, ``lr`` and the optimizer and scheduler factories of ``method.optim``.

    A method with nothing to train needs no ``optim`` block (its own config carries none; an experiment's
    block for another method is ignored); one that trains must have it.
    """
    optim = cfg.method.get("optim")
    if not method.trainable_parameters:
        return 0, EVAL_BATCH_SIZE, 0.0, None, None
    require(optim is not None and "optimizer" in optim, "method.optim", f"{type(method).__name__} has trainable parameters but no optim block with an optimizer")
    scheduler = optim.get("scheduler")
    _check_target(optim.optimizer, "method.optim.optimizer", torch.optim.Optimizer)
    if scheduler is not None:
        _check_target(scheduler, "method.optim.scheduler", torch.optim.lr_scheduler.LRScheduler)
    return optim.epochs, optim.batch_size, optim.lr, instantiate(optim.optimizer), scheduler and instantiate(scheduler)


def _check_target(node: DictConfig, option: str, base: type) -> None:
    """Refuse a ``_target_`` that is not a subclass of ``base`` (a typo in an optimizer's class name, say)."""
    target = node.get("_target_")
    try:
        ok = issubclass(get_class(target), base)
    except Exception:  # noqa: BLE001 - any failure to import the target is the same user error
        ok = False
    require(ok, f"{option}._target_", f"{target!r} is not a {base.__module__}.{base.__name__} (e.g. {'torch.optim.Adam' if base is torch.optim.Optimizer else 'torch.optim.lr_scheduler.CosineAnnealingLR'})")


def make_method(cfg: DictConfig, assumed: Any) -> Method:
    """The method of ``cfg.method``, built from the task's assumed model alone."""
    if "_target_" not in cfg.method:
        points = sorted(p.stem for p in (CONFIGS / "spectrum" / cfg.task.name).glob("*.yaml"))
        known = f"; configs/spectrum/{cfg.task.name}/ has {', '.join(points)}" if points else ""
        require(False, "method", f"{cfg.method.name} has no realisation for task={cfg.task.name} (no spectrum/{cfg.task.name}/{cfg.method.name}.yaml on the config path){known}")
    method_kwargs = _options(cfg.method, RUN_KEYS)
    check_options(method_kwargs, "method")
    # built as a partial, then called: Hydra would turn a dataclass argument into a config node
    return instantiate(method_kwargs, _partial_=True, _convert_="all")(assumed=assumed)


def build(cfg: DictConfig) -> tuple[Task, Method, SimulatedData, Experiment]:
    """Validate the options and build every part of a run; no data are simulated yet (but for two samples that
    size the data sets, refused when they cannot fit in memory).

    The method is built from ``task.assumed`` alone. Seeds every generator with ``cfg.seed`` first,
    so that the methods' initial weights follow the seed (the data have their own per-split generators).
    """
    preflight(cfg)  # the checks that need no torch (python -m mbdl ran them before the imports)
    check_choice(cfg.regime.loss, "regime.loss", LOSSES)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    task: Task = instantiate(_options(cfg.task, ("name",)))
    method = make_method(cfg, task.assumed)
    training_phases(method, cfg.regime.get("lr_decay"), cfg.regime.get("warm_start", False))  # refuses a non-iterative layer-wise run
    fitted = closed_form(cfg, method)  # refuses a generative run of a method with no model to fit
    epochs, batch_size, lr, optimizer, scheduler = optimizer_settings(cfg, method)
    early_stopping(cfg)  # refuses bad options before any work
    data = SimulatedData(task, cfg.seed, batch_size, cfg.regime.n_train, fresh=cfg.regime.fresh_data)
    check_data_memory(cfg, task, data, trained=fitted or bool(method.trainable_parameters and epochs))
    module = Experiment(task, method, cfg.regime.loss, lr, optimizer, scheduler)
    return task, method, data, module


def closed_form(cfg: DictConfig, method: Method) -> bool:
    """Whether the regime fits ``method`` in closed form (:meth:`~mbdl.methods.base.Method.fit_model`) rather than by
    gradient steps (:func:`~mbdl.methods.base.fits_in_closed_form`; ``regime.learning`` defaults to discriminative)."""
    return fits_in_closed_form(method, cfg.regime.get("learning", "discriminative"), cfg.regime.loss, cfg.regime.fresh_data)


def check_data_memory(cfg: DictConfig, task: Task, data: SimulatedData, trained: bool) -> None:
    """Refuse data sets that cannot fit in memory, before any is simulated: the validation and test sets, and the
    training set of a method that trains (one batch with ``regime.fresh_data``); a sample's size from two draws."""
    samples = {f"task.n_{split}": data.sizes[split] for split in ("val", "test") if data.sizes[split] is not None}
    if trained:
        samples["regime.n_train" if cfg.regime.n_train is not None else "task.n_train"] = data.batch_size if data.fresh else data.sizes["train"]
    generator = torch.Generator().manual_seed(0)
    one, two = (sum(v.element_size() * v.numel() for v in task.simulate(n, generator).values()) for n in (1, 2))
    check_memory(samples, max(two - one, 1))


def epochs(cfg: DictConfig) -> int:
    """Training epochs of each fit (``method.optim.epochs``; 0 without an optim block)."""
    optim = cfg.method.get("optim")
    return 0 if optim is None else optim.epochs


def check_launch(cfg: DictConfig) -> None:
    """Refuse a DDP run that Lightning would start by re-running a multirun's command (every rank would run the whole sweep).

    A multirun's jobs run DDP where the launcher starts one process per rank itself (SLURM: ``hydra.launcher.tasks_per_node``
    equal to ``trainer.devices``), which Lightning sees in the environment (``LOCAL_RANK``, ``SLURM_PROCID``)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    strategy, devices = str(cfg.trainer.get("strategy", "auto")), cfg.trainer.get("devices", 1)
    multirun = HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    started_outside = any(key in os.environ for key in ("LOCAL_RANK", "SLURM_PROCID"))
    require(
        not ("ddp" in strategy and devices not in (1, "1") and multirun and not started_outside),
        "trainer",
        f"{strategy} with {devices} devices runs one job at a time (Lightning starts the other ranks by re-running "
        "the command, which in a multirun is the whole sweep): drop -m, or on SLURM set hydra.launcher.tasks_per_node to trainer.devices",
    )


def early_stopping(cfg: DictConfig) -> list[L.Callback]:
    """Lightning's ``EarlyStopping`` on ``val/loss`` as ``cfg.early_stopping`` sets it (none when it is null)."""
    options = cfg.get("early_stopping")
    if options is None:
        return []
    check_positive(options.patience, "early_stopping.patience", integer=True)
    check_positive(options.min_delta, "early_stopping.min_delta", strict=False)
    return [EarlyStopping(monitor="val/loss", mode="min", patience=options.patience, min_delta=options.min_delta, check_on_train_epoch_end=False)]


def make_trainer(cfg: DictConfig, output_dir: str, loggers: list[Any] | None = None) -> L.Trainer:
    """The Lightning Trainer of ``cfg.trainer`` for one fit or test (best weights kept in memory, early stopping)."""
    return instantiate(
        cfg.trainer,
        max_epochs=epochs(cfg),
        logger=loggers or False,
        callbacks=[BestWeights(), *early_stopping(cfg)],
        default_root_dir=output_dir,
    )


def fit(cfg: DictConfig, module: Experiment, data: SimulatedData, output_dir: str, loggers: list[Any] | None = None) -> float:
    """Train ``module`` when its method has trainable parameters and epochs to run; return the seconds it took.

    The training stream (shuffling, dropout) restarts from ``cfg.seed`` whatever building the
    method drew; there is one fit per phase: a single one, or the phases of layer-wise training
    (``regime.lr_decay``). A method the regime fits in closed form (:func:`closed_form`) is fitted
    once to the whole training set instead, with its labels only under a supervised regime.
    """
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    method = module.method
    start, cpu_start = time.perf_counter(), time.process_time()
    if closed_form(cfg, method):
        train = data.split("train")
        method.fitted_parameters = method.fit_model(train["x"], train["s"] if cfg.regime.loss == "supervised" else None)
    elif method.trainable_parameters and epochs(cfg):
        phases = training_phases(method, cfg.regime.get("lr_decay"), cfg.regime.get("warm_start", False))
        for index, phase in enumerate(phases, 1):
            if phase.warm_start is not None:
                phase.warm_start()
            module.enter(phase)
            trainer = make_trainer(cfg, output_dir, loggers)
            # the weights before the first step are a candidate of BestWeights too: a fit never ends worse on
            # validation than it started (learned TV from the TV row did, tests/methods/test_imaging_learning.py); the
            # forked RNG keeps the validation loader's seed draw out of the training stream, so every trained
            # number is the one it was without this pass
            with torch.random.fork_rng():
                trainer.validate(module, datamodule=data, verbose=False)
            trainer.fit(module, datamodule=data)
            module.epochs_trained += trainer.current_epoch
            if len(phases) > 1:
                best = next(c.best for c in trainer.callbacks if isinstance(c, BestWeights))
                print(
                    f"phase {index}/{len(phases)}, depth {phase.depth}: {sum(p.numel() for p in phase.parameters)} parameters "
                    f"at lr {module.lr * phase.lr_scale:.2g}: best val/loss {best:.4g} ({time.perf_counter() - start:.0f} s)",
                    flush=True,
                )
        module.enter(None)
    module.train_cpu_s = time.process_time() - cpu_start
    return time.perf_counter() - start


def evaluate(cfg: DictConfig, module: Experiment, data: SimulatedData, output_dir: str, loggers: list[Any] | None = None) -> None:
    """The metrics on the validation set (model selection, the sweeper's objective) and on the test set
    (reported, with the bounds and references), into ``module.results``."""
    trainer = make_trainer(cfg, output_dir, loggers)
    for split in ("val", "test"):
        module.evaluate_on(split, data.split(split))
        trainer.test(module, dataloaders=data.loader(split, with_index=True), verbose=False)


def load_weights(method: Method, path: str) -> None:
    """Load ``method``'s weights from ``path`` (a run's ``weights.pt``); refused, naming the option, when they are another method's."""
    try:
        method.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except RuntimeError as error:
        require(False, "weights", f"{path!r} does not hold {type(method).__name__}'s weights with these options: {' '.join(str(error).split(':', 1)[-1].split())[:400]}")


def run(cfg: DictConfig, output_dir: str) -> dict[str, Any]:
    """Run one experiment and return its record (without writing it)."""
    if cfg.threads is not None:
        check_positive(cfg.threads, "threads", integer=True)
        torch.set_num_threads(cfg.threads)
    check_launch(cfg)
    task, method, data, module = build(cfg)
    if cfg.get("weights") is not None:
        load_weights(method, cfg.weights)
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values()]
    train_time_s = fit(cfg, module, data, output_dir, loggers)
    if is_rank_zero():
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        if method.trainable_parameters:
            torch.save(method.state_dict(), Path(output_dir) / WEIGHTS_NAME)
    evaluate(cfg, module, data, output_dir, loggers)
    figure = task.figure(module.estimates["test"], data.split("test")) if is_rank_zero() else None
    if figure is not None:
        figure.savefig(Path(output_dir) / FIGURE_NAME, dpi=100)
        plt.close(figure)
    for logger in loggers:
        logger.finalize("success")
    return {
        "primary_metric": task.primary_metric,
        "metric_info": task.metric_info(),
        "params": method.learned_parameters,
        "processes": module.trainer.world_size,  # DDP ranks that trained and evaluated (1: one process)
        "train_time_s": train_time_s,
        "train_cpu_s": module.train_cpu_s,  # this process's CPU time in training: the wall time on an idle core (one thread)
        "epochs_trained": module.epochs_trained,  # over all fits (early stopping may end a fit before its epochs)
        **module.results,
    }
