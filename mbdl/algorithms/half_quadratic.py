r"""Half-quadratic splitting: alternate an exact data-consistency step with a denoising (prior) step.

For :math:`\min_s \tfrac12\|x - As\|^2 + \phi(s)`, split :math:`s = z` with the penalty :math:`\tfrac{\rho}{2}\|s - z\|^2`:

.. math::

    z^{t} &= \mathcal D_t(s^{t-1}), \\
    s^{t} &= (A^H A + \rho_t I)^{-1}\big(A^H x + \rho_t z^{t}\big),

from :math:`s^{-1}` = a start (e.g. :math:`A^H x`), ending on a data-consistent iterate. With :math:`\mathcal D_t` a shared trained CNN and trained
:math:`\rho` it is MoDL (Aggarwal et al. 2019; ADMM-Net without the dual variable); with a pretrained Gaussian
denoiser at a decreasing noise level :math:`\sigma_t` and :math:`\rho_t \propto 1/\sigma_t^2` it is
plug-and-play HQS (Zhang et al., DPIR). The inverse is the operator's
:meth:`~mbdl.operators.LinearOperator.solve` (blockwise through :math:`\Phi`'s SVD for block compressive sensing,
a division in Fourier for MRI and circular blur, conjugate gradient otherwise), differentiable in :math:`\rho_t`.
Shapes: ``x`` ``(batch, *A.out_shape)``, iterates ``(batch, *A.in_shape)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from torch import Tensor, nn

from mbdl.algorithms.data_fidelity import LeastSquares
from mbdl.algorithms.iterative import Iterative
from mbdl.algorithms.parameters import IterationParameter, Mode
from mbdl.operators import LinearOperator


class HalfQuadraticSplitting(Iterative):
    """HQS with penalties ``ρ_t`` and a prior step ``prior(v, t)`` (a module: a CNN, or a denoiser and its schedule).

    Args:
        operator: :math:`A`.
        iterations: ``T``.
        prior: :math:`\\mathcal D_t`, called as ``prior(v, t)`` on images ``(batch, *in_shape)``.
        rho: initial :math:`\\rho` (every iteration), or ``rho(t)``: a schedule (e.g. the prior's
            :meth:`~mbdl.methods.imaging.ScheduledDenoiser.penalty`, trained or not).
        mode: how a number ``ρ`` is held (``fixed``, ``shared``, ``per_iteration``).
        start: :math:`s^{-1}` from the data term (``None``: :math:`A^H x`).

    Example:
        >>> import torch
        >>> from mbdl.operators import MaskedFourier
        >>> class Identity(torch.nn.Module):
        ...     def forward(self, v, t):
        ...         return v
        >>> mri = MaskedFourier((torch.rand(16, 16) < 0.5).float(), real=True)
        >>> hqs = HalfQuadraticSplitting(mri, iterations=3, prior=Identity(), rho=0.1)
        >>> hqs(mri(torch.rand(2, 16, 16))).shape
        torch.Size([2, 16, 16])
    """

    def __init__(
        self,
        operator: LinearOperator,
        iterations: int,
        prior: nn.Module,
        rho: float | Callable[[int], Tensor] = 1.0,
        mode: Mode = "fixed",
        start: Callable[[LeastSquares], Tensor] | None = None,
    ) -> None:
        super().__init__()
        self.iterations, self.operator, self.prior, self.start = iterations, operator, prior, start
        self.schedule = rho if callable(rho) else None
        if self.schedule is None:
            self.rho = IterationParameter(rho, iterations, mode, "method.mode")

    def penalty(self, t: int) -> Tensor:
        """:math:`\\rho_t`."""
        return self.rho[t] if self.schedule is None else self.schedule(t)

    def iterates(self, x: Tensor) -> Iterator[Tensor]:
        """Yield ``s^0, ..., s^{T-1}`` (the data-consistent iterates) for measurements ``x``."""
        f = LeastSquares(self.operator, x)
        s = f.adjoint_x if self.start is None else self.start(f)
        for t in range(self.iterations):
            rho = self.penalty(t)
            s = self.operator.solve(rho, f.adjoint_x + rho * self.prior(s, t))
            yield s
