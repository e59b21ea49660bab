r"""The iterative soft-thresholding algorithm and its learned descendants.

ISTA for the LASSO :math:`\min_s \tfrac12\|x - As\|_2^2 + \lambda\|s\|_1` (:math:`A = H` a matrix,
or any :class:`~mbdl.operators.LinearOperator`) iterates

.. math::  s^{t+1} = \eta_{\theta_t}\big(s^t + \mu_t A^H (x - A s^t)\big), \qquad \theta_t = \mu_t\lambda_t,

with the soft threshold :math:`\eta_\theta(v) = \mathrm{sgn}(v)\max(|v| - \theta, 0)` (the magnitude
shrinks, the phase stays, for complex :math:`v`) and a step :math:`\mu \le 1/\|A\|_2^2`. LISTA
(Gregor & LeCun, 2010) unfolds it into layers

.. math::  s^{t+1} = \eta_{\theta_t}\big(W_t x + S_t s^t\big),

initialised at :math:`W = \mu H^\top`, :math:`S = I - \mu H^\top H`, :math:`\theta = \mu\lambda`,
from which it is exactly ISTA. LISTA-CP (Chen et al., 2018) couples :math:`S_t = I - W_t^\top H`:

.. math::  s^{t+1} = \eta^{\mathrm{ss}}_{\theta_t, p_t}\big(s^t + W_t^\top (x - H s^t)\big),

and support selection (LISTA-CPSS) lets the :math:`p_t` per cent largest entries bypass the
threshold, :math:`p_t = \min(p\,(t+1), p_{\max})`. ALISTA (Liu et al., ICLR 2019) fixes the weight
to an analytic :math:`W` computed from :math:`H` alone and learns only a step and a threshold per layer,

.. math::  s^{t+1} = \eta^{\mathrm{ss}}_{\theta_t, p_t}\big(s^t + \gamma_t W^\top (x - H s^t)\big).

LISTA, LISTA-CP and ALISTA learn or compute a dense :math:`W` and need a
:class:`~mbdl.operators.Matrix`. Shapes: measurements ``x`` ``(batch, *A.out_shape)``, iterates
``s`` ``(batch, *A.in_shape)``: ``(batch, n)`` and ``(batch, m)`` for ``H`` ``(n, m)``, or images
``(batch, c, h, w)``.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor

from mbdl.algorithms.data_fidelity import LeastSquares
from mbdl.algorithms.iterative import Iterative
from mbdl.algorithms.parameters import IterationParameter, Mode
from mbdl.config import ConfigError
from mbdl.operators import LinearOperator, Matrix


def soft_threshold(v: Tensor, theta: Tensor | float) -> Tensor:
    r""":math:`\eta_\theta(v) = \mathrm{sgn}(v)\,\max(|v| - \theta, 0)`, elementwise (magnitude shrinkage for complex ``v``)."""
    return torch.sgn(v) * torch.relu(v.abs() - theta)


def support_selection_threshold(v: Tensor, theta: Tensor | float, percent: float, dims: int = 1) -> Tensor:
    r""":math:`\eta^{\mathrm{ss}}_{\theta,p}`: the soft threshold, except for entries of ``v`` that are among the
    ``percent`` % largest in magnitude of their sample (the last ``dims`` dimensions, e.g. ``(batch, m)``
    with ``dims=1``, ``(batch, c, h, w)`` with ``dims=3``) *and* above ``θ``, which pass unchanged.

    The selection is a constant for the gradient (as in LISTA-CPSS)."""
    flat = v.flatten(start_dim=v.dim() - dims)
    count = int(percent / 100.0 * flat.shape[-1])
    if count == 0:
        return soft_threshold(v, theta)
    magnitude = flat.abs()
    kth = magnitude.topk(count, dim=-1).values[..., -1:]
    selected = ((magnitude >= kth) & (magnitude > theta)).detach()
    return torch.where(selected, flat, soft_threshold(flat, theta)).reshape(v.shape)


def support_percents(iterations: int, support_step: float, support_max: float) -> list[float]:
    """The support-selection schedule :math:`p_t = \\min(p\\,(t+1), p_{\\max})` (per cent), ``t = 0..T-1``."""
    return [min(support_step * (t + 1), support_max) for t in range(iterations)]


def lipschitz_step(operator: LinearOperator) -> float:
    r"""The largest safe gradient step :math:`1/\|A\|_2^2` for :math:`\tfrac12\|x - As\|^2`."""
    return 1.0 / operator.norm2()


def dense_matrix(operator: LinearOperator, method: str, why: str = "learns a dense matrix W") -> Tensor:
    """The matrix ``H`` of a :class:`~mbdl.operators.Matrix` operator, for the methods that need one.

    Raises:
        ConfigError: naming ``method`` and the operator, for any other operator."""
    if not isinstance(operator, Matrix):
        raise ConfigError(f"method.algorithm: {method} {why} and needs a Matrix operator, the task's operator is {type(operator).__name__}")
    return operator.H


def analytic_weight(H: Tensor) -> Tensor:
    r"""ALISTA's weight :math:`W = \arg\min_W \|W^\top H\|_F^2` subject to :math:`w_i^\top h_i = 1` for every
    column :math:`i`: the matrix least coherent with ``H`` ``(n, m)`` (``n < m``, full row rank).

    The problem separates over columns, :math:`\min_w w^\top H H^\top w` s.t. :math:`w^\top h_i = 1`,
    whose solution is :math:`w_i = (HH^\top)^{-1} h_i \,/\, h_i^\top (HH^\top)^{-1} h_i` (computed in
    float64; the ALISTA paper reaches it by projected gradient descent)."""
    H64 = H.double()
    G = torch.linalg.solve(H64 @ H64.T, H64)
    return (G / (H64 * G).sum(dim=0)).to(H.dtype)


class _ThresholdedGradient(Iterative):
    r"""The iteration shared by ISTA, LISTA-CP and ALISTA: :math:`s \leftarrow \eta^{\mathrm{ss}}_{\theta_t, p_t}(u_t(s))`
    from :math:`s^0 = 0`, with :meth:`update` giving the point :math:`u_t(s)` before the threshold."""

    def __init__(self, operator: LinearOperator, iterations: int, theta: float, mode: Mode, support_step: float, support_max: float) -> None:
        super().__init__()
        self.iterations = iterations
        self.operator = operator
        self.theta = IterationParameter(theta, iterations, mode, "method.mode")
        self.percent = support_percents(iterations, support_step, support_max)

    @abstractmethod
    def update(self, s: Tensor, f: LeastSquares, t: int) -> Tensor:
        """:math:`u_t(s)`, the gradient-type step of iteration ``t`` on the data term ``f``."""

    def iterates(self, x: Tensor) -> Iterator[Tensor]:
        """Yield ``s^1, ..., s^T`` for measurements ``x`` ``(batch, *out_shape)``."""
        f = LeastSquares(self.operator, x)
        s = f.zeros()
        for t in range(self.iterations):
            s = support_selection_threshold(self.update(s, f, t), self.theta[t], self.percent[t], len(self.operator.in_shape))
            yield s


class ISTA(_ThresholdedGradient):
    """ISTA, :math:`s \\leftarrow \\eta_{\\theta_t}(s - \\mu_t \\nabla f(s))`, with step ``μ_t`` and threshold
    ``θ_t = μ_t λ_t`` held as :class:`IterationParameter`, on any operator.

    The threshold, not ``λ``, is the trained parameter (a learned ``λ_t`` is ``θ_t / μ_t``): trained as
    ``(μ_t, λ_t)`` the 5-layer book setup stalls at -22.6 dB, as ``(μ_t, θ_t)`` it reaches -30.7 dB
    (100 epochs, lr 1e-2, with support selection).

    Args:
        operator: :math:`A`, e.g. ``Matrix(H)`` with ``H`` ``(n, m)``, or a convolution of images.
        iterations: number of iterations ``T``.
        lam: LASSO weight ``λ``.
        step: step ``μ``; ``None`` takes ``1/‖A‖²``.
        mode: how ``μ`` and ``θ`` are held (``"fixed"``: ISTA; ``"shared"``: learned
            optimizer; ``"per_iteration"``: unfolded).
        support_step, support_max: support selection as in LISTA-CPSS (0: plain soft threshold).

    Example:
        >>> import torch
        >>> from mbdl.operators import Matrix
        >>> ista = ISTA(Matrix(torch.eye(3)), iterations=10, lam=0.1)
        >>> ista(torch.tensor([[1.0, 0.05, -2.0]]))
        tensor([[ 0.9000,  0.0000, -1.9000]])
    """

    def __init__(
        self,
        operator: LinearOperator,
        iterations: int,
        lam: float,
        step: float | None = None,
        mode: Mode = "fixed",
        support_step: float = 0.0,
        support_max: float = 0.0,
    ) -> None:
        mu = lipschitz_step(operator) if step is None else step
        super().__init__(operator, iterations, mu * lam, mode, support_step, support_max)
        self.step = IterationParameter(mu, iterations, mode, "method.mode")

    def update(self, s: Tensor, f: LeastSquares, t: int) -> Tensor:
        return s - self.step[t] * f.gradient(s)


class ALISTA(ISTA):
    """ALISTA: ISTA whose gradient direction ``Hᵀ`` is replaced by the analytic ``Wᵀ`` of
    :func:`analytic_weight`; only the step ``γ_t`` and threshold ``θ_t = γ λ`` (initially) are held as
    :class:`IterationParameter` (``2T`` scalars when unfolded). Same arguments as :class:`ISTA`, with a
    :class:`~mbdl.operators.Matrix` operator; ``step=None`` takes ``γ = 1/‖WᵀH‖₂``."""

    def __init__(self, operator: LinearOperator, iterations: int, lam: float, step: float | None = None, **options: Any) -> None:
        H = dense_matrix(operator, "alista", "computes its weight W from the dense matrix")
        W = analytic_weight(H)
        gamma = 1.0 / torch.linalg.matrix_norm((W.T @ H).double(), ord=2).item() if step is None else step
        super().__init__(operator, iterations, lam, gamma, **options)
        self.register_buffer("W", W)

    def update(self, s: Tensor, f: LeastSquares, t: int) -> Tensor:
        return s + f.residual(s) @ (self.step[t] * self.W)


class LISTA(Iterative):
    """LISTA: ``T`` layers with their own ``W_t``, ``S_t`` and ``θ_t`` (``mode="shared"`` ties them).

    Args:
        operator: a :class:`~mbdl.operators.Matrix` ``H`` ``(n, m)`` the layers are initialised from.
        iterations: number of layers ``T``.
        lam: ``λ`` of the ISTA it is initialised from.
        step: ``μ`` of that ISTA; ``None`` takes ``1/‖H‖²``.
        mode: ``"per_iteration"`` (LISTA) or ``"shared"`` (one set of weights, a recurrent LISTA).
    """

    def __init__(self, operator: LinearOperator, iterations: int, lam: float, step: float | None = None, mode: Mode = "per_iteration") -> None:
        super().__init__()
        H = dense_matrix(operator, "lista")
        self.iterations = iterations
        mu = lipschitz_step(operator) if step is None else step
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


class LISTACP(_ThresholdedGradient):
    """LISTA with coupled weights (LISTA-CP), optionally with support selection (LISTA-CPSS): ISTA whose
    ``μ_t H`` is a learned ``W_t`` ``(n, m)``, initialised at ``μH`` (and ``θ_t = μλ``).

    Args:
        operator: a :class:`~mbdl.operators.Matrix` ``H`` ``(n, m)`` (used in every layer's residual ``x - H s``).
        iterations: number of layers ``T``.
        lam: ``λ`` of the ISTA it is initialised from.
        step: ``μ``; ``None`` takes ``1/‖H‖²``.
        mode: ``"per_iteration"`` (untied layers) or ``"shared"`` (tied).
        support_step: ``p``, per cent of entries added to the selected support per layer (0: LISTA-CP).
        support_max: ``p_max``, the largest selected per cent.
    """

    def __init__(self, operator: LinearOperator, iterations: int, lam: float, step: float | None = None, mode: Mode = "per_iteration", support_step: float = 0.0, support_max: float = 0.0) -> None:
        H = dense_matrix(operator, "lista_cp")
        mu = lipschitz_step(operator) if step is None else step
        super().__init__(operator, iterations, mu * lam, mode, support_step, support_max)
        self.W = IterationParameter(mu * H, iterations, mode, "method.mode")

    def update(self, s: Tensor, f: LeastSquares, t: int) -> Tensor:
        return s + f.residual(s) @ self.W[t]
