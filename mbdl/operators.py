"""TEMPORARY stub of the operator module (the full module comes from the operators branch)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class LinearOperator(nn.Module):
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]

    def adjoint(self, x: Tensor) -> Tensor:
        raise NotImplementedError


class Matrix(LinearOperator):
    def __init__(self, H: Tensor) -> None:
        super().__init__()
        self.register_buffer("H", H)
        self.out_shape, self.in_shape = (H.shape[0],), (H.shape[1],)

    def forward(self, s: Tensor) -> Tensor:
        return s @ self.H.T.to(s)

    def adjoint(self, x: Tensor) -> Tensor:
        return x @ self.H.conj().to(x)

    def dense(self) -> Tensor:
        return self.H
