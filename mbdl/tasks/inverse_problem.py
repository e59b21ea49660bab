r"""The assumed model of a linear inverse problem :math:`x = A(s) + w`, and the losses it supplies without labels.

Sparse recovery, imaging and ultrasound localisation hand their methods a
:class:`LinearInverseProblem`: the forward operator :math:`\tilde A` the methods are told (a
:class:`~mbdl.operators.LinearOperator`, the true one unless a mismatch is configured) and the
noise level they are told (``None`` when it is not part of the assumed model).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from mbdl.algorithms.data_fidelity import LeastSquares
from mbdl.config import check_choice
from mbdl.operators import LinearOperator

#: unsupervised losses of a linear inverse problem (``task.unsupervised_loss``).
UNSUPERVISED_LOSSES = ("consistency", "lasso")


@dataclass(frozen=True)
class LinearInverseProblem:
    """What the methods are told of :math:`x = A(s) + w`.

    Attributes:
        operator: :math:`\\tilde A`, ``(..., *in_shape) -> (..., *out_shape)``.
        noise_std: the noise standard deviation :math:`\\sigma` the methods are told, or ``None``.
    """

    operator: LinearOperator
    noise_std: float | None = None

    def unsupervised_loss(self, estimate: Tensor, x: Tensor, kind: str, lam: float = 0.0) -> Tensor:
        r"""A loss from the measurements alone, mean over the batch: measurement consistency
        :math:`\frac{1}{n}\|x - \tilde A\hat s\|^2` (``kind="consistency"``, :math:`n` measurements per sample) or
        the LASSO objective :math:`\tfrac12\|x - \tilde A\hat s\|^2 + \lambda\|\hat s\|_1` (``"lasso"``)."""
        check_choice(kind, "task.unsupervised_loss", UNSUPERVISED_LOSSES)
        fidelity = LeastSquares(self.operator, x)(estimate)
        if kind == "consistency":
            return (2.0 * fidelity).mean() / x[0].numel()
        return (fidelity + lam * estimate.abs().flatten(1).sum(dim=1)).mean()
