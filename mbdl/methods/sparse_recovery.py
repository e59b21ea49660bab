"""Sparse recovery on the spectrum, all with the assumed ``H`` of the task.

* model-based: ISTA, FISTA, ADMM on the LASSO with hand-set parameters (``mode="fixed"``);
* learned optimizer: the same iterations with ``μ, λ`` (ISTA) or ``ρ, λ, μ`` (ADMM) shared by all
  iterations and trained (``mode="shared"``, book Ex. 5.4);
* unfolded: LISTA, LISTA-CP, LISTA-CPSS, ALISTA, or ISTA/ADMM with per-iteration parameters
  (``mode="per_iteration"``, book Ex. 5.5, 5.6);
* black box: an MLP ``x -> s``;
* DNN-aided: neural proximal gradient (gradient steps with ``H``, a learned proximal network).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import partial
from itertools import islice

from torch import Tensor

from mbdl.algorithms.admm import ADMM
from mbdl.algorithms.fista import FISTA
from mbdl.algorithms.ista import ALISTA, ISTA, LISTA, LISTACP
from mbdl.algorithms.iterative import Iterative
from mbdl.algorithms.parameters import Mode, inherit_at, parameters_at
from mbdl.algorithms.proximal_gradient import NeuralProximalGradient
from mbdl.config import check_choice, check_positive
from mbdl.methods.base import Method, Stage
from mbdl.nets.mlp import MLP
from mbdl.nets.prox import ProxCNN
from mbdl.operators import Matrix
from mbdl.tasks.sparse_recovery import SparseRecovery

ALGORITHMS = ("ista", "ista_ss", "fista", "admm", "lista", "lista_cp", "lista_cpss", "alista")


class _Iterative(Method):
    """A method that runs an iteration ``self.algorithm`` on ``data["x"]``, truncated to ``self.depth`` steps."""

    algorithm: Iterative

    def iterates(self, data: dict[str, Tensor]) -> Iterator[Tensor]:
        return islice(self.algorithm.iterates(data["x"]), self.depth)

    def forward(self, data: dict[str, Tensor]) -> Tensor:
        for estimate in self.iterates(data):
            pass
        return estimate

    def stages(self) -> list[Stage]:
        """Layer-wise training: stage ``t`` trains the first ``t`` iterations, iteration ``t``'s parameters first."""
        stages, trained = [], []
        for t in range(self.algorithm.iterations):
            new = parameters_at(self.algorithm, t)
            trained = trained + new
            stages.append(Stage(depth=t + 1, new=new, trained=trained, warm_start=partial(inherit_at, self.algorithm, t)))
        return stages


class IterativeSolver(_Iterative):
    """One of :data:`ALGORITHMS` on the assumed ``H``; ``mode`` places it on the spectrum.

    Args:
        task: the sparse-recovery task.
        algorithm: ``ista``, ``fista``, ``admm`` (LASSO solvers), ``ista_ss`` (ISTA with LISTA-CPSS support
            selection), ``lista``, ``lista_cp``, ``lista_cpss`` (learned weight matrices) or ``alista`` (the
            analytic weight of ALISTA with support selection; learned step and threshold).
        iterations: iterations (layers).
        mode: ``"fixed"`` (model-based), ``"shared"`` (learned optimizer) or ``"per_iteration"`` (unfolded).
        lam: LASSO weight ``λ`` (initial value when trained; LISTA*: of the ISTA it starts from).
        step: gradient step ``μ`` (ISTA, FISTA, LISTA*; ALISTA: ``γ``); ``None``: ``1/‖H‖²`` (ALISTA: ``1/‖WᵀH‖₂``).
        rho: ADMM penalty ``ρ``.
        mu: ADMM dual step ``μ``.
        support_step: ista_ss, lista_cpss, alista: per cent of entries added to the selected support per layer.
        support_max: ista_ss, lista_cpss, alista: largest selected per cent.
    """

    def __init__(
        self,
        task: SparseRecovery,
        algorithm: str = "ista",
        iterations: int = 100,
        mode: Mode = "fixed",
        lam: float = 0.01,
        step: float | None = None,
        rho: float = 1.0,
        mu: float = 1.0,
        support_step: float = 1.2,
        support_max: float = 13.0,
    ) -> None:
        super().__init__(task)
        check_choice(algorithm, "method.algorithm", ALGORITHMS)
        check_positive(iterations, "method.iterations", integer=True)
        check_positive(lam, "method.lam", strict=False)
        check_positive(rho, "method.rho")
        check_positive(mu, "method.mu")
        if step is not None:
            check_positive(step, "method.step")
        check_positive(support_step, "method.support_step", strict=False)
        check_positive(support_max, "method.support_max", strict=False)
        operator = Matrix(task.H_assumed)
        build = {
            "ista": partial(ISTA, step=step),
            "ista_ss": partial(ISTA, step=step, support_step=support_step, support_max=support_max),
            "fista": partial(FISTA, step=step),
            "admm": partial(ADMM, rho=rho, mu=mu),
            "lista": partial(LISTA, step=step),
            "lista_cp": partial(LISTACP, step=step),
            "lista_cpss": partial(LISTACP, step=step, support_step=support_step, support_max=support_max),
            "alista": partial(ALISTA, step=step, support_step=support_step, support_max=support_max),
        }[algorithm]
        self.algorithm = build(operator, iterations, lam, mode=mode)


class NeuralProximalSolver(_Iterative):
    """Neural proximal gradient on the assumed ``H``: learned steps and a learned residual-CNN prox.

    Args:
        task: the sparse-recovery task.
        iterations: iterations (layers).
        tied: one prox network and step for all iterations (``False``: one per iteration).
        step: initial step ``μ``; ``None``: ``1/‖H‖²``.
        channels, layers, kernel_size: the prox network (:class:`mbdl.nets.prox.ProxCNN`).
    """

    def __init__(
        self,
        task: SparseRecovery,
        iterations: int = 5,
        tied: bool = False,
        step: float | None = None,
        channels: int = 16,
        layers: int = 3,
        kernel_size: int = 3,
    ) -> None:
        super().__init__(task)
        check_positive(iterations, "method.iterations", integer=True)
        ProxCNN(channels, layers, kernel_size)  # validates the options once, before building T copies
        prox = partial(ProxCNN, channels, layers, kernel_size)
        self.algorithm = NeuralProximalGradient(Matrix(task.H_assumed), iterations, prox, tied, step)


class MLPSolver(Method):
    """Black box: an MLP from the measurements ``x`` ``(batch, n)`` to ``s`` ``(batch, m)``.

    Args:
        task: the sparse-recovery task (gives the sizes only).
        hidden: widths of the hidden layers.
        activation: ``relu``, ``gelu`` or ``tanh``.
    """

    def __init__(self, task: SparseRecovery, hidden: Sequence[int] = (500, 500), activation: str = "relu") -> None:
        super().__init__(task)
        self.net = MLP(task.n, task.m, hidden, activation)

    def forward(self, data: dict[str, Tensor]) -> Tensor:
        return self.net(data["x"])
