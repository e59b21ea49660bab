r"""Total-variation regularised reconstruction by the primal-dual method of Condat (2013) and Vũ (2013).

.. math::  \min_s \tfrac12\|A s - x\|_2^2 + \lambda\,\mathrm{TV}(s) \;(+\,\iota_{[0,1]}(s)), \qquad
           \mathrm{TV}(s) = \sum_{i}\|(D s)_i\|_2,

with :math:`D` the forward differences (zero across the last row and column: Neumann boundary, as scikit-image's
``denoise_tv_chambolle``), isotropic over the two directions. With a dual variable :math:`p` on the gradient field:

.. math::

    s^{t+1} &= \Pi\big(s^t - \tau_t(\nabla f(s^t) + D^\top p^t)\big), \\
    p^{t+1} &= \mathrm{proj}_{\|\cdot\| \le \lambda_t}\big(p^t + \sigma_t D(2 s^{t+1} - s^t)\big),

:math:`\nabla f(s) = A^H(As - x)`, :math:`\Pi` the projection on :math:`[0, 1]` (``box=True``) or the identity, and
the projection of :math:`p` pixel by pixel onto the ball of radius :math:`\lambda`. It converges when
:math:`1/\tau - \sigma\|D\|^2 \ge \|A\|^2/2` with :math:`\|D\|^2 \le 8`: by default :math:`\tau = 1/\|A\|^2` and
:math:`\sigma = (1/\tau - \|A\|^2/2)/8`. One Gram product per iteration; the operator may be any
:class:`~mbdl.operators.LinearOperator` of real images ``(batch, c, h, w)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import Tensor

from mbdl.algorithms.data_fidelity import LeastSquares
from mbdl.algorithms.ista import lipschitz_step
from mbdl.algorithms.iterative import Iterative
from mbdl.algorithms.parameters import IterationParameter, Mode
from mbdl.operators import LinearOperator


def gradient(s: Tensor) -> Tensor:
    """:math:`D s`, forward differences ``(2, *s.shape)`` (vertical, horizontal) over the last two axes, zero at the end."""
    vertical = torch.zeros_like(s)
    horizontal = torch.zeros_like(s)
    vertical[..., :-1, :] = s[..., 1:, :] - s[..., :-1, :]
    horizontal[..., :, :-1] = s[..., :, 1:] - s[..., :, :-1]
    return torch.stack([vertical, horizontal])


def gradient_adjoint(p: Tensor) -> Tensor:
    r""":math:`D^\top p` (minus the divergence) of a field ``(2, *shape)``."""
    vertical, horizontal = p[0], p[1]
    out = torch.zeros_like(vertical)
    out[..., :-1, :] -= vertical[..., :-1, :]
    out[..., 1:, :] += vertical[..., :-1, :]
    out[..., :, :-1] -= horizontal[..., :, :-1]
    out[..., :, 1:] += horizontal[..., :, :-1]
    return out


def total_variation(s: Tensor) -> Tensor:
    r"""Isotropic :math:`\mathrm{TV}(s) = \sum_i \|(Ds)_i\|_2` of images ``(batch, *shape)``, per sample ``(batch,)``."""
    return gradient(s).square().sum(dim=0).sqrt().flatten(1).sum(dim=1)


def project_ball(p: Tensor, radius: Tensor | float) -> Tensor:
    """Each pixel's gradient vector ``p[:, i]`` projected onto the ball of ``radius``."""
    # p min(1, radius/|p|), written without |p| itself, whose gradient at p = 0 is undefined
    return p * torch.rsqrt(torch.clamp(p.square().sum(dim=0, keepdim=True) / (radius * radius), min=1.0))


class PrimalDualTV(Iterative):
    """TV reconstruction by Condat-Vũ primal-dual iterations, with step ``τ_t``, dual step ``σ_t`` and weight ``λ_t``
    held as :class:`IterationParameter` (``fixed``: model-based; ``shared``: learned optimizer; ``per_iteration``: unfolded).

    Args:
        operator: :math:`A` on images ``(c, h, w)``.
        iterations: ``T``.
        lam: :math:`\\lambda`.
        step: :math:`\\tau`; ``None``: ``1/‖A‖²``.
        dual_step: :math:`\\sigma`; ``None``: ``(1/τ - ‖A‖²/2)/8``.
        box: project the iterates on ``[0, 1]``.
        mode: how ``τ, σ, λ`` are held.
        start: the first iterate from the measurements (``None``: zero).

    Example:
        >>> import torch
        >>> from mbdl.operators import Diagonal
        >>> tv = PrimalDualTV(Diagonal(torch.ones(1, 8, 8)), iterations=2000, lam=10.0)
        >>> x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
        >>> torch.allclose(tv(x), x.mean(dim=(-2, -1), keepdim=True).expand_as(x), atol=1e-5)  # a huge λ: the mean
        True
    """

    def __init__(
        self,
        operator: LinearOperator,
        iterations: int,
        lam: float,
        step: float | None = None,
        dual_step: float | None = None,
        box: bool = False,
        mode: Mode = "fixed",
        start: Callable[[LeastSquares], Tensor] | None = None,
    ) -> None:
        super().__init__()
        self.iterations, self.operator, self.box, self.start = iterations, operator, box, start
        tau = lipschitz_step(operator) if step is None else step
        sigma = (1.0 / tau - 0.5 * operator.norm2()) / 8.0 if dual_step is None else dual_step
        self.step = IterationParameter(tau, iterations, mode, "method.mode")
        self.dual_step = IterationParameter(sigma, iterations, mode, "method.mode")
        self.lam = IterationParameter(lam, iterations, mode, "method.mode")

    def iterates(self, x: Tensor) -> Iterator[Tensor]:
        """Yield ``s^1, ..., s^T`` for measurements ``x`` ``(batch, *out_shape)``."""
        f = LeastSquares(self.operator, x)
        s = f.zeros() if self.start is None else self.start(f)
        p = gradient(torch.zeros_like(s))
        for t in range(self.iterations):
            previous = s
            s = s - self.step[t] * (f.gradient(s) + gradient_adjoint(p))
            if self.box:
                s = s.clamp(0.0, 1.0)
            p = project_ball(p + self.dual_step[t] * gradient(2.0 * s - previous), self.lam[t])
            yield s
