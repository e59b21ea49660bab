r"""ADMM on the LASSO :math:`\min_s \tfrac12\|x - Hs\|^2 + \lambda\|v\|_1` s.t. :math:`s = v` (scaled dual ``u``).

.. math::

    s^{t+1} &= (H^\top H + \rho_t I)^{-1}\big(H^\top x + \rho_t (v^t - u^t)\big), \\
    v^{t+1} &= \eta_{\lambda_t/\rho_t}\big(s^{t+1} + u^t\big), \\
    u^{t+1} &= u^t + \mu_t\,(s^{t+1} - v^{t+1}),

from :math:`v^0 = u^0 = 0`; the estimate is the sparse :math:`v^t`. Any fixed point solves the
LASSO whatever :math:`\mu`; :math:`\mu = 1` is the textbook method. The inverse is applied through
the thin SVD :math:`H = U\Sigma V^\top`:
:math:`(H^\top H + \rho I)^{-1} b = b/\rho + V\big((\Sigma^2 + \rho)^{-1} - \rho^{-1}\big) V^\top b`,
so that :math:`\rho_t` can be trained (book Ex. 5.4-5.5). Shapes: ``H`` ``(n, m)``, ``x``
``(batch, n)``, iterates ``(batch, m)``.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from mbdl.algorithms.ista import soft_threshold
from mbdl.algorithms.iterative import Iterative
from mbdl.algorithms.parameters import IterationParameter, Mode


class ADMM(Iterative):
    """ADMM with penalty ``ρ_t``, LASSO weight ``λ_t`` and dual step ``μ_t`` held as :class:`IterationParameter`.

    Args:
        H: ``(n, m)`` operator.
        iterations: number of iterations ``T``.
        lam: LASSO weight ``λ``.
        rho: penalty ``ρ > 0``.
        mu: dual step ``μ`` (1: standard ADMM).
        mode: ``"fixed"`` (ADMM), ``"shared"`` (learned optimizer) or ``"per_iteration"`` (unfolded).
    """

    def __init__(self, H: Tensor, iterations: int, lam: float, rho: float = 1.0, mu: float = 1.0, mode: Mode = "fixed") -> None:
        super().__init__()
        self.iterations = iterations
        self.register_buffer("H", H)
        _, sigma, Vh = torch.linalg.svd(H.double(), full_matrices=False)
        self.register_buffer("V", Vh.T.to(H.dtype))  # (m, r)
        self.register_buffer("sigma2", sigma.square().to(H.dtype))  # (r,)
        self.rho = IterationParameter(rho, iterations, mode, "method.mode")
        self.lam = IterationParameter(lam, iterations, mode, "method.mode")
        self.mu = IterationParameter(mu, iterations, mode, "method.mode")

    def solve(self, b: Tensor, rho: Tensor) -> Tensor:
        r""":math:`(H^\top H + \rho I)^{-1} b` for ``b`` ``(batch, m)``."""
        return b / rho + ((b @ self.V) * (1.0 / (self.sigma2 + rho) - 1.0 / rho)) @ self.V.T

    def iterates(self, x: Tensor) -> Iterator[Tensor]:
        """Yield ``v^1, ..., v^T`` for measurements ``x`` ``(batch, n)``."""
        Htx = x @ self.H
        v = u = Htx.new_zeros(Htx.shape)
        for t in range(self.iterations):
            rho = self.rho[t]
            s = self.solve(Htx + rho * (v - u), rho)
            v = soft_threshold(s + u, self.lam[t] / rho)
            u = u + self.mu[t] * (s - v)
            yield v
