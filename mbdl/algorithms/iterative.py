"""The common shape of an iterative algorithm: ``iterates`` yields every step, ``forward`` returns the last."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator

from torch import Tensor, nn


class Iterative(nn.Module):
    """An algorithm of ``iterations`` steps; subclasses implement :meth:`iterates`."""

    iterations: int

    @abstractmethod
    def iterates(self, x: Tensor) -> Iterator[Tensor]:
        """Yield the estimate after each of the ``iterations`` steps, for measurements ``x``."""

    def forward(self, x: Tensor) -> Tensor:
        """The estimate after the last step."""
        for estimate in self.iterates(x):
            pass
        return estimate
