"""Sparse recovery on the spectrum: ISTA (model-based, learned optimizer) and LISTA (unfolded)."""

from __future__ import annotations

from collections.abc import Iterator

from torch import Tensor

from mbdl.algorithms.ista import ISTA, LISTA
from mbdl.algorithms.parameters import Mode
from mbdl.config import check_positive
from mbdl.methods.base import Method
from mbdl.tasks.sparse_recovery import SparseRecovery


class _Iterative(Method):
    """A method that wraps an iteration ``self.algorithm`` with ``iterates(x)``."""

    def iterates(self, data: dict[str, Tensor]) -> Iterator[Tensor]:
        return self.algorithm.iterates(data["x"])

    def forward(self, data: dict[str, Tensor]) -> Tensor:
        return self.algorithm(data["x"])


class ISTASolver(_Iterative):
    """ISTA on the LASSO with the assumed ``H``; ``mode="shared"`` learns ``μ`` and ``λ`` (book Ex. 5.4).

    Args:
        task: the sparse-recovery task.
        iterations: number of iterations.
        lam: LASSO weight ``λ`` (initial value when learned).
        step: step ``μ``; ``None`` takes ``1/‖H‖²``.
        mode: ``"fixed"``, ``"shared"`` or ``"per_iteration"``.
    """

    def __init__(self, task: SparseRecovery, iterations: int = 100, lam: float = 0.01, step: float | None = None, mode: Mode = "fixed") -> None:
        super().__init__(task)
        check_positive(iterations, "method.iterations", integer=True)
        check_positive(lam, "method.lam", strict=False)
        self.algorithm = ISTA(task.H_assumed, iterations, lam, step, mode)


class LISTANet(_Iterative):
    """LISTA (Gregor & LeCun, 2010), initialised from ISTA with the assumed ``H``.

    Args:
        task: the sparse-recovery task.
        iterations: number of layers.
        lam, step: the ISTA the layers start from.
        mode: ``"per_iteration"`` (untied layers) or ``"shared"`` (tied layers).
    """

    def __init__(self, task: SparseRecovery, iterations: int = 5, lam: float = 0.01, step: float | None = None, mode: Mode = "per_iteration") -> None:
        super().__init__(task)
        check_positive(iterations, "method.iterations", integer=True)
        check_positive(lam, "method.lam", strict=False)
        self.algorithm = LISTA(task.H_assumed, iterations, lam, step, mode)
