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
    estimate of that split and :attr:`results` ``<name>/<metric>``, and for the test split also
    ``bound/<metric>`` or ``reference/<metric>`` with ``reference_names``, ``curve/<metric>`` (one value per
    iteration, for iterative methods; with ``curve_samples`` when :data:`CURVE_BYTES` limited it to the first test
    samples) and ``infer_ms_per_sample``.
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
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite {stage} loss {loss.item()} at epoch {self.current_epoch}, step {self.global_step}")
        self.log(f"{stage}/loss", loss, prog_bar=True, batch_size=len(data["x"]))
        return loss

    def training_step(self, data: Batch, batch_idx: int) -> Tensor:
        return self._loss(data, "train")

    def validation_step(self, data: Batch, batch_idx: int) -> None:
        self._loss(data, "val")

    def evaluate_on(self, split: str, data: Batch) -> None:
        """Make the next ``trainer.test`` evaluate ``data``, the whole split ``split`` (``"val"`` or ``"test"``)."""
        self.split, self._split_data = split, data

    def on_test_epoch_start(self) -> None:
        self._estimates: list[Tensor] = []
        self._iterates: list[list[Tensor]] = []
        self._infer_s = 0.0
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
            estimate = step.detach()
        synchronize()
        self._infer_s += time.perf_counter() - start
        self._estimates.append(estimate.detach().cpu())

    def on_test_epoch_end(self) -> None:
        task, split, data = self.task, self.split, self._split_data
        estimate = self.estimates[split] = torch.cat(self._estimates)
        results = {f"{split}/{k}": v for k, v in task.evaluate(estimate, data).items()}
        if split == "test":
            references = task.references(data)
            results.update({f"{ref.prefix}/{k}": ref.value for k, ref in references.items()})
            results["reference_names"] = {k: ref.name for k, ref in references.items()}
            if self._iterates:
                kept = sum(len(steps[0]) for steps in self._iterates)
                curve_data = data if kept == len(estimate) else {key: value[:kept] for key, value in data.items()}
                per_iteration = zip(*self._iterates)
                results[f"curve/{task.primary_metric}"] = [task.evaluate(torch.cat(steps), curve_data)[task.primary_metric] for steps in per_iteration]
                if kept < len(estimate):
                    results["curve_samples"] = kept
            results["infer_ms_per_sample"] = 1e3 * self._infer_s / len(data["x"])
        self.results.update(results)
        for key, value in results.items():
            if isinstance(value, float) and math.isfinite(value):
                self.log(key, value)

    def configure_optimizers(self):  # noqa: ANN201 - Lightning's union of return types
        phase = self.phase or Phase([p for p in self.method.parameters() if p.requires_grad])
        optimizer = self.optimizer_factory(phase.parameters, lr=self.lr * phase.lr_scale)
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": self.scheduler_factory(optimizer)}
