r"""FISTA (Beck & Teboulle, 2009): ISTA with Nesterov momentum on the LASSO.

.. math::

    s^{t} &= \eta_{\theta_t}\big(z^t + \mu_t H^\top (x - H z^t)\big), \\
    q_{t+1} &= \tfrac12\big(1 + \sqrt{1 + 4 q_t^2}\big), \\
    z^{t+1} &= s^{t} + \tfrac{q_t - 1}{q_{t+1}}\,(s^{t} - s^{t-1}),

from :math:`z^0 = s^{-1} = 0`, :math:`q_0 = 1`; the threshold :math:`\theta_t = \mu_t\lambda_t`. Shapes: ``H`` ``(n, m)``, ``x`` ``(batch, n)``,
iterates ``(batch, m)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from torch import Tensor

from mbdl.algorithms.ista import gradient_step, lipschitz_step, soft_threshold
from mbdl.algorithms.iterative import Iterative
from mbdl.algorithms.parameters import IterationParameter, Mode


class FISTA(Iterative):
    """FISTA with step ``μ_t`` and threshold ``θ_t = μ_t λ_t`` held as :class:`IterationParameter` (as in :class:`ISTA`).

    Args:
        H: ``(n, m)`` operator.
        iterations: number of iterations ``T``.
        lam: LASSO weight ``λ``.
        step: step ``μ``; ``None`` takes ``1/‖H‖²``.
        mode: ``"fixed"``, ``"shared"`` or ``"per_iteration"``.
    """

    def __init__(self, H: Tensor, iterations: int, lam: float, step: float | None = None, mode: Mode = "fixed") -> None:
        super().__init__()
        self.iterations = iterations
        self.register_buffer("H", H)
        mu = lipschitz_step(H) if step is None else step
        self.step = IterationParameter(mu, iterations, mode, "method.mode")
        self.theta = IterationParameter(mu * lam, iterations, mode, "method.mode")

    def iterates(self, x: Tensor) -> Iterator[Tensor]:
        """Yield ``s^0, ..., s^{T-1}`` for measurements ``x`` ``(batch, n)``."""
        H = self.H
        previous = z = x.new_zeros(x.shape[0], H.shape[1])
        q = 1.0
        for t in range(self.iterations):
            mu = self.step[t]
            s = soft_threshold(gradient_step(z, x, H, mu * H), self.theta[t])
            q_next = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * q * q))
            z = s + (q - 1.0) / q_next * (s - previous)
            previous, q = s, q_next
            yield s
