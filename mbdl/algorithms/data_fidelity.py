"""TEMPORARY stub (the full module comes from the operators branch)."""

from __future__ import annotations

from torch import Tensor


def least_squares(operator, s: Tensor, x: Tensor) -> Tensor:
    return 0.5 * (operator(s) - x).abs().square().flatten(1).sum(dim=1)
