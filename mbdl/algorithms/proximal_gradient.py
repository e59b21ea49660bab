r"""Neural proximal gradient: gradient steps with the known ``H``, a learned network as the proximal operator.

.. math::  s^{t+1} = P_{\phi_t}\big(s^t + \mu_t H^\top (x - H s^t)\big),

with :math:`P_{\phi_t}` a small network, tied (:math:`\phi_t = \phi`) or untied over the iterations;
with :math:`P = \eta_{\mu\lambda}` it is ISTA. Shapes: ``H`` ``(n, m)``, ``x`` ``(batch, n)``,
iterates ``(batch, m)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from torch import Tensor, nn

from mbdl.algorithms.ista import gradient_step, lipschitz_step
from mbdl.algorithms.iterative import Iterative
from mbdl.algorithms.parameters import IterationModules, IterationParameter


class NeuralProximalGradient(Iterative):
    """Proximal gradient with learned steps ``μ_t`` and learned proximal networks ``P_t``.

    Args:
        H: ``(n, m)`` operator.
        iterations: number of iterations ``T``.
        prox: builds one proximal network ``(batch, m) -> (batch, m)``.
        tied: one network (and one step) for every iteration.
        step: initial ``μ``; ``None`` takes ``1/‖H‖²``.
    """

    def __init__(self, H: Tensor, iterations: int, prox: Callable[[], nn.Module], tied: bool = False, step: float | None = None) -> None:
        super().__init__()
        self.iterations = iterations
        self.register_buffer("H", H)
        mode = "shared" if tied else "per_iteration"
        self.step = IterationParameter(lipschitz_step(H) if step is None else step, iterations, mode, "method.tied")
        self.prox = IterationModules(prox, iterations, tied)

    def iterates(self, x: Tensor) -> Iterator[Tensor]:
        """Yield ``s^1, ..., s^T`` for measurements ``x`` ``(batch, n)``, from ``s^0 = 0``."""
        s = x.new_zeros(x.shape[0], self.H.shape[1])
        for t in range(self.iterations):
            s = self.prox[t](gradient_step(s, x, self.H, self.step[t] * self.H))
            yield s
