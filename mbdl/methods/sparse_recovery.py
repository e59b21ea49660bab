"""Linear inverse problems on the spectrum (sparse recovery, and any task whose assumed model is a
:class:`~mbdl.tasks.inverse_problem.LinearInverseProblem`), all with the assumed operator.

* model-based: ISTA, FISTA, ADMM on the LASSO with hand-set parameters (``mode="fixed"``);
* learned optimizer: the same iterations with ``μ, λ`` (ISTA) or ``ρ, λ, μ`` (ADMM) shared by all
  iterations and trained (``mode="shared"``, book Ex. 5.4);
* unfolded: LISTA, LISTA-CP, LISTA-CPSS, ALISTA, or ISTA/ADMM with per-iteration parameters
  (``mode="per_iteration"``, book Ex. 5.5, 5.6);
* black box: an MLP ``x -> s``;
* DNN-aided: neural proximal gradient (gradient steps with ``H``, a learned proximal network).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from math import prod

from torch import Tensor

from mbdl.algorithms.admm import ADMM
from mbdl.algorithms.fista import FISTA
from mbdl.algorithms.ista import ALISTA, ISTA, LISTA, LISTACP
from mbdl.algorithms.parameters import Mode
from mbdl.algorithms.proximal_gradient import NeuralProximalGradient
from mbdl.config import check_choice, check_positive, require
from mbdl.methods.base import IterativeMethod, Method
from mbdl.nets.mlp import MLP
from mbdl.nets.prox import ProxCNN
from mbdl.tasks.inverse_problem import LinearInverseProblem

ALGORITHMS = ("ista", "ista_ss", "fista", "admm", "lista", "lista_cp", "lista_cpss", "alista")


class IterativeSolver(IterativeMethod):
    """One of :data:`ALGORITHMS` on the assumed operator; ``mode`` places it on the spectrum.

    Args:
        assumed: the task's assumed linear inverse problem.
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
        assumed: LinearInverseProblem,
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
        super().__init__(assumed)
        check_choice(algorithm, "method.algorithm", ALGORITHMS)
        check_positive(iterations, "method.iterations", integer=True)
        check_positive(lam, "method.lam", strict=False)
        check_positive(rho, "method.rho")
        check_positive(mu, "method.mu")
        if step is not None:
            check_positive(step, "method.step")
        check_positive(support_step, "method.support_step", strict=False)
        check_positive(support_max, "method.support_max", strict=False)
        operator = assumed.operator
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


class NeuralProximalSolver(IterativeMethod):
    """Neural proximal gradient on the assumed operator: learned steps and a learned residual-CNN prox.

    Args:
        assumed: the task's assumed linear inverse problem.
        iterations: iterations (layers).
        tied: one prox network and step for all iterations (``False``: one per iteration).
        step: initial step ``μ``; ``None``: ``1/‖H‖²``.
        train_step: train the steps (``False``: they stay at ``step``, for an operator whose ``1/‖H‖²`` is far from
            the scale of the prox network's weights, where one learning rate cannot suit both).
        channels, layers, kernel_size: the prox network (:class:`mbdl.nets.prox.ProxCNN`, 1-D or 2-D as the signals are).
    """

    def __init__(
        self,
        assumed: LinearInverseProblem,
        iterations: int = 5,
        tied: bool = False,
        step: float | None = None,
        train_step: bool = True,
        channels: int = 16,
        layers: int = 3,
        kernel_size: int = 3,
    ) -> None:
        super().__init__(assumed)
        check_positive(iterations, "method.iterations", integer=True)
        require(isinstance(train_step, bool), "method.train_step", f"must be true or false, got {train_step!r}")
        dims = len(assumed.operator.in_shape)  # 1-D signals or 2-D images
        ProxCNN(channels, layers, kernel_size, dims)  # validates the options once, before building T copies
        prox = partial(ProxCNN, channels, layers, kernel_size, dims)
        self.algorithm = NeuralProximalGradient(assumed.operator, iterations, prox, tied, step)
        self.algorithm.step.requires_grad_(train_step)


class MLPSolver(Method):
    """Black box: an MLP from the flattened measurements ``x`` ``(batch, *out_shape)`` to ``s`` ``(batch, *in_shape)``.

    Args:
        assumed: the task's assumed linear inverse problem (gives the sizes only).
        hidden: widths of the hidden layers.
        activation: ``relu``, ``gelu`` or ``tanh``.
    """

    def __init__(self, assumed: LinearInverseProblem, hidden: Sequence[int] = (500, 500), activation: str = "relu") -> None:
        super().__init__(assumed)
        self.in_shape = assumed.operator.in_shape
        self.net = MLP(prod(assumed.operator.out_shape), prod(self.in_shape), hidden, activation)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.flatten(1)).unflatten(1, self.in_shape)
