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

import torch
from torch import Tensor

from mbdl.algorithms.admm import ADMM
from mbdl.algorithms.fista import FISTA
from mbdl.algorithms.ista import ALISTA, ISTA, LISTA, LISTACP
from mbdl.algorithms.linear_gaussian import fit_affine
from mbdl.algorithms.parameters import Mode
from mbdl.algorithms.proximal_gradient import NeuralProximalGradient
from mbdl.config import check_choice, check_positive, require
from mbdl.methods.base import ClosedForm, IterativeMethod, Method
from mbdl.nets.mlp import MLP
from mbdl.nets.prox import ProxCNN
from mbdl.operators import Matrix
from mbdl.tasks.inverse_problem import LinearInverseProblem

ALGORITHMS = ("ista", "ista_ss", "fista", "admm", "lista", "lista_cp", "lista_cpss", "alista")
#: the LASSO solvers, which run on whatever operator they are given (regime=generative runs them on a fitted H).
LASSO_SOLVERS = ("ista", "fista", "admm")


class IterativeSolver(IterativeMethod):
    r"""One of :data:`ALGORITHMS` on the assumed operator; ``mode`` places it on the spectrum.

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
        ridge: ``regime=generative`` (ista, fista, admm on a matrix): the weight :math:`\rho` of the fit of ``H``
            to the training pairs, toward the told :math:`\tilde H` (see :meth:`fit_model`).

    Under ``regime=generative`` :meth:`fit_model` replaces the told operator by the one fitted to the labelled
    pairs, and the solver (its step :math:`1/\|\hat H\|^2`, its ``λ``) runs on it; nothing is trained.
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
        ridge: float = 0.1,
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
        check_positive(ridge, "method.ridge", strict=False)
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
        #: builds the iteration on another operator (the fitted one).
        self.rebuild = partial(build, iterations=iterations, lam=lam, mode=mode)
        self.generative = algorithm in LASSO_SOLVERS and isinstance(operator, Matrix)
        self.ridge = ridge

    @property
    def closed_form(self) -> ClosedForm | None:
        """A LASSO solver on a matrix fits ``H`` from labelled pairs (regime=generative)."""
        return ClosedForm("generative", ("supervised",)) if self.generative else None

    def fit_model(self, x: Tensor, s: Tensor | None) -> int:
        r"""The MAP :math:`\hat H` from pairs ``s`` ``(b, m)``, ``x`` ``(b, n)``: least squares regularised toward the told
        :math:`\tilde H`,

        .. math::  \hat H = \arg\min_H \sum_i \|x_i - H s_i\|^2 + \rho\|H - \tilde H\|_F^2,

        the ML estimate under :math:`x = Hs + w` with the prior :math:`H_{ij} \sim \mathcal N(\tilde H_{ij}, \sigma^2/\rho)`
        (:math:`\rho = \sigma^2 n / \epsilon^2` for a told :math:`\tilde H = H + \epsilon E`, :math:`E_{ij} \sim \mathcal N(0, 1/n)`);
        plain least squares at :math:`\rho = 0`, which needs every column of ``H`` seen in the pairs. Solved as ridge
        least squares of the residuals :math:`x_i - \tilde H s_i` on :math:`s_i` (:func:`~mbdl.algorithms.linear_gaussian.fit_affine`)
        in float64; the solver is rebuilt on :math:`\hat H`. Returns the ``n m`` fitted entries."""
        told = self.assumed.operator.H
        H = told.to(device=x.device, dtype=torch.float64)
        residual = x.double() - s.double() @ H.T
        H = H + fit_affine(s.double(), residual, self.ridge, intercept=False)[0]
        self.algorithm = self.rebuild(Matrix(H.to(told.dtype)))
        return H.numel()


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
