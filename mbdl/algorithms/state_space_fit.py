r"""Maximum-likelihood fits of a linear-Gaussian state-space model: from labelled trajectories, and by EM.

The model of :mod:`mbdl.algorithms.kalman`, :math:`s_t = F s_{t-1} + v_t`, :math:`x_t = H s_t + w_t`,
:math:`v_t \sim \mathcal N(0, Q)`, :math:`w_t \sim \mathcal N(0, R)`, :math:`s_0 \sim \mathcal N(\hat s_0, P_0)`,
on ``b`` independent trajectories ``x`` ``(b, T, m)`` (and states ``s`` ``(b, T, n)`` when labelled).
These are the generative-learning point of the spectrum for tracking: fit the unknown parts of the
model, then run the Kalman filter with them.

* **Labelled** (:func:`fit_labelled`): the complete-data likelihood factorises over the transitions
  and the observations, so the ML estimates are sample covariances of the residuals,
  :math:`\hat Q = \frac1N\sum (s_t - F s_{t-1})(s_t - F s_{t-1})^\top`,
  :math:`\hat R = \frac1N\sum (x_t - H s_t)(x_t - H s_t)^\top`, with :math:`F` (and :math:`H`) by
  least squares when they are unknown too.
* **Unlabelled** (:func:`fit_em`): expectation–maximisation (Shumway & Stoffer 1982). The E-step is
  the RTS smoother (:func:`mbdl.algorithms.kalman.rts_smoother`); the M-step replaces the residual
  outer products by their posterior expectations. Every iteration increases the innovation
  log-likelihood :math:`\log p(x_{1:T})`, which is returned per iteration.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from mbdl.algorithms.kalman import SmootherResult, rts_smoother, symmetrize
from mbdl.algorithms.linear_gaussian import fit_affine


class StateSpaceFit(NamedTuple):
    """Fitted model matrices (the given ones where not fitted).

    Attributes:
        F: ``(n, n)``; H: ``(m, n)``; Q: ``(n, n)``; R: ``(m, m)``.
        log_likelihood: for :func:`fit_em`, ``(iterations + 1,)`` total :math:`\\log p(x_{1:T})` over the
            trajectories at the start and after each iteration; ``None`` for :func:`fit_labelled`.
    """

    F: Tensor
    H: Tensor
    Q: Tensor
    R: Tensor
    log_likelihood: Tensor | None = None


def _outer_mean(u: Tensor, v: Tensor) -> Tensor:
    """:math:`\\frac1N\\sum_i u_i v_i^\\top` over every leading index of ``u`` ``(..., k)`` and ``v`` ``(..., l)``."""
    u, v = u.reshape(-1, u.shape[-1]), v.reshape(-1, v.shape[-1])
    return u.T @ v / len(u)


def transitions(s: Tensor, s0: Tensor | None) -> tuple[Tensor, Tensor]:
    r"""Pairs :math:`(s_{t-1}, s_t)` of labelled trajectories ``s`` ``(b, T, n)``: ``(b, T', n)`` each.

    With a known start ``s0`` ``(n,)`` or ``(b, n)`` (:math:`P_0 = 0`) the first transition
    :math:`s_0 \to s_1` is included (``T' = T``); with ``None`` (a random, unobserved start) it is not (``T' = T - 1``).
    """
    if s0 is None:
        return s[:, :-1], s[:, 1:]
    return torch.cat([s0.to(s).expand(len(s), -1).unsqueeze(1), s[:, :-1]], dim=1), s


def fit_labelled(
    s: Tensor, x: Tensor, F: Tensor, H: Tensor, s0: Tensor | None, fit_F: bool = False, fit_H: bool = False
) -> StateSpaceFit:
    r"""ML estimates of :math:`Q` and :math:`R` (and optionally :math:`F`, :math:`H`) from labelled trajectories.

    .. math::  \hat F = \Big(\sum s_t s_{t-1}^\top\Big)\Big(\sum s_{t-1}s_{t-1}^\top\Big)^{-1},\qquad
               \hat Q = \frac1N \sum (s_t - F s_{t-1})(s_t - F s_{t-1})^\top,

    and likewise :math:`\hat H` (least squares of :math:`x_t` on :math:`s_t`, no intercept) and
    :math:`\hat R` from :math:`x_t - H s_t`; sums over every trajectory and step (:func:`transitions`).
    These are exact ML estimates (divided by :math:`N`, not :math:`N - 1`: the noise means are known to be 0).

    Args:
        s: ``(b, T, n)`` states :math:`s_1..s_T`; x: ``(b, T, m)`` measurements.
        F: ``(n, n)``, H: ``(m, n)`` the known (or, with ``fit_F`` / ``fit_H``, ignored) matrices.
        s0: the known start, or ``None`` (see :func:`transitions`).
    """
    previous, current = transitions(s, s0)
    if fit_F:
        F = fit_affine(previous.reshape(-1, s.shape[-1]), current.reshape(-1, s.shape[-1]), intercept=False)[0]
    if fit_H:
        H = fit_affine(s.reshape(-1, s.shape[-1]), x.reshape(-1, x.shape[-1]), intercept=False)[0]
    process = current - previous @ F.to(s).T
    measurement = x - s @ H.to(s).T
    return StateSpaceFit(F.to(s), H.to(s), symmetrize(_outer_mean(process, process)), symmetrize(_outer_mean(measurement, measurement)))


def fit_em(
    x: Tensor,
    F: Tensor,
    H: Tensor,
    Q: Tensor,
    R: Tensor,
    s0: Tensor,
    P0: Tensor,
    iterations: int = 100,
    fit_F: bool = False,
    fit_Q: bool = True,
    fit_R: bool = True,
    acceleration: float | None = None,
) -> StateSpaceFit:
    r"""EM for :math:`Q`, :math:`R` (and optionally :math:`F`) from measurements only (Shumway & Stoffer 1982).

    E-step: the RTS smoother (:func:`~mbdl.algorithms.kalman.rts_smoother`) with the current model; the
    M-step is :func:`maximisation_step`. The start :math:`\hat s_0, P_0` is known and kept.

    EM converges slowly when the states are poorly observed (the rate is the fraction of missing
    information: on book Ex. 5.2 hundreds of iterations). ``acceleration`` = :math:`\eta > 1` turns on
    the adaptive over-relaxation of Salakhutdinov & Roweis (2003): the step from the current
    parameters to the EM update is stretched by :math:`\omega` (on the geodesic of positive-definite
    matrices for :math:`Q, R`, :math:`Q^{1/2}(Q^{-1/2}\hat Q Q^{-1/2})^{\omega}Q^{1/2}`; linearly for :math:`F`),
    :math:`\omega \leftarrow \eta\,\omega` after each step that raises the likelihood; a step that
    lowers it is replaced by the plain EM step and :math:`\omega \leftarrow 1`. Either way the
    log-likelihood never decreases (checked in the tests).

    Args:
        x: ``(b, T, m)`` measurements (float64 advised).
        F: ``(n, n)``; H: ``(m, n)``; Q: ``(n, n)``, R: ``(m, m)`` initial values (positive definite); s0 ``(n,)``, P0 ``(n, n)``.
        iterations: EM iterations (accepted steps).
        fit_F, fit_Q, fit_R: which matrices to estimate (the others stay as given).
        acceleration: :math:`\eta`, or ``None`` for plain EM.

    Returns:
        :class:`StateSpaceFit` with the final matrices and the log-likelihood of every iterate.
    """
    if acceleration is not None and acceleration <= 1:
        raise ValueError(f"acceleration must be > 1 (or None for plain EM), got {acceleration}")
    F, H, Q, R, s0, P0 = (A.to(x) for A in (F, H, Q, R, s0, P0))
    smoothed = rts_smoother(x, F, H, Q, R, s0, P0)
    history = [smoothed.log_likelihood.sum()]
    omega = 1.0
    for _ in range(iterations):
        update = maximisation_step(x, smoothed, F, H, Q, R, fit_F, fit_Q, fit_R)
        proposal = _stretch((F, Q, R), (update.F, update.Q, update.R), omega)
        candidate = rts_smoother(x, proposal[0], H, proposal[1], proposal[2], s0, P0)
        if omega > 1 and not candidate.log_likelihood.sum() >= history[-1]:
            proposal, omega = (update.F, update.Q, update.R), 1.0
            candidate = rts_smoother(x, update.F, H, update.Q, update.R, s0, P0)
        elif acceleration is not None:
            omega *= acceleration
        (F, Q, R), smoothed = proposal, candidate
        history.append(smoothed.log_likelihood.sum())
    return StateSpaceFit(F, H, Q, R, torch.stack(history))


def maximisation_step(
    x: Tensor, smoothed: SmootherResult, F: Tensor, H: Tensor, Q: Tensor, R: Tensor, fit_F: bool = False, fit_Q: bool = True, fit_R: bool = True
) -> StateSpaceFit:
    r"""The M-step of :func:`fit_em` from the smoother's moments (Shumway & Stoffer 1982).

    Over the :math:`N = bT` steps of every trajectory,

    .. math::
        S_{11} = \sum_t \hat s_{t|T}\hat s_{t|T}^\top + P_{t|T},\quad
        S_{10} = \sum_t \hat s_{t|T}\hat s_{t-1|T}^\top + P_{t,t-1|T},\quad
        S_{00} = \sum_t \hat s_{t-1|T}\hat s_{t-1|T}^\top + P_{t-1|T},

    and the maximisers of the expected complete-data log-likelihood are

    .. math::
        \hat F = S_{10} S_{00}^{-1},\qquad
        \hat Q = \tfrac1N\big(S_{11} - F S_{10}^\top - S_{10} F^\top + F S_{00} F^\top\big),\qquad
        \hat R = \tfrac1N \sum_t (x_t - H\hat s_{t|T})(x_t - H\hat s_{t|T})^\top + H P_{t|T} H^\top

    (:math:`\hat Q` with :math:`F = \hat F` when it is fitted). Returns the new ``F``, ``Q``, ``R``
    (the old objects where not fitted) and ``H``; ``log_likelihood`` is ``None``.
    """
    b, T, _ = x.shape
    count = b * T
    mean, previous = smoothed.s, torch.cat([smoothed.s0.unsqueeze(1), smoothed.s[:, :-1]], dim=1)
    P_sum = _batch_sum(smoothed.P, b)  # Σ P_{t|T}, t = 1..T
    P_previous_sum = P_sum - _batch_sum(smoothed.P[..., -1:, :, :], b) + _batch_sum(smoothed.P0.unsqueeze(-3), b)  # t = 0..T-1
    S11 = _outer_mean(mean, mean) * count + P_sum
    S10 = _outer_mean(mean, previous) * count + _batch_sum(smoothed.lag_one, b)
    S00 = _outer_mean(previous, previous) * count + P_previous_sum
    if fit_F:
        F = torch.linalg.solve(S00, S10.T).T
    if fit_Q:
        Q = symmetrize(S11 - F @ S10.T - S10 @ F.T + F @ S00 @ F.T) / count
    if fit_R:
        residual = x - mean @ H.T
        R = symmetrize(_outer_mean(residual, residual) + H @ P_sum @ H.T / count)
    return StateSpaceFit(F, H, Q, R)


def _spd_power(A: Tensor, B: Tensor, omega: float) -> Tensor:
    r"""The point :math:`A^{1/2}(A^{-1/2} B A^{-1/2})^{\omega} A^{1/2}` on the geodesic of SPD matrices (``omega = 1``: ``B``)."""
    values, vectors = torch.linalg.eigh(A)
    root = vectors * values.sqrt()
    inverse_root = vectors / values.sqrt()
    middle_values, middle_vectors = torch.linalg.eigh(symmetrize(inverse_root.T @ B @ inverse_root))
    middle = (middle_vectors * middle_values.clamp_min(torch.finfo(A.dtype).tiny) ** omega) @ middle_vectors.T
    return symmetrize(root @ middle @ root.T)


def _stretch(current: tuple[Tensor, Tensor, Tensor], update: tuple[Tensor, Tensor, Tensor], omega: float) -> tuple[Tensor, Tensor, Tensor]:
    """``(F, Q, R)`` moved ``omega`` times the EM step (``omega = 1``: the EM update itself)."""
    if omega == 1:
        return update
    (F, Q, R), (F_new, Q_new, R_new) = current, update
    stretch = lambda A, B: A if A is B else _spd_power(A, B, omega)
    return (F if F is F_new else F + omega * (F_new - F), stretch(Q, Q_new), stretch(R, R_new))


def _batch_sum(P: Tensor, b: int) -> Tensor:
    """:math:`\\sum` over the trajectories and steps of covariances ``(T, n, n)`` (shared by the ``b`` trajectories) or ``(b, T, n, n)``."""
    return P.sum(-3) * b if P.dim() == 3 else P.sum((0, 1))
