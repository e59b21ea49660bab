r"""Low-rank plus sparse decomposition of frame sequences (robust PCA) and its learned descendants.

A sequence of ``T`` complex frames ``(batch, T, h, w)`` is read through its Casorati matrix ``(batch, h w, T)``
(one column per frame, :func:`casorati`). Robust PCA splits the data :math:`D = L + S + N` into a low-rank
:math:`L` (tissue clutter) and a sparse :math:`S` (blood, microbubbles) by

.. math::  \min_{L, S}\ \tfrac12\|D - L - S\|_F^2 + \lambda_L\|L\|_* + \lambda_S\|S\|_1,

whose proximal-gradient (ISTA) iteration, the gradient of the data term being :math:`G = L + S - D` for both blocks
(Lipschitz constant 2, so :math:`\mu \le 1/2`), is

.. math::

    L^{t+1} &= \mathrm{SVT}_{\theta_{L,t}}\big(L^t - \mu_t G^t\big), \qquad
    S^{t+1} = \eta_{\theta_{S,t}}\big(S^t - \mu_t G^t\big), \qquad \theta_{\cdot,t} = \mu_t\lambda_{\cdot},

with the singular-value threshold :math:`\mathrm{SVT}_\theta(M) = U\,\max(\Sigma - \theta, 0)\,V^H`
(:func:`singular_value_threshold`) on the Casorati matrix and the complex soft threshold :math:`\eta_\theta`
(magnitudes shrink, phases stay). FISTA adds Nesterov momentum on :math:`(L, S)`. The spectrum is a
parameterisation of this one iteration (:class:`RobustPCA`):

* model-based: hand-set :math:`\lambda_L, \lambda_S`, :math:`\mu`;
* learned optimizer: :math:`\mu, \theta_L, \theta_S` shared by all iterations and trained;
* unfolded (CORONA, Solomon et al. 2019): the gradient step is replaced by learned convolutions per layer,
  :math:`U_L = P_1 * D + P_2 * L + P_3 * S`, :math:`U_S = P_4 * D + P_5 * L + P_6 * S` (``mixing``), with
  per-layer thresholds; initialised at the gradient step (:math:`P_1 = \mu\delta, P_2 = (1-\mu)\delta,
  P_3 = -\mu\delta`, and symmetrically) it starts as ISTA;
* DNN-aided: a network in place of the sparse proximal step (``sparse_prox``).

The SVD filter of clinical practice (:class:`SVDFilter`) keeps as clutter the top ``rank`` singular components of
:math:`D`. Iterates are :math:`(L, S)` stacked, ``(batch, 2, T, h, w)``.

Every variant starts from :math:`(L^0, S^0) = (D, 0)`: all of the data is clutter before the first iteration, the SVD
filter's premise. The problem is convex, so the optimum is that of a start from zero, but the way there is not: from
zero the shared gradient step puts half of :math:`D`, clutter included, into :math:`S`, and only the difference of the
two regularisers' steps (:math:`\mu\lambda` a singular value per iteration) moves it back, while the tissue's top
singular value is ~10× the blood's. On 16 × 16 × 20 patches at :math:`\lambda_L = 3, \lambda_S = 0.1`, FISTA's
NMSE of :math:`S` after 10 iterations is +8.6 dB from zero and −3.1 dB from :math:`(D, 0)`; after 100 both are
−6.5 dB (docs/ultrasound.md).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import Tensor

from mbdl.algorithms.ista import soft_threshold
from mbdl.algorithms.iterative import Iterative
from mbdl.algorithms.parameters import IterationModules, IterationParameter, Mode
from mbdl.config import check_positive


def casorati(frames: Tensor) -> Tensor:
    """The Casorati matrix of frame sequences: ``(batch, T, h, w) -> (batch, h w, T)``, one column per frame."""
    return frames.flatten(-2).transpose(-1, -2)


def from_casorati(matrix: Tensor, frame_shape: tuple[int, int]) -> Tensor:
    """The inverse of :func:`casorati`: ``(batch, h w, T) -> (batch, T, h, w)``."""
    return matrix.transpose(-1, -2).unflatten(-1, frame_shape)


def singular_value_threshold(matrix: Tensor, theta: Tensor | float) -> Tensor:
    r""":math:`\mathrm{SVT}_\theta(M) = U \max(\Sigma - \theta, 0) V^H`, the proximal operator of :math:`\theta\|\cdot\|_*`,
    for a batch of matrices ``(..., m, n)``, real or complex.

    Example:
        >>> import torch
        >>> singular_value_threshold(torch.diag(torch.tensor([3.0, 1.0, 0.5])), 0.75)
        tensor([[2.2500, 0.0000, 0.0000],
                [0.0000, 0.2500, 0.0000],
                [0.0000, 0.0000, 0.0000]])
    """
    U, sigma, Vh = torch.linalg.svd(matrix, full_matrices=False)
    return (U * torch.relu(sigma - theta).unsqueeze(-2).to(U.dtype)) @ Vh


def truncate_rank(matrix: Tensor, rank: int) -> Tensor:
    """The best rank-``rank`` approximation (Eckart–Young): the top ``rank`` singular components of ``(..., m, n)``."""
    U, sigma, Vh = torch.linalg.svd(matrix, full_matrices=False)
    return (U[..., :rank] * sigma[..., None, :rank].to(U.dtype)) @ Vh[..., :rank, :]


class SVDFilter(Iterative):
    """The SVD clutter filter: :math:`\\hat L` = the top ``rank`` singular components of the Casorati matrix of
    :math:`D`, :math:`\\hat S = D - \\hat L`. One step.

    Args:
        rank: singular components removed as clutter.
    """

    def __init__(self, rank: int) -> None:
        super().__init__()
        check_positive(rank, "method.rank", integer=True)
        self.iterations, self.rank = 1, rank

    def iterates(self, frames: Tensor) -> Iterator[Tensor]:
        """Yield :math:`(\\hat L, \\hat S)` ``(batch, 2, T, h, w)`` for frames ``(batch, T, h, w)``."""
        L = from_casorati(truncate_rank(casorati(frames), self.rank), frames.shape[-2:])
        yield torch.stack([L, frames - L], dim=1)


class RobustPCA(Iterative):
    r"""Proximal gradient (or FISTA) on robust PCA, with step, thresholds, the gradient step and the sparse proximal
    step each replaceable (see the module docstring).

    Args:
        iterations: iterations (layers) ``T``.
        lam_low_rank: :math:`\lambda_L` (:math:`\theta_L = \mu\lambda_L` initially).
        lam_sparse: :math:`\lambda_S`.
        step: :math:`\mu` (``<= 1/2`` for convergence of the plain iteration).
        mode: how :math:`\mu, \theta_L, \theta_S` are held (``"fixed"``, ``"shared"``, ``"per_iteration"``).
        accelerate: FISTA momentum (the plain gradient step only).
        mixing: per-layer modules ``(D, L, S) -> (U_L, U_S)`` replacing the gradient step (CORONA).
        sparse_prox: per-layer modules ``U_S -> S`` replacing the soft threshold (DNN-aided).
        gauss_seidel: the sparse step reads the new :math:`L^{t+1}` (block Gauss–Seidel: :math:`U_S` from
            :math:`(D, L^{t+1}, S^t)`; with the gradient step each block's Lipschitz constant is 1, so :math:`\mu \le 1`,
            and :math:`\mu = 1` is exact alternating minimisation); otherwise both steps read :math:`(L^t, S^t)`.

    Example:
        >>> import torch
        >>> D = torch.randn(2, 6, 4, 4, dtype=torch.complex64)
        >>> RobustPCA(iterations=20, lam_low_rank=1.0, lam_sparse=0.1)(D).shape
        torch.Size([2, 2, 6, 4, 4])
    """

    def __init__(
        self,
        iterations: int,
        lam_low_rank: float,
        lam_sparse: float,
        step: float = 0.5,
        mode: Mode = "fixed",
        accelerate: bool = False,
        mixing: IterationModules | None = None,
        sparse_prox: IterationModules | None = None,
        gauss_seidel: bool = False,
    ) -> None:
        super().__init__()
        self.iterations, self.accelerate, self.gauss_seidel = iterations, accelerate and mixing is None, gauss_seidel
        self.mixing, self.sparse_prox = mixing, sparse_prox
        if mixing is None:
            self.step = IterationParameter(step, iterations, mode, "method.mode")
        self.theta_low_rank = IterationParameter(step * lam_low_rank, iterations, mode, "method.mode")
        if sparse_prox is None:
            self.theta_sparse = IterationParameter(step * lam_sparse, iterations, mode, "method.mode")

    def update(self, D: Tensor, L: Tensor, S: Tensor, t: int) -> tuple[Tensor, Tensor]:
        """The points :math:`(U_L, U_S)` before the proximal steps: the gradient step, or layer ``t``'s ``mixing``."""
        if self.mixing is not None:
            return self.mixing[t](D, L, S)
        gradient = L + S - D
        return L - self.step[t] * gradient, S - self.step[t] * gradient

    def iterates(self, frames: Tensor) -> Iterator[Tensor]:
        """Yield :math:`(L^t, S^t)` ``(batch, 2, T, h, w)``, ``t = 1..T``, for frames :math:`D` ``(batch, T, h, w)``, from
        :math:`(L^0, S^0) = (D, 0)` (see the module docstring)."""
        L, S = frames, torch.zeros_like(frames)
        zL, zS, q = L, S, 1.0
        for t in range(self.iterations):
            uL, uS = self.update(frames, zL, zS, t)
            L_next = from_casorati(singular_value_threshold(casorati(uL), self.theta_low_rank[t]), frames.shape[-2:])
            if self.gauss_seidel:
                uS = self.update(frames, L_next, zS, t)[1]
            S_next = self.sparse_prox[t](uS) if self.sparse_prox is not None else soft_threshold(uS, self.theta_sparse[t])
            if self.accelerate:
                q_next = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * q * q))
                zL, zS = L_next + (q - 1.0) / q_next * (L_next - L), S_next + (q - 1.0) / q_next * (S_next - S)
                q = q_next
            else:
                zL, zS = L_next, S_next
            L, S = L_next, S_next
            yield torch.stack([L, S], dim=1)
