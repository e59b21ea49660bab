r"""The iterative soft-thresholding algorithm and its learned descendants.

ISTA for the LASSO :math:`\min_s \tfrac12\|x - Hs\|_2^2 + \lambda\|s\|_1` iterates

.. math::  s^{t+1} = \eta_{\mu_t\lambda_t}\big(s^t + \mu_t H^\top (x - H s^t)\big),

with the soft threshold :math:`\eta_\theta(v) = \mathrm{sign}(v)\max(|v| - \theta, 0)` and a step
:math:`\mu \le 1/\|H\|_2^2`. LISTA (Gregor & LeCun, 2010) unfolds it into layers

.. math::  s^{t+1} = \eta_{\theta_t}\big(W_t x + S_t s^t\big),

initialised at :math:`W = \mu H^\top`, :math:`S = I - \mu H^\top H`, :math:`\theta = \mu\lambda`,
from which it is exactly ISTA.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor, nn

from mbdl.algorithms.parameters import IterationParameter, Mode


def soft_threshold(v: Tensor, theta: Tensor | float) -> Tensor:
    r""":math:`\eta_\theta(v) = \mathrm{sign}(v)\,\max(|v| - \theta, 0)`, elementwise."""
    return torch.sign(v) * torch.relu(v.abs() - theta)


def lipschitz_step(H: Tensor) -> float:
    r"""The largest safe gradient step :math:`1/\|H\|_2^2` for :math:`\tfrac12\|x - Hs\|^2`."""
    return 1.0 / torch.linalg.matrix_norm(H.double(), ord=2).item() ** 2


class ISTA(nn.Module):
    """ISTA with step ``μ_t`` and regularisation ``λ_t`` held as :class:`IterationParameter`.

    Args:
        H: ``(n, m)`` operator.
        iterations: number of iterations ``T``.
        lam: LASSO weight ``λ``.
        step: step ``μ``; ``None`` takes ``1/‖H‖²``.
        mode: how ``μ`` and ``λ`` are held (``"fixed"``: ISTA; ``"shared"``: learned
            optimizer; ``"per_iteration"``: unfolded).
    """

    def __init__(self, H: Tensor, iterations: int, lam: float, step: float | None = None, mode: Mode = "fixed") -> None:
        super().__init__()
        self.iterations = iterations
        self.register_buffer("H", H)
        self.step = IterationParameter(lipschitz_step(H) if step is None else step, iterations, mode, "method.mode")
        self.lam = IterationParameter(lam, iterations, mode, "method.mode")

    def iterates(self, x: Tensor, s: Tensor | None = None) -> Iterator[Tensor]:
        """Yield ``s^1, ..., s^T`` for measurements ``x`` ``(batch, n)``, from ``s^0`` (zero by default)."""
        H = self.H
        s = x.new_zeros(x.shape[0], H.shape[1]) if s is None else s
        for t in range(self.iterations):
            mu = self.step[t]
            s = soft_threshold(s + mu * (x - s @ H.T) @ H, mu * self.lam[t])
            yield s

    def forward(self, x: Tensor, s: Tensor | None = None) -> Tensor:
        """``s^T``, ``(batch, m)``."""
        for s in self.iterates(x, s):
            pass
        return s


class LISTA(nn.Module):
    """LISTA: ``T`` layers with their own ``W_t``, ``S_t`` and ``θ_t`` (``shared=True`` ties them).

    Args:
        H: ``(n, m)`` operator the layers are initialised from.
        iterations: number of layers ``T``.
        lam: ``λ`` of the ISTA it is initialised from.
        step: ``μ`` of that ISTA; ``None`` takes ``1/‖H‖²``.
        mode: ``"per_iteration"`` (LISTA) or ``"shared"`` (one set of weights, a recurrent LISTA).
    """

    def __init__(self, H: Tensor, iterations: int, lam: float, step: float | None = None, mode: Mode = "per_iteration") -> None:
        super().__init__()
        self.iterations = iterations
        mu = lipschitz_step(H) if step is None else step
        m = H.shape[1]
        self.W = IterationParameter(mu * H.T, iterations, mode, "method.mode")
        self.S = IterationParameter(torch.eye(m) - mu * H.T @ H, iterations, mode, "method.mode")
        self.theta = IterationParameter(mu * lam, iterations, mode, "method.mode")

    def iterates(self, x: Tensor) -> Iterator[Tensor]:
        """Yield the output of every layer for measurements ``x`` ``(batch, n)``."""
        s = x.new_zeros(x.shape[0], self.S[0].shape[0])
        for t in range(self.iterations):
            s = soft_threshold(x @ self.W[t].T + s @ self.S[t].T, self.theta[t])
            yield s

    def forward(self, x: Tensor) -> Tensor:
        """Output of the last layer, ``(batch, m)``."""
        for s in self.iterates(x):
            pass
        return s
