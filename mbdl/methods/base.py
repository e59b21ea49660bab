"""The interface every method implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from torch import Tensor, nn

from mbdl.config import check_choice
from mbdl.tasks.base import Batch, Task

LOSSES = ("supervised", "unsupervised")


@dataclass(frozen=True)
class Stage:
    """One stage of layer-wise training: the method runs its first ``depth`` iterations (``None``: all);
    the parameters ``new`` in this stage are trained first, then all of ``trained``. ``warm_start``, if
    given, sets ``new`` from the previous stage's trained values (instead of their initial ones)."""

    depth: int | None
    new: list[nn.Parameter]
    trained: list[nn.Parameter]
    warm_start: Callable[[], None] | None = None


class Method(nn.Module, ABC):
    """A point on the model-based / data-driven spectrum, for one task.

    Subclasses implement :meth:`forward` (the estimate of ``data["s"]`` from ``data["x"]`` and
    the assumed model held by ``task``). A method with no trainable parameter is simply not
    fitted. Iterative methods also implement :meth:`iterates`, from which the run records the
    metric after every iteration (layer). Methods trained layer-wise override :meth:`stages`
    and run only their first :attr:`depth` iterations.
    """

    def __init__(self, task: Task) -> None:
        super().__init__()
        self.task = task
        #: iterations (layers) the method runs; ``None``: all (layer-wise training truncates it).
        self.depth: int | None = None

    @abstractmethod
    def forward(self, data: Batch) -> Tensor:
        """The estimate of ``data["s"]``."""

    def iterates(self, data: Batch) -> Iterator[Tensor] | None:
        """The estimate after each iteration (layer), or ``None`` for a non-iterative method."""
        return None

    def loss(self, data: Batch, kind: str) -> Tensor:
        """Training loss of a batch: the task's ``supervised`` or ``unsupervised`` loss."""
        check_choice(kind, "regime.loss", LOSSES)
        estimate = self(data)
        if kind == "supervised":
            return self.task.supervised_loss(estimate, data)
        return self.task.unsupervised_loss(estimate, data)

    def stages(self) -> list[Stage]:
        """The stages of layer-wise training; by default one stage that trains every parameter."""
        trained = [p for p in self.parameters() if p.requires_grad]
        return [Stage(depth=None, new=trained, trained=trained)]

    @property
    def trainable_parameters(self) -> int:
        """Number of trained scalars."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)
