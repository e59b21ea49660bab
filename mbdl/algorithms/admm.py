r"""ADMM on the LASSO :math:`\min_s \tfrac12\|x - As\|^2 + \lambda\|v\|_1` s.t. :math:`s = v` (scaled dual ``u``).

.. math::

    s^{t+1} &= (A^H A + \rho_t I)^{-1}\big(A^H x + \rho_t (v^t - u^t)\big), \\
    v^{t+1} &= \eta_{\lambda_t/\rho_t}\big(s^{t+1} + u^t\big), \\
    u^{t+1} &= u^t + \mu_t\,(s^{t+1} - v^{t+1}),

from :math:`v^0 = u^0 = 0`; the estimate is the sparse :math:`v^t`. Any fixed point solves the
LASSO whatever :math:`\mu`; :math:`\mu = 1` is the textbook method. The inverse is the operator's
:meth:`~mbdl.operators.LinearOperator.solve` (for a matrix through its thin SVD, diagonal in Fourier
for a circular convolution or masked Fourier, conjugate gradient otherwise), differentiable in
:math:`\rho_t` so that it can be trained (book Ex. 5.4-5.5). Shapes: ``x`` ``(batch, *A.out_shape)``,
iterates ``(batch, *A.in_shape)``.
"""

from __future__ import annotations

from collections.abc import Iterator

from torch import Tensor

from mbdl.algorithms.data_fidelity import LeastSquares
from mbdl.algorithms.ista import soft_threshold
from mbdl.algorithms.iterative import Iterative
from mbdl.algorithms.parameters import IterationParameter, Mode
from mbdl.operators import LinearOperator


class ADMM(Iterative):
    """ADMM with penalty ``ρ_t``, LASSO weight ``λ_t`` and dual step ``μ_t`` held as :class:`IterationParameter`.

    Args:
        operator: :math:`A`, e.g. ``Matrix(H)`` with ``H`` ``(n, m)``, or a masked Fourier transform.
        iterations: number of iterations ``T``.
        lam: LASSO weight ``λ``.
        rho: penalty ``ρ > 0``.
        mu: dual step ``μ`` (1: standard ADMM).
        mode: ``"fixed"`` (ADMM), ``"shared"`` (learned optimizer) or ``"per_iteration"`` (unfolded).

    Example:
        >>> import torch
        >>> from mbdl.operators import MaskedFourier
        >>> mri = MaskedFourier((torch.rand(16, 16) < 0.4).float())  # complex k-space samples of 16 x 16 images
        >>> v = ADMM(mri, iterations=50, lam=0.01)(torch.randn(4, 16, 16, dtype=torch.complex64))
        >>> v.shape, v.dtype
        (torch.Size([4, 16, 16]), torch.complex64)
    """

    def __init__(self, operator: LinearOperator, iterations: int, lam: float, rho: float = 1.0, mu: float = 1.0, mode: Mode = "fixed") -> None:
        super().__init__()
        self.iterations = iterations
        self.operator = operator
        self.rho = IterationParameter(rho, iterations, mode, "method.mode")
        self.lam = IterationParameter(lam, iterations, mode, "method.mode")
        self.mu = IterationParameter(mu, iterations, mode, "method.mode")

    def iterates(self, x: Tensor) -> Iterator[Tensor]:
        """Yield ``v^1, ..., v^T`` for measurements ``x`` ``(batch, *out_shape)``."""
        f = LeastSquares(self.operator, x)
        v = u = f.zeros()
        for t in range(self.iterations):
            rho = self.rho[t]
            s = self.operator.solve(rho, f.adjoint_x + rho * (v - u))
            v = soft_threshold(s + u, self.lam[t] / rho)
            u = u + self.mu[t] * (s - v)
            yield v
