r"""The least-squares data term of :math:`x = A s + w`, written once.

.. math::  f(s) = \tfrac12\|A s - x\|_2^2, \qquad \nabla f(s) = A^H(A s - x) = A^H A s - A^H x,

per sample (summed over the measurement's trailing dimensions). ISTA, FISTA and neural proximal
gradient step along :math:`-\nabla f`, LISTA-CP and ALISTA along a learned map of the residual
:math:`x - A s`, the unsupervised losses use :math:`f` itself.
"""

from __future__ import annotations

from functools import cached_property

import torch
from torch import Tensor

from mbdl.operators import LinearOperator
from mbdl.operators.base import real_inner


class LeastSquares:
    r""":math:`f(s) = \tfrac12\|A s - x\|^2` for one batch of measurements :math:`x`.

    :math:`A^H x` is computed once (on first use), so a gradient costs one :meth:`LinearOperator.gram`
    (for a circular convolution one FFT pair, not two).

    Args:
        operator: :math:`A`.
        x: measurements ``(*batch, *operator.out_shape)``, e.g. ``(batch, n)`` or ``(batch, c, h, w)``.

    Example:
        >>> import torch
        >>> from mbdl.operators import Matrix
        >>> f = LeastSquares(Matrix(torch.eye(2)), torch.tensor([[1.0, 2.0]]))
        >>> f(torch.zeros(1, 2)), f.gradient(torch.zeros(1, 2))
        (tensor([2.5000]), tensor([[-1., -2.]]))
    """

    def __init__(self, operator: LinearOperator, x: Tensor) -> None:
        if not operator.measures(x):
            raise ValueError(f"measurements of shape {tuple(x.shape)} do not end in the operator's output shape {operator.out_shape}")
        dims = len(operator.out_shape)
        self.operator, self.x = operator, x
        self.batch_shape = tuple(x.shape[: x.dim() - dims])

    def residual(self, s: Tensor) -> Tensor:
        """:math:`x - A s`, ``(*batch, *out_shape)``."""
        return self.x - self.operator(s)

    def __call__(self, s: Tensor) -> Tensor:
        """:math:`f(s)` per sample, ``batch_shape``."""
        r = self.residual(s)
        return 0.5 * real_inner(r, r, len(self.operator.out_shape)).reshape(self.batch_shape)

    @cached_property
    def adjoint_x(self) -> Tensor:
        r""":math:`A^H x`, ``(*batch, *in_shape)``."""
        return self.operator.adjoint(self.x)

    def gradient(self, s: Tensor) -> Tensor:
        r""":math:`\nabla f(s) = A^H A s - A^H x`, ``(*batch, *in_shape)``."""
        return self.operator.gram(s) - self.adjoint_x

    def zeros(self) -> Tensor:
        """The starting iterate :math:`s^0 = 0`, ``(*batch, *in_shape)``, in the dtype of :math:`A^H x` (real signals stay real)."""
        return torch.zeros_like(self.adjoint_x)
