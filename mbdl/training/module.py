"""The one LightningModule that trains and tests every (task, method, regime)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import lightning as L
import torch
from torch import Tensor, nn

from mbdl.config import check_choice, check_positive
from mbdl.methods.base import Method
from mbdl.tasks.base import Batch

SCHEDULERS = ("none", "cosine")


@dataclass(frozen=True)
class Phase:
    """One call to ``fit``: train ``parameters`` at learning rate ``lr`` with the method run to ``depth`` iterations,
    after calling ``warm_start`` (if given) to initialise them."""

    depth: int | None
    parameters: list[nn.Parameter]
    lr: float
    warm_start: Callable[[], None] | None = None


def training_phases(method: Method, lr: float, lr_decay: Sequence[float] | None = None, warm_start: bool = False) -> list[Phase]:
    """All trained parameters at ``lr``; or, layer-wise (``lr_decay`` given, e.g. ``[0.2, 0.02]``), for every
    :meth:`Method.stages` stage its new parameters at ``lr``, then all its parameters at ``lr·d`` for each ``d``.
    With ``warm_start``, a stage's new parameters start from the previous stage's trained values."""
    if lr_decay is None:
        return [Phase(None, [p for p in method.parameters() if p.requires_grad], lr)]
    for d in lr_decay:
        check_positive(d, "regime.lr_decay")
    phases = []
    for stage in method.stages():
        if stage.new:
            phases.append(Phase(stage.depth, stage.new, lr, stage.warm_start if warm_start else None))
        phases += [Phase(stage.depth, stage.trained, lr * d) for d in lr_decay if stage.trained]
    return phases


class Experiment(L.LightningModule):
    """Fits ``method`` with the regime's loss and tests it with the task's metric and bound.

    Args:
        method: the method (its ``task`` gives the losses, metric and bound).
        loss: ``"supervised"`` or ``"unsupervised"`` (see :meth:`Method.loss`).
        lr: Adam learning rate.
        weight_decay: Adam weight decay.
        scheduler: ``"none"`` or ``"cosine"`` (annealed to zero over the run's epochs).

    After ``trainer.test``, :attr:`estimate` holds the test-set estimate and :attr:`results` ``test/<metric>``, ``bound/<metric>``,
    ``curve/<metric>`` (one value per iteration, for iterative methods) and ``infer_ms_per_sample``.
    """

    def __init__(self, method: Method, loss: str = "supervised", lr: float = 1e-3, weight_decay: float = 0.0, scheduler: str = "none") -> None:
        super().__init__()
        check_positive(lr, "method.optim.lr")
        check_positive(weight_decay, "method.optim.weight_decay", strict=False)
        check_choice(scheduler, "method.optim.scheduler", SCHEDULERS)
        self.method, self.loss_kind = method, loss
        self.lr, self.weight_decay, self.scheduler = lr, weight_decay, scheduler
        self.results: dict[str, float | list[float]] = {}
        self.estimate: Tensor | None = None
        self.phase: Phase | None = None
        self._trainable = [p for p in method.parameters() if p.requires_grad]

    def enter(self, phase: Phase | None) -> None:
        """Train only ``phase`` from now on (``None``: every parameter at ``lr``, the whole method).

        The other parameters are frozen, so that backpropagation stops at them: the first phase of a
        layer-wise stage differentiates through its new layer only."""
        self.phase = phase
        self.method.depth = None if phase is None else phase.depth
        active = None if phase is None else {id(p) for p in phase.parameters}
        for p in self._trainable:
            p.requires_grad_(active is None or id(p) in active)

    def forward(self, data: Batch) -> Tensor:
        return self.method(data)

    def _loss(self, data: Batch, stage: str) -> Tensor:
        loss = self.method.loss(data, self.loss_kind)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite {stage} loss {loss.item()} at epoch {self.current_epoch}, step {self.global_step}")
        self.log(f"{stage}/loss", loss, prog_bar=True, batch_size=len(data["x"]))
        return loss

    def training_step(self, data: Batch, batch_idx: int) -> Tensor:
        return self._loss(data, "train")

    def validation_step(self, data: Batch, batch_idx: int) -> None:
        self._loss(data, "val")

    def on_test_epoch_start(self) -> None:
        self._estimates: list[Tensor] = []
        self._iterates: list[list[Tensor]] = []
        self._infer_s = 0.0

    def test_step(self, data: Batch, batch_idx: int) -> None:
        synchronize = torch.cuda.synchronize if self.device.type == "cuda" else lambda: None
        synchronize()
        start = time.perf_counter()
        iterates = self.method.iterates(data)
        if iterates is None:
            estimate = self.method(data)
        else:
            steps = [step.detach().cpu() for step in iterates]
            self._iterates.append(steps)
            estimate = steps[-1]
        synchronize()
        self._infer_s += time.perf_counter() - start
        self._estimates.append(estimate.detach().cpu())

    def on_test_epoch_end(self) -> None:
        task = self.method.task
        test = self.trainer.datamodule.split("test")
        self.estimate = torch.cat(self._estimates)
        metrics = task.evaluate(self.estimate, test)
        self.results = {f"test/{k}": v for k, v in metrics.items()}
        self.results.update({f"bound/{k}": v for k, v in task.bound(test).items()})
        if self._iterates:
            per_iteration = zip(*self._iterates)
            curve = [task.evaluate(torch.cat(steps), test)[task.primary_metric] for steps in per_iteration]
            self.results[f"curve/{task.primary_metric}"] = curve
        self.results["infer_ms_per_sample"] = 1e3 * self._infer_s / len(test["x"])
        for key, value in self.results.items():
            if isinstance(value, float) and math.isfinite(value):
                self.log(key, value)

    def configure_optimizers(self):  # noqa: ANN201 - Lightning's union of return types
        parameters, lr = (self.method.parameters(), self.lr) if self.phase is None else (self.phase.parameters, self.phase.lr)
        optimizer = torch.optim.Adam(parameters, lr=lr, weight_decay=self.weight_decay)
        if self.scheduler == "none":
            return optimizer
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(self.trainer.max_epochs, 1))
        return {"optimizer": optimizer, "lr_scheduler": schedule}
