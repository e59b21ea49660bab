r"""FISTA (Beck & Teboulle, 2009): ISTA with Nesterov momentum on the LASSO :math:`\min_s \tfrac12\|x - As\|^2 + \lambda\|s\|_1`.

.. math::

    s^{t} &= \eta_{\theta_t}\big(z^t + \mu_t A^H (x - A z^t)\big), \\
    q_{t+1} &= \tfrac12\big(1 + \sqrt{1 + 4 q_t^2}\big), \\
    z^{t+1} &= s^{t} + \tfrac{q_t - 1}{q_{t+1}}\,(s^{t} - s^{t-1}),

from :math:`z^0 = s^{-1} = 0`, :math:`q_0 = 1`; the threshold :math:`\theta_t = \mu_t\lambda_t`. The
gradient is :math:`A^H A z - A^H x` with :math:`A^H x` computed once (one FFT pair per iteration
for a circular convolution). Shapes: ``x`` ``(batch, *A.out_shape)``, iterates
``(batch, *A.in_shape)``, e.g. ``(batch, m)`` or ``(batch, c, h, w)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from torch import Tensor

from mbdl.algorithms.data_fidelity import LeastSquares
from mbdl.algorithms.ista import lipschitz_step, soft_threshold
from mbdl.algorithms.iterative import Iterative
from mbdl.algorithms.parameters import IterationParameter, Mode
from mbdl.operators import LinearOperator


class FISTA(Iterative):
    """FISTA with step ``μ_t`` and threshold ``θ_t = μ_t λ_t`` held as :class:`IterationParameter` (as in :class:`ISTA`).

    Args:
        operator: :math:`A`, e.g. ``Matrix(H)`` or a :class:`~mbdl.operators.Convolution` of images.
        iterations: number of iterations ``T``.
        lam: LASSO weight ``λ``.
        step: step ``μ``; ``None`` takes ``1/‖A‖²``.
        mode: ``"fixed"``, ``"shared"`` or ``"per_iteration"``.

    Example:
        >>> import torch
        >>> from mbdl.operators import Convolution
        >>> blur = Convolution(torch.tensor([[0.0, 0.1, 0.0], [0.1, 0.6, 0.1], [0.0, 0.1, 0.0]]), shape=(1, 16, 16))
        >>> FISTA(blur, iterations=20, lam=0.01)(torch.rand(4, 1, 16, 16)).shape
        torch.Size([4, 1, 16, 16])
    """

    def __init__(self, operator: LinearOperator, iterations: int, lam: float, step: float | None = None, mode: Mode = "fixed") -> None:
        super().__init__()
        self.iterations = iterations
        self.operator = operator
        mu = lipschitz_step(operator) if step is None else step
        self.step = IterationParameter(mu, iterations, mode, "method.mode")
        self.theta = IterationParameter(mu * lam, iterations, mode, "method.mode")

    def iterates(self, x: Tensor) -> Iterator[Tensor]:
        """Yield ``s^0, ..., s^{T-1}`` for measurements ``x`` ``(batch, *out_shape)``."""
        f = LeastSquares(self.operator, x)
        previous = z = f.zeros()
        q = 1.0
        for t in range(self.iterations):
            s = soft_threshold(z - self.step[t] * f.gradient(z), self.theta[t])
            q_next = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * q * q))
            z = s + (q - 1.0) / q_next * (s - previous)
            previous, q = s, q_next
            yield s
