r"""Array gain/phase calibration from labelled samples by covariance matching (generative learning for DoA).

An array whose sensor :math:`n` has the unknown complex response :math:`c_n = g_n e^{j\phi_n}`
(sensor 0 the reference, :math:`c_0 = 1`) has, for sources at known angles :math:`\theta_i` with
covariance :math:`P_i` and noise :math:`\sigma^2 I`, the covariance

.. math::  R_i = D_c\, A(\theta_i) P_i A(\theta_i)^H D_c^H + \sigma^2 I,\qquad D_c = \mathrm{diag}(c),

with :math:`A` the *nominal* steering matrix. From labelled samples :math:`(\hat R_i, \theta_i)` the
calibration minimises the covariance-matching criterion

.. math::  J(c) = \sum_i \big\| \hat R_i - \sigma^2 I - D_c M_i D_c^H \big\|_F^2,\qquad M_i = A(\theta_i) P_i A(\theta_i)^H.

Entry-wise, :math:`[D_c M_i D_c^H]_{jk} = c_j \bar c_k [M_i]_{jk}`, so the samples enter through two
``(N, N)`` sums only, :math:`W_{jk} = \sum_i |[M_i]_{jk}|^2` and
:math:`B_{jk} = \sum_i [\hat R_i - \sigma^2 I]_{jk} \overline{[M_i]_{jk}} / W_{jk}`, and
:math:`J(c) = \sum_{jk} W_{jk} |B_{jk} - c_j \bar c_k|^2 + \text{const}`: a weighted rank-one fit of
:math:`B`. It starts from the leading eigenvector of :math:`B` (the unweighted closed form, scaled to
:math:`c_0 = 1`) and takes Gauss–Newton steps on the :math:`2(N-1)` real parameters
:math:`\log g_n, \phi_n`, :math:`n \ge 1`.

The result is the calibration that :class:`mbdl.methods.doa.SubspaceEstimator` applies,
:math:`\hat R \leftarrow D_c^{-1} \hat R D_c^{-H}` (:meth:`Calibration.apply`).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor


class Calibration(NamedTuple):
    """Per-sensor responses :math:`c_n = e^{\\text{log\\_gain}_n + j\\,\\text{phase}_n}`, sensor 0 the reference (0, 0).

    Attributes:
        log_gain: ``(N,)`` :math:`\\log g_n`.
        phase: ``(N,)`` :math:`\\phi_n` in radians.
    """

    log_gain: Tensor
    phase: Tensor

    def response(self) -> Tensor:
        """:math:`c` ``(N,)`` complex."""
        return torch.polar(self.log_gain.exp(), self.phase)

    def apply(self, R: Tensor) -> Tensor:
        """The calibrated covariance :math:`D_c^{-1} R D_c^{-H}` of ``R`` ``(..., N, N)``."""
        inverse = (1.0 / self.response()).to(R)
        return inverse[:, None] * R * inverse.conj()


def matching_statistics(R: Tensor, steering: Tensor, source_covariance: Tensor, noise_var: float) -> tuple[Tensor, Tensor]:
    r"""The sufficient statistics :math:`B` (complex) and :math:`W` (real) ``(N, N)`` of the criterion of the module docstring.

    Args:
        R: ``(b, N, N)`` sample covariances :math:`\hat R_i`.
        steering: ``(b, N, M)`` nominal steering matrices :math:`A(\theta_i)` of the labelled angles.
        source_covariance: ``(M, M)`` or ``(b, M, M)`` :math:`P_i`.
        noise_var: :math:`\sigma^2`.
    """
    R = R.to(torch.complex128)
    A = steering.to(torch.complex128)
    M = A @ source_covariance.to(torch.complex128) @ A.mH
    Y = R - noise_var * torch.eye(R.shape[-1], dtype=R.dtype, device=R.device)
    W = M.abs().square().sum(0)
    return (Y * M.conj()).sum(0) / W, W


def calibrate_gain_phase(
    R: Tensor, steering: Tensor, source_covariance: Tensor, noise_var: float, iterations: int = 10, gains: bool = True
) -> Calibration:
    r"""Per-sensor gain and phase by covariance matching on labelled samples (see the module docstring).

    Args:
        R: ``(b, N, N)`` sample covariances of the labelled samples.
        steering: ``(b, N, M)`` nominal steering matrices of their angles (e.g.
            :func:`mbdl.algorithms.subspace.ula_steering`).
        source_covariance: ``(M, M)`` or ``(b, M, M)`` source covariance :math:`P` (known).
        noise_var: noise power :math:`\sigma^2` (known).
        iterations: Gauss–Newton steps.
        gains: fit the gains too; ``False`` fits the phases only (gains 1).

    Returns:
        :class:`Calibration` (float64) with sensor 0 at gain 1, phase 0.
    """
    B, W = matching_statistics(R, steering, source_covariance, noise_var)
    n = B.shape[-1]
    weight = W.sqrt()
    _, vectors = torch.linalg.eigh(0.5 * (B + B.mH))
    c = vectors[:, -1] / vectors[0, -1]  # closed form of the unweighted rank-one fit, c_0 = 1
    log_gain = torch.cat([c.real.new_zeros(1), c[1:].abs().log() if gains else c.real.new_zeros(n - 1)])
    phase = torch.cat([c.real.new_zeros(1), c[1:].angle()])
    eye = torch.eye(n, dtype=B.real.dtype)
    # d(c_j conj(c_k)) / d log g_l = (δ_jl + δ_kl) c_j conj(c_k);  d / d φ_l = j (δ_jl − δ_kl) c_j conj(c_k)
    d_gain, d_phase = (eye[:, None, :] + eye[None, :, :])[..., 1:], 1j * (eye[:, None, :] - eye[None, :, :])[..., 1:]
    for _ in range(iterations):
        response = torch.polar(log_gain.exp(), phase)
        model = response[:, None] * response.conj()[None, :]
        residual = (weight * (model - B)).flatten()
        parts = [d_phase] if not gains else [d_gain, d_phase]
        J = torch.cat([(weight * model)[..., None] * d for d in parts], dim=-1).reshape(n * n, -1)  # (N², P) complex
        J_real, r_real = torch.cat([J.real, J.imag]), torch.cat([residual.real, residual.imag])
        step = torch.linalg.lstsq(J_real, -r_real.unsqueeze(-1)).solution.squeeze(-1)
        if gains:
            log_gain = log_gain + torch.cat([step.new_zeros(1), step[: n - 1]])
        phase = phase + torch.cat([step.new_zeros(1), step[-(n - 1) :]])
    return Calibration(log_gain, phase)
