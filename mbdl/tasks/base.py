"""The interface every task implements.

A task owns three things that every method on the spectrum shares:

* a **simulator** of the *true* model, drawing a data set of ``n`` samples from a seeded
  :class:`torch.Generator` (so train, validation and test sets depend only on the seed);
* the **assumed** model handed to the methods (equal to the true one unless a mismatch is
  configured);
* a **metric** computed on a whole test set, the **bound** (or reference) for that test set,
  and the losses a regime may train with.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

import torch
from torch import Tensor

from mbdl.config import check_positive

if TYPE_CHECKING:
    from matplotlib.figure import Figure

Batch = dict[str, Tensor]
"""A batch of samples: tensors whose first dimension is the sample index.

Every task puts the measurements under ``"x"`` (what a method sees) and the ground truth
under ``"s"`` (what it estimates); further keys are task-specific."""


class Task(ABC):
    """A task: simulator, assumed model, metric and bound.

    Subclasses validate their options in ``__init__`` (raising :class:`mbdl.config.ConfigError`)
    so that a bad configuration stops before any data are simulated.
    """

    #: name of the metric that summarises a run (lower is better), e.g. ``"nmse_db"``.
    primary_metric: ClassVar[str]
    #: default data-set sizes ``(train, val, test)``.
    n_train: int
    n_val: int
    n_test: int

    def set_sizes(self, n_train: int, n_val: int, n_test: int) -> None:
        """Validate and set the default data-set sizes (``task.n_train``, ``task.n_val``, ``task.n_test``)."""
        for option, value in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
            check_positive(value, f"task.{option}", integer=True)
        self.n_train, self.n_val, self.n_test = n_train, n_val, n_test

    @abstractmethod
    def simulate(self, n: int, generator: torch.Generator) -> Batch:
        """Draw ``n`` independent samples from the true model."""

    @abstractmethod
    def evaluate(self, estimate: Tensor, data: Batch) -> dict[str, float]:
        """Metrics of ``estimate`` against the ground truth of ``data`` (a whole test set)."""

    @abstractmethod
    def bound(self, data: Batch) -> dict[str, float]:
        """The theoretical bound (or reference), keyed like :meth:`evaluate`, on ``data``."""

    def supervised_loss(self, estimate: Tensor, data: Batch) -> Tensor:
        """Mean squared error to the labels ``data["s"]``."""
        return (estimate - data["s"]).abs().square().mean()

    @abstractmethod
    def unsupervised_loss(self, estimate: Tensor, data: Batch) -> Tensor:
        """A loss that needs no labels ``data["s"]``, built from the assumed model."""

    def figure(self, estimate: Tensor, data: Batch) -> Figure | None:
        """A picture of a few test samples, estimate against truth (``None``: the task draws none)."""
        return None
