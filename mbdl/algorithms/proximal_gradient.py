r"""Neural proximal gradient: gradient steps with the known operator :math:`A`, a learned network as the proximal operator.

.. math::  s^{t+1} = P_{\phi_t}\big(s^t + \mu_t A^H (x - A s^t)\big),

with :math:`P_{\phi_t}` a small network, tied (:math:`\phi_t = \phi`) or untied over the iterations;
with :math:`P = \eta_{\mu\lambda}` it is ISTA. From :math:`s^0 = 0`, or a given start (ISTA-Net's :math:`s^0 = Q x`). Shapes: ``x`` ``(batch, *A.out_shape)``, iterates
``(batch, *A.in_shape)`` (``(batch, m)`` for a matrix ``H`` ``(n, m)``), which the network maps to themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from torch import Tensor, nn

from mbdl.algorithms.data_fidelity import LeastSquares
from mbdl.algorithms.ista import lipschitz_step
from mbdl.algorithms.iterative import Iterative
from mbdl.algorithms.parameters import IterationModules, IterationParameter
from mbdl.operators import LinearOperator


class NeuralProximalGradient(Iterative):
    """Proximal gradient with learned steps ``μ_t`` and learned proximal networks ``P_t``.

    Args:
        operator: :math:`A`, e.g. ``Matrix(H)``.
        iterations: number of iterations ``T``.
        prox: builds one proximal network ``(batch, *in_shape) -> (batch, *in_shape)``.
        tied: one network (and one step) for every iteration.
        step: initial ``μ``; ``None`` takes ``1/‖A‖²``.
        start: the first iterate :math:`s^0` from the data term (``None``: zero), e.g. a learned linear map of ``x``.

    Example:
        >>> import torch
        >>> from mbdl.nets.prox import ProxCNN
        >>> from mbdl.operators import Matrix
        >>> npg = NeuralProximalGradient(Matrix(torch.randn(5, 8)), iterations=3, prox=ProxCNN)
        >>> npg(torch.randn(2, 5)).shape
        torch.Size([2, 8])
    """

    def __init__(
        self,
        operator: LinearOperator,
        iterations: int,
        prox: Callable[[], nn.Module],
        tied: bool = False,
        step: float | None = None,
        start: Callable[[LeastSquares], Tensor] | None = None,
    ) -> None:
        super().__init__()
        self.iterations = iterations
        self.operator = operator
        mode = "shared" if tied else "per_iteration"
        self.step = IterationParameter(lipschitz_step(operator) if step is None else step, iterations, mode, "method.tied")
        self.prox = IterationModules(prox, iterations, tied)
        self.start = start

    def iterates(self, x: Tensor) -> Iterator[Tensor]:
        """Yield ``s^1, ..., s^T`` for measurements ``x`` ``(batch, *out_shape)``, from ``s^0`` (zero unless a start is given)."""
        f = LeastSquares(self.operator, x)
        s = f.zeros() if self.start is None else self.start(f)
        for t in range(self.iterations):
            s = self.prox[t](s - self.step[t] * f.gradient(s))
            yield s
