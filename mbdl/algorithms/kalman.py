r"""The Kalman filter and the extended Kalman filter, batched over trajectories and differentiable.

State-space model (states :math:`s_t \in \mathbb{R}^n`, measurements :math:`x_t \in \mathbb{R}^m`):

.. math::  s_t = f(s_{t-1}) + v_t,\quad v_t \sim \mathcal{N}(0, Q),\qquad
           x_t = h(s_t) + w_t,\quad w_t \sim \mathcal{N}(0, R),

for :math:`t = 1, \dots, T`, from :math:`s_0 \sim \mathcal{N}(\hat s_0, P_0)`. One step of the filter,
in the order of the code (``F_t``, ``H_t`` are the Jacobians of ``f`` at :math:`\hat s_{t-1}` and of
``h`` at :math:`\hat s_{t|t-1}`; for a linear model they are the matrices ``F``, ``H``):

.. math::
    \hat s_{t|t-1} &= f(\hat s_{t-1}),            & P_{t|t-1} &= F_t P_{t-1} F_t^\top + Q \\
    \Delta x_t &= x_t - h(\hat s_{t|t-1}),         & S_t &= H_t P_{t|t-1} H_t^\top + R \\
    K_t &= P_{t|t-1} H_t^\top S_t^{-1},            & \hat s_t &= \hat s_{t|t-1} + K_t \Delta x_t \\
    P_t &= (I - K_t H_t) P_{t|t-1} (I - K_t H_t)^\top + K_t R K_t^\top & & \text{(Joseph form)}

The Joseph form keeps :math:`P_t` symmetric positive semi-definite in finite precision (it is
also what ``filterpy.kalman.KalmanFilter.update`` computes).

Shapes: a batch of ``b`` trajectories, ``x`` ``(b, T, m)``; estimates ``(b, T, n)``. Every model
matrix broadcasts: ``F`` ``(n, n)`` or ``(b, n, n)``, ``H`` ``(m, n)`` or ``(b, m, n)``, ``Q`` ``(n, n)``,
``R`` ``(m, m)``, ``s0`` ``(n,)`` or ``(b, n)``, ``P0`` ``(n, n)`` or ``(b, n, n)``. With an unbatched
linear model and ``P0`` the covariance recursion (which does not depend on the data) runs once
for the whole batch. Only time is a Python loop. Everything is differentiable (``Q``, ``R``,
``F``, ``H`` may be trained by back-propagation through the filter, book Ex. 5.2).

Example::

    >>> F = torch.tensor([[1.0, 1.0], [0.0, 1.0]]); H = torch.eye(2)
    >>> x = torch.randn(1000, 100, 2)
    >>> s_hat = kalman_filter(x, F, H, 0.01 * torch.eye(2), torch.eye(2), torch.zeros(2), torch.zeros(2, 2)).s
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

Transition = Callable[[Tensor], Tensor]
"""A batched map ``(b, n) -> (b, k)`` (``f`` or ``h``) or its Jacobian ``(b, n) -> (b, k, n)``."""


class FilterResult(NamedTuple):
    """Output of :func:`kalman_filter` / :func:`extended_kalman_filter`.

    Attributes:
        s: ``(b, T, n)`` posterior means :math:`\\hat s_t`, ``t = 1..T``.
        P: ``(T, n, n)`` or ``(b, T, n, n)`` posterior covariances :math:`P_t`.
        gain: ``(T, n, m)`` or ``(b, T, n, m)`` Kalman gains :math:`K_t`.
        innovation: ``(b, T, m)`` innovations :math:`\\Delta x_t = x_t - h(\\hat s_{t|t-1})`.
    """

    s: Tensor
    P: Tensor
    gain: Tensor
    innovation: Tensor


def _t(A: Tensor) -> Tensor:
    return A.transpose(-1, -2)


def symmetrize(P: Tensor) -> Tensor:
    """:math:`(P + P^\\top)/2`."""
    return 0.5 * (P + _t(P))


def kalman_gain(P_prior: Tensor, H: Tensor, R: Tensor) -> Tensor:
    r""":math:`K = P H^\top (H P H^\top + R)^{-1}`, by a linear solve with the symmetric :math:`S`."""
    PHt = P_prior @ _t(H)
    S = symmetrize(H @ PHt + R)
    return _t(torch.linalg.solve(S, _t(PHt)))


def joseph_update(P_prior: Tensor, K: Tensor, H: Tensor, R: Tensor) -> Tensor:
    r""":math:`P = (I - KH) P_{t|t-1} (I - KH)^\top + K R K^\top` (positive semi-definite in finite precision)."""
    A = torch.eye(P_prior.shape[-1], dtype=P_prior.dtype, device=P_prior.device) - K @ H
    return symmetrize(A @ P_prior @ _t(A) + K @ R @ _t(K))


def predict_covariance(P: Tensor, F: Tensor, Q: Tensor) -> Tensor:
    r""":math:`P_{t|t-1} = F P F^\top + Q`."""
    return symmetrize(F @ P @ _t(F) + Q)


def _apply(A: Tensor, s: Tensor) -> Tensor:
    """``A s`` for a batch ``s`` ``(b, n)`` and ``A`` ``(k, n)`` or ``(b, k, n)``."""
    return (A @ s.unsqueeze(-1)).squeeze(-1)


def extended_kalman_filter(
    x: Tensor,
    f: Transition,
    h: Transition,
    jacobian_f: Transition,
    jacobian_h: Transition,
    Q: Tensor,
    R: Tensor,
    s0: Tensor,
    P0: Tensor,
) -> FilterResult:
    """The (extended) Kalman filter of the module docstring on measurements ``x`` ``(b, T, m)``.

    Args:
        x: ``(b, T, m)`` measurements :math:`x_1, \\dots, x_T`.
        f, h: batched state-evolution and observation maps, ``(b, n) -> (b, n)`` and ``(b, n) -> (b, m)``.
        jacobian_f, jacobian_h: their Jacobians ``(b, n) -> (b, n, n)`` / ``(b, m, n)`` (a constant
            ``(n, n)`` / ``(m, n)`` matrix is also accepted as return value; see :func:`autograd_jacobian`).
        Q, R: process and measurement noise covariances.
        s0, P0: mean and covariance of the initial state :math:`s_0`.
    """
    b, T, _ = x.shape
    s = s0.expand(b, -1)
    P = P0
    estimates, covariances, gains, innovations = [], [], [], []
    for t in range(T):
        F = jacobian_f(s)
        s_prior = f(s)
        P_prior = predict_covariance(P, F, Q)
        H = jacobian_h(s_prior)
        innovation = x[:, t] - h(s_prior)
        K = kalman_gain(P_prior, H, R)
        s = s_prior + _apply(K, innovation)
        P = joseph_update(P_prior, K, H, R)
        estimates.append(s)
        covariances.append(P)
        gains.append(K)
        innovations.append(innovation)
    step_dim = 1 if P.dim() == 3 else 0
    return FilterResult(
        torch.stack(estimates, 1), torch.stack(covariances, step_dim), torch.stack(gains, step_dim), torch.stack(innovations, 1)
    )


def linear(A: Tensor) -> tuple[Transition, Transition]:
    """The map ``s -> A s`` and its (constant) Jacobian, for :func:`extended_kalman_filter`."""
    return (lambda s: _apply(A, s)), (lambda s: A)


def kalman_filter(x: Tensor, F: Tensor, H: Tensor, Q: Tensor, R: Tensor, s0: Tensor, P0: Tensor) -> FilterResult:
    """The linear Kalman filter: :func:`extended_kalman_filter` with ``f(s) = F s``, ``h(s) = H s``.

    Args:
        x: ``(b, T, m)`` measurements.
        F: ``(n, n)`` (or ``(b, n, n)``) state-evolution matrix.
        H: ``(m, n)`` (or ``(b, m, n)``) observation matrix.
        Q: ``(n, n)`` process noise covariance; R: ``(m, m)`` measurement noise covariance.
        s0: ``(n,)`` or ``(b, n)`` initial mean; P0: ``(n, n)`` or ``(b, n, n)`` initial covariance.

    Returns:
        :class:`FilterResult`; ``result.s`` ``(b, T, n)`` are the filtered means.
    """
    f, jacobian_f = linear(F)
    h, jacobian_h = linear(H)
    return extended_kalman_filter(x, f, h, jacobian_f, jacobian_h, Q, R, s0, P0)


def prior_covariances(P: Tensor, F: Tensor, Q: Tensor, P0: Tensor) -> Tensor:
    r"""The one-step predicted covariances :math:`P_{t|t-1} = F P_{t-1} F^\top + Q`, ``t = 1..T``, from the filter's :math:`P_t`.

    Args:
        P: ``(T, n, n)`` or ``(b, T, n, n)`` posterior covariances of :func:`kalman_filter`.
        F: ``(n, n)`` or ``(b, n, n)``; Q: ``(n, n)``; P0: ``(n, n)`` or ``(b, n, n)``.

    Returns:
        The same shape as ``P``, all steps at once (no time loop).
    """
    previous = torch.cat([P0.expand(*P.shape[:-3], 1, *P.shape[-2:]), P[..., :-1, :, :]], dim=-3)
    F = F.unsqueeze(-3)  # one F for every step
    return predict_covariance(previous, F, Q)


def innovation_log_likelihood(innovation: Tensor, H: Tensor, R: Tensor, P_prior: Tensor) -> Tensor:
    r"""The exact Gaussian log-likelihood :math:`\log p(x_{1:T})` of each trajectory, by the prediction-error decomposition.

    .. math::  \log p(x_{1:T}) = -\tfrac12 \sum_{t=1}^T \big(m \log 2\pi + \log\det S_t + \Delta x_t^\top S_t^{-1} \Delta x_t\big),
               \qquad S_t = H P_{t|t-1} H^\top + R,

    with the innovations :math:`\Delta x_t` of the filter (Schweppe 1965).

    Args:
        innovation: ``(b, T, m)`` (:attr:`FilterResult.innovation`).
        H: ``(m, n)`` or ``(b, m, n)``; R: ``(m, m)``.
        P_prior: ``(T, n, n)`` or ``(b, T, n, n)`` (:func:`prior_covariances`).

    Returns:
        ``(b,)`` log-likelihoods (differentiable in every model matrix).
    """
    S = symmetrize(H.unsqueeze(-3) @ P_prior @ _t(H).unsqueeze(-3) + R)
    L = torch.linalg.cholesky(S)
    whitened = torch.linalg.solve_triangular(L, innovation.unsqueeze(-1), upper=False).squeeze(-1)  # (b, T, m)
    log_det = 2 * L.diagonal(dim1=-2, dim2=-1).log().sum(-1)  # (T,) or (b, T)
    m = innovation.shape[-1]
    return -0.5 * (whitened.square().sum((-2, -1)) + log_det.sum(-1) + innovation.shape[-2] * m * math.log(2 * math.pi))


def kalman_log_likelihood(x: Tensor, F: Tensor, H: Tensor, Q: Tensor, R: Tensor, s0: Tensor, P0: Tensor) -> Tensor:
    """``(b,)`` log-likelihoods :math:`\\log p(x_{1:T})` of measurements ``x`` ``(b, T, m)`` under the linear model (:func:`innovation_log_likelihood`)."""
    result = kalman_filter(x, F, H, Q, R, s0, P0)
    return innovation_log_likelihood(result.innovation, H, R, prior_covariances(result.P, F, Q, P0))


class SmootherResult(NamedTuple):
    r"""Output of :func:`rts_smoother`: the posterior of the states given all measurements :math:`x_{1:T}`.

    Attributes:
        s: ``(b, T, n)`` smoothed means :math:`\hat s_{t|T}`, ``t = 1..T``.
        P: ``(T, n, n)`` or ``(b, T, n, n)`` smoothed covariances :math:`P_{t|T}`.
        lag_one: same shape, :math:`P_{t,t-1|T} = \mathrm{Cov}(s_t, s_{t-1} \mid x_{1:T})`, ``t = 1..T`` (``t = 1`` pairs with :math:`s_0`).
        s0: ``(b, n)`` :math:`\hat s_{0|T}`; P0: ``(n, n)`` or ``(b, n, n)`` :math:`P_{0|T}`.
        log_likelihood: ``(b,)`` :math:`\log p(x_{1:T})` (:func:`innovation_log_likelihood`).
        filtered: the forward pass (:class:`FilterResult`).
    """

    s: Tensor
    P: Tensor
    lag_one: Tensor
    s0: Tensor
    P0: Tensor
    log_likelihood: Tensor
    filtered: FilterResult


def rts_smoother(x: Tensor, F: Tensor, H: Tensor, Q: Tensor, R: Tensor, s0: Tensor, P0: Tensor) -> SmootherResult:
    r"""The Rauch–Tung–Striebel fixed-interval smoother of the linear model, back to :math:`s_0`.

    After :func:`kalman_filter`, for :math:`t = T-1, \dots, 0` (in the order of the code, with
    :math:`\hat s_0, P_0` the prior of :math:`s_0`):

    .. math::
        J_t &= P_t F^\top P_{t+1|t}^{-1} \\
        \hat s_{t|T} &= \hat s_t + J_t (\hat s_{t+1|T} - F \hat s_t) \\
        P_{t|T} &= P_t + J_t (P_{t+1|T} - P_{t+1|t}) J_t^\top \\
        P_{t+1,t|T} &= P_{t+1|T} J_t^\top

    (the lag-one form of de Jong 1989, equal to Shumway & Stoffer's recursion). :math:`P_{1|0} = F P_0 F^\top + Q`
    may be singular (a known start, ``P0 = 0``): :math:`J_0` uses its pseudo-inverse. Filtered and smoothed
    steps ``T`` coincide. Shapes as in :func:`kalman_filter`; only time is a Python loop.

    Returns:
        :class:`SmootherResult`.
    """
    filtered = kalman_filter(x, F, H, Q, R, s0, P0)
    P_prior = prior_covariances(filtered.P, F, Q, P0)
    b, T, n = filtered.s.shape
    means = torch.cat([s0.expand(b, n).unsqueeze(1), filtered.s], dim=1)  # ŝ_t, t = 0..T
    covariances = torch.cat([P0.expand(*filtered.P.shape[:-3], 1, n, n), filtered.P], dim=-3)  # P_t, t = 0..T
    s_next, P_next = filtered.s[:, -1], filtered.P[..., -1, :, :]
    smoothed_s, smoothed_P, lag_one = [s_next], [P_next], []
    for t in range(T - 1, -1, -1):
        P_t, prior = covariances[..., t, :, :], P_prior[..., t, :, :]  # P_t and P_{t+1|t}
        FP = F @ P_t
        J = _t(torch.linalg.pinv(prior, hermitian=True) @ FP) if t == 0 else _t(torch.linalg.solve(prior, FP))
        s_t = means[:, t]
        lag_one.append(P_next @ _t(J))
        s_next = s_t + _apply(J, s_next - _apply(F, s_t))
        P_next = symmetrize(P_t + J @ (P_next - prior) @ _t(J))
        smoothed_s.append(s_next)
        smoothed_P.append(P_next)
    step_dim = 1 if P_next.dim() == 3 else 0
    s_all = torch.stack(smoothed_s[::-1], 1)  # t = 0..T
    P_all = torch.stack(smoothed_P[::-1], step_dim)
    log_likelihood = innovation_log_likelihood(filtered.innovation, H, R, P_prior)
    return SmootherResult(
        s_all[:, 1:], P_all[..., 1:, :, :], torch.stack(lag_one[::-1], step_dim), s_all[:, 0], P_all[..., 0, :, :], log_likelihood, filtered
    )


def autograd_jacobian(f: Transition) -> Transition:
    """The batched Jacobian ``(b, n) -> (b, k, n)`` of a batched map ``f``, by forward-mode autodiff.

    ``f`` must treat the rows of its input independently (as every state-space map here does).
    """

    def single(s: Tensor) -> Tensor:
        return f(s.unsqueeze(0)).squeeze(0)

    return torch.func.vmap(torch.func.jacfwd(single))


def riccati_gains(F: Tensor, H: Tensor, Q: Tensor, R: Tensor, P0: Tensor, steps: int) -> Tensor:
    r"""Kalman gains :math:`K_1, \dots, K_T` of the Riccati recursion, ``(T, n, m)``.

    ``F`` is ``(n, n)`` or one matrix per step ``(T, n, n)`` (a linearisation along a nominal
    trajectory). The recursion is that of :func:`extended_kalman_filter` without the data.
    """
    P = P0
    gains = []
    for t in range(steps):
        F_t = F[t] if F.dim() == 3 else F
        P_prior = predict_covariance(P, F_t, Q)
        K = kalman_gain(P_prior, H, R)
        P = joseph_update(P_prior, K, H, R)
        gains.append(K)
    return torch.stack(gains)


def steady_state_error_covariance(F: Tensor, H: Tensor, Q: Tensor, R: Tensor) -> Tensor:
    r"""Posterior error covariance :math:`P_\infty` of the steady-state Kalman filter.

    Solves the discrete algebraic Riccati equation for the prior covariance
    :math:`\bar P = F \bar P F^\top - F \bar P H^\top (H \bar P H^\top + R)^{-1} H \bar P F^\top + Q`
    with :func:`scipy.linalg.solve_discrete_are` (float64), then
    :math:`P_\infty = \bar P - \bar P H^\top (H \bar P H^\top + R)^{-1} H \bar P`.
    """
    from scipy.linalg import solve_discrete_are

    F64, H64, Q64, R64 = (A.detach().double().cpu() for A in (F, H, Q, R))
    prior = torch.from_numpy(solve_discrete_are(F64.T.numpy(), H64.T.numpy(), Q64.numpy(), R64.numpy()))
    K = kalman_gain(prior, H64, R64)
    return symmetrize(prior - K @ H64 @ prior).to(F)


Gain = Callable[[int, Tensor, Tensor, Tensor, Tensor], Tensor]
r"""``(t, s_previous, s_prior, x_t, innovation) -> K_t``: the gain of step ``t`` from :math:`\hat s_{t-1}`,
:math:`\hat s_{t|t-1}`, :math:`x_t` and :math:`\Delta x_t` (each ``(b, ·)``); ``(n, m)`` or ``(b, n, m)``."""


def gain_filter(x: Tensor, f: Transition, h: Transition, gain: Gain, s0: Tensor) -> Tensor:
    r"""A filter with given gains: :math:`\hat s_t = \hat s_{t|t-1} + K_t\,(x_t - h(\hat s_{t|t-1}))`, :math:`\hat s_{t|t-1} = f(\hat s_{t-1})`.

    The gain is learned per step (unfolded KF: ``gain = lambda t, *_: K[t]``) or computed by a
    network from the filter's quantities (KalmanNet); no covariance is propagated.

    Args:
        x: ``(b, T, m)`` measurements.
        f, h: batched maps as in :func:`extended_kalman_filter`.
        gain: see :data:`Gain`.
        s0: ``(n,)`` or ``(b, n)`` initial state.

    Returns:
        ``(b, T, n)`` estimates.
    """
    s = s0.expand(x.shape[0], -1)
    estimates = []
    for t in range(x.shape[1]):
        s_prior = f(s)
        innovation = x[:, t] - h(s_prior)
        s = s_prior + _apply(gain(t, s, s_prior, x[:, t], innovation), innovation)
        estimates.append(s)
    return torch.stack(estimates, 1)


class CholeskyCovariance(torch.nn.Module):
    r"""A covariance :math:`C = L L^\top` held by its Cholesky factor, positive definite by construction.

    :math:`L` is lower triangular with diagonal :math:`e^{d}` (free parameters: the strict lower
    triangle and :math:`d`). Initialised from ``init`` (plus ``jitter``·tr/k·I when ``init`` is singular).

    Args:
        init: ``(k, k)`` symmetric positive semi-definite initial value.
        trainable: ``False`` holds it fixed (a buffer).
        jitter: relative diagonal loading for the initial Cholesky factorisation.
    """

    def __init__(self, init: Tensor, trainable: bool = True, jitter: float = 1e-6) -> None:
        super().__init__()
        k = init.shape[-1]
        self.jitter = jitter
        self.register_buffer("rows", torch.tril_indices(k, k)[0], persistent=False)
        self.register_buffer("cols", torch.tril_indices(k, k)[1], persistent=False)
        raw = self._free_entries(init)
        if trainable:
            self.raw = torch.nn.Parameter(raw)
        else:
            self.register_buffer("raw", raw)

    def _free_entries(self, C: Tensor) -> Tensor:
        """The ``k(k+1)/2`` free entries of the Cholesky factor of ``C`` (log on the diagonal), ``C`` loaded by the jitter."""
        k = C.shape[-1]
        L = torch.linalg.cholesky(C + self.jitter * max(C.trace().item() / k, 1e-12) * torch.eye(k, dtype=C.dtype, device=C.device))
        L = torch.tril(L, -1) + torch.diag(L.diagonal().log())
        return L[self.rows.to(C.device), self.cols.to(C.device)]

    def set(self, C: Tensor) -> None:
        """Hold the covariance ``C`` ``(k, k)`` from now on (e.g. a fitted one), factorised as the initial value was."""
        with torch.no_grad():
            self.raw.copy_(self._free_entries(C))

    def factor(self) -> Tensor:
        """The Cholesky factor :math:`L`."""
        k = int(self.rows.max()) + 1
        L = self.raw.new_zeros(k, k).index_put((self.rows, self.cols), self.raw)
        return torch.tril(L, -1) + torch.diag_embed(L.diagonal().exp())

    def forward(self) -> Tensor:
        """:math:`C = L L^\\top`, ``(k, k)``."""
        L = self.factor()
        return L @ L.T
