"""The one LightningModule that trains and evaluates every (task, method, regime)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import lightning as L
import torch
from torch import Tensor

from mbdl.config import check_choice
from mbdl.methods.base import LOSSES, IterativeMethod, Method, Objective, Phase
from mbdl.tasks.base import Batch, Task
from mbdl.training.data import INDEX_KEY
from mbdl.training.distributed import first_occurrences, gather_rows, in_split_order, total
from mbdl.training.flops import FlopCount, count_flops

#: the per-iteration curve keeps at most this many bytes of iterates; beyond it the curve is computed on the first
#: test samples only (``curve_samples`` in the record), the test metrics themselves always on the whole test set.
CURVE_BYTES = 2**29

OptimizerFactory = Callable[..., torch.optim.Optimizer]
"""``factory(parameters, lr=...)``: an optimizer (``method.optim.optimizer``, a ``_partial_`` config)."""
SchedulerFactory = Callable[[torch.optim.Optimizer], Any]
"""``factory(optimizer)``: a learning-rate scheduler stepped once per epoch (``method.optim.scheduler``)."""


def regime_objective(task: Task, data: Batch, loss: str) -> Objective:
    """The objective of a batch under the regime's ``loss``: the task's supervised loss with the labels, or its
    unsupervised loss of the measurements (and no labels)."""
    if loss == "supervised":
        return Objective("supervised", partial(task.supervised_loss, s=data["s"]), data["s"])
    return Objective("unsupervised", partial(task.unsupervised_loss, x=data["x"]))


class Experiment(L.LightningModule):
    """Fits ``method`` with the regime's loss and evaluates it with the task's metrics and references.

    Args:
        task: gives the losses, metrics and references (the method itself only holds ``task.assumed``).
        method: the method.
        loss: ``"supervised"`` or ``"unsupervised"``.
        lr: base learning rate (a phase of layer-wise training scales it).
        optimizer: builds the optimizer of a fit, ``optimizer(parameters, lr=lr)``.
        scheduler: builds its learning-rate schedule, ``scheduler(optimizer)``; ``None``: constant.

    After ``trainer.test`` on split ``name`` (:meth:`evaluate_on`), :attr:`estimates` ``[name]`` holds the
    estimate of that split and :attr:`results` ``<name>/<metric>`` (for the validation split also the task's
    ``calibration/<name>``, :meth:`~mbdl.tasks.base.Task.calibrate`, which the test split's metrics then use), and for the test split also
    ``bound/<metric>`` or ``reference/<metric>`` with ``reference_names``, ``curve/<metric>`` (one value per
    iteration, for iterative methods; with ``curve_samples`` when :data:`CURVE_BYTES` limited it to the samples of the first
    test batches), ``infer_ms_per_sample``, and ``flops_per_sample`` with ``flops_uncounted``
    (torch's FLOP counter on the first test batch, :mod:`mbdl.training.flops`). Under DDP each rank evaluates its
    share of a split (``test_samples_per_process``: the test samples each rank evaluated, a sampler's padding
    included); the metrics are computed once over the whole split, gathered in order
    (:mod:`mbdl.training.distributed`), and every rank holds the same results.
    """

    def __init__(
        self,
        task: Task,
        method: Method,
        loss: str = "supervised",
        lr: float = 1e-3,
        optimizer: OptimizerFactory = torch.optim.Adam,
        scheduler: SchedulerFactory | None = None,
    ) -> None:
        super().__init__()
        check_choice(loss, "regime.loss", LOSSES)
        self.task, self.method, self.loss_kind = task, method, loss
        self.lr, self.optimizer_factory, self.scheduler_factory = lr, optimizer, scheduler
        self.results: dict[str, Any] = {}
        self.estimates: dict[str, Tensor] = {}
        self.split, self._split_data = "test", {}
        self.phase: Phase | None = None
        self.epochs_trained = 0  # epochs run by every fit so far (the runner counts them)
        self.train_cpu_s = 0.0  # CPU seconds of this process in training (the runner measures them)
        self._trainable = [p for p in method.parameters() if p.requires_grad]

    def enter(self, phase: Phase | None) -> None:
        """Train only ``phase`` from now on (``None``: every parameter at the base rate, the whole method).

        The other parameters are frozen, so that backpropagation stops at them: the first phase of a
        layer-wise stage differentiates through its new layer only."""
        self.phase = phase
        if isinstance(self.method, IterativeMethod):
            self.method.depth = None if phase is None else phase.depth
        active = None if phase is None else {id(p) for p in phase.parameters}
        for p in self._trainable:
            p.requires_grad_(active is None or id(p) in active)

    def forward(self, x: Tensor) -> Tensor:
        return self.method(x)

    def objective(self, data: Batch) -> Objective:
        """The regime's objective for a batch (:func:`regime_objective`)."""
        return regime_objective(self.task, data, self.loss_kind)

    def _loss(self, data: Batch, stage: str) -> Tensor:
        loss = self.method.loss(data["x"], self.objective(data))
        if not torch.isfinite(loss):  # a host sync on a GPU: every validation batch, every logged training step
            raise FloatingPointError(f"non-finite {stage} loss {loss.item()} at epoch {self.current_epoch}, step {self.global_step}")
        # val/loss averaged over the DDP ranks: every rank keeps the same best weights and stops at the same epoch
        self.log(f"{stage}/loss", loss, prog_bar=True, batch_size=len(data["x"]), sync_dist=stage == "val")
        return loss

    def training_step(self, data: Batch, batch_idx: int) -> Tensor:
        """The training loss; checked and logged only every ``trainer.log_every_n_steps`` steps (and the first): ``self.log``
        costs a fixed ~0.5 ms per call (docs/results/benchmarks.md), most of a small method's step, and the check is
        a host sync on a GPU. A non-finite loss poisons the weights, so the next logged step, or the validation, still
        stops the run."""
        if self.global_step % self.trainer.log_every_n_steps == 0:
            return self._loss(data, "train")
        return self.method.loss(data["x"], self.objective(data))

    def validation_step(self, data: Batch, batch_idx: int) -> None:
        self._loss(data, "val")

    def evaluate_on(self, split: str, data: Batch) -> None:
        """Make the next ``trainer.test`` evaluate ``data``, the whole split ``split`` (``"val"`` or ``"test"``)."""
        self.split, self._split_data = split, data

    def on_test_epoch_start(self) -> None:
        self._estimates: list[Tensor] = []
        self._iterates: list[list[Tensor]] = []
        self._curve_index: list[Tensor] = []
        self._index: list[Tensor] = []
        self._infer_s = 0.0
        self._flops: FlopCount | None = None
        self._curve_bytes = 0

    def _curve_room(self, iterate: Tensor) -> int:
        """How many samples of a batch whose first iterate is ``iterate`` the curve can still keep (:data:`CURVE_BYTES`)."""
        method = self.method
        iterations = (method.depth or method.algorithm.iterations) if isinstance(method, IterativeMethod) else 1
        per_sample = iterate[0].nelement() * iterate.element_size() * iterations
        keep = min(len(iterate), max(CURVE_BYTES - self._curve_bytes, 0) // max(per_sample, 1))
        self._curve_bytes += keep * per_sample
        return keep

    def test_step(self, data: Batch, batch_idx: int) -> None:
        synchronize = torch.cuda.synchronize if self.device.type == "cuda" else lambda: None
        synchronize()
        start = time.perf_counter()
        iterates = self.method.iterates(data["x"]) if self.split == "test" else None
        if iterates is None:
            estimate = self.method(data["x"])
        else:
            steps, keep = [], None
            for step in iterates:
                keep = self._curve_room(step) if keep is None else keep
                steps.append(step[:keep].detach().cpu())
            if keep:
                self._iterates.append(steps)
                self._curve_index.append(data[INDEX_KEY][:keep].cpu())
            estimate = step.detach()
        synchronize()
        self._infer_s += time.perf_counter() - start
        self._estimates.append(estimate.detach().cpu())
        self._index.append(data[INDEX_KEY].cpu())
        if self.split == "test" and batch_idx == 0:  # after the timing: the counter slows every operation down
            self._flops = count_flops(self.method, data["x"])

    def _split_rows(self, rows: list[Tensor]) -> Tensor:
        """Per-batch rows of this rank's share of the split as one tensor over the whole split, in split order
        (every rank's share gathered; :mod:`mbdl.training.distributed`)."""
        return in_split_order(gather_rows(self, torch.cat(self._index)), gather_rows(self, torch.cat(rows)), len(self._split_data["x"]))

    def _curve(self) -> tuple[Tensor, list[Tensor]]:
        """The split positions the per-iteration curve kept (every rank's, :data:`CURVE_BYTES`; the same count of each
        batch on every rank, as their batches have one size) and the iterates at those positions, one per iteration."""
        index = gather_rows(self, torch.cat(self._curve_index))
        curve = [first_occurrences(index, gather_rows(self, torch.cat(steps))) for steps in zip(*self._iterates)]
        return curve[0][0], [rows for _, rows in curve]

    def on_test_epoch_end(self) -> None:
        task, split, data = self.task, self.split, self._split_data
        estimate = self.estimates[split] = self._split_rows(self._estimates)
        # the metrics' own settings are chosen on validation only (every rank gathers the same estimates)
        results = {f"calibration/{k}": v for k, v in task.calibrate(estimate, data).items()} if split == "val" else {}
        results.update({f"{split}/{k}": v for k, v in task.evaluate(estimate, data).items()})
        if split == "test":
            references = task.references(data)
            results.update({f"{ref.prefix}/{k}": ref.value for k, ref in references.items()})
            results["reference_names"] = {k: ref.name for k, ref in references.items()}
            if self._iterates:
                positions, curve = self._curve()
                curve_data = data if len(positions) == len(estimate) else {key: value[positions] for key, value in data.items()}
                results[f"curve/{task.primary_metric}"] = [task.evaluate(steps, curve_data)[task.primary_metric] for steps in curve]
                if len(positions) < len(estimate):
                    results["curve_samples"] = len(positions)
            share = sum(len(e) for e in self._estimates)  # this rank's share, with the sampler's padding
            results["test_samples_per_process"] = [int(n) for n in gather_rows(self, torch.tensor([share]))]
            results["infer_ms_per_sample"] = 1e3 * total(self, self._infer_s) / sum(results["test_samples_per_process"])
            if self._flops is not None:
                results["flops_per_sample"] = self._flops.per_sample
                results["flops_uncounted"] = list(self._flops.uncounted)
        self.results.update(results)
        for key, value in results.items():
            if isinstance(value, float) and math.isfinite(value):
                self.log(key, value, sync_dist=True)  # the same on every rank: the mean over the ranks is that value

    def configure_optimizers(self):  # noqa: ANN201 - Lightning's union of return types
        phase = self.phase or Phase([p for p in self.method.parameters() if p.requires_grad])
        optimizer = self.optimizer_factory(phase.parameters, lr=self.lr * phase.lr_scale)
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": self.scheduler_factory(optimizer)}
