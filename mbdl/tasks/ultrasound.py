r"""What the two ultrasound tasks share: the imaging parameters of CORONA's simulation platform
(``KrakenLeaf/CORONA``, ``SimPlatform/Parameters.py``), the Gaussian point-spread function, the bubbles'
amplitudes and the noise axis.

Conventions: images are ``(..., depth, width)`` (axial :math:`z` first, lateral :math:`x` second), lengths in
mm, a pixel :math:`(i, j)` covers :math:`[i\Delta_z, (i+1)\Delta_z) \times [j\Delta_x, (j+1)\Delta_x)` with its
centre at :math:`((i + \tfrac12)\Delta_z, (j + \tfrac12)\Delta_x)`. The PSF is the platform's unit-peak Gaussian

.. math::  g(\delta_z, \delta_x) = \exp\!\Big(-\frac{\delta_z^2}{2\sigma_z^2} - \frac{\delta_x^2}{2\sigma_x^2}\Big),

so a bubble of amplitude :math:`a` peaks at :math:`a` in the image. The noise axis of both tasks (``task.snr_db``)
is the peak SNR of one bubble of the mean amplitude :math:`\bar a` against the per-pixel noise std :math:`\sigma`:
:math:`\mathrm{SNR} = 20\log_{10}(\bar a / \sigma)` (the platform's 3 against 0.1: 29.5 dB).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from mbdl.config import check_positive, require

#: pixel size (axial, lateral) in mm.
PIXEL_MM = (0.12, 0.12)
#: std of the Gaussian point-spread function (axial, lateral) in mm.
PSF_STD_MM = (0.14, 0.32)
#: mean bubble amplitude, tissue amplitude and noise std of the platform.
BUBBLE_AMPLITUDE, TISSUE_AMPLITUDE, NOISE_STD = 3.0, 1.0, 0.1
#: the platform's largest bubble density, per cm².
MAX_DENSITY_PER_CM2 = 130.0


def check_pair(value: Sequence[float], option: str, integer: bool = False) -> tuple:
    """Validate an (axial, lateral) pair of positive numbers (integers)."""
    require(isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2, option, f"must be a pair [axial, lateral], got {value!r}")
    for v in value:
        check_positive(v, option, integer=integer)
    return tuple(value)


def noise_level(snr_db: float | None, default_std: float, amplitude: float) -> float:
    r"""The per-pixel noise std: ``default_std``, or :math:`\bar a\,10^{-\mathrm{SNR}/20}` when ``snr_db`` is given."""
    return float(default_std) if snr_db is None else amplitude * 10.0 ** (-snr_db / 20.0)


def check_spread(spread: float, option: str) -> None:
    """The amplitude spread must keep every amplitude positive: ``0 <= spread < 1/√3``."""
    require(isinstance(spread, (int, float)) and 0 <= spread < 1 / math.sqrt(3.0), option, f"must be in [0, 1/√3) so that every amplitude is positive, got {spread!r}")


def amplitude_range(mean: float, spread: float) -> tuple[float, float]:
    r"""Bubble amplitudes are uniform on :math:`\bar a\,[1 - \sqrt3 c, 1 + \sqrt3 c]` (relative std ``spread`` :math:`c`)."""
    half = math.sqrt(3.0) * spread
    return mean * (1.0 - half), mean * (1.0 + half)


def draw_amplitudes(shape: Sequence[int], mean: float, spread: float, generator: torch.Generator, dtype: torch.dtype = torch.float32) -> Tensor:
    """Amplitudes uniform on :func:`amplitude_range`, ``shape``."""
    low, high = amplitude_range(mean, spread)
    return low + (high - low) * torch.rand(tuple(shape), generator=generator, dtype=dtype)


def gaussian_profile(offset_mm: Tensor, std_mm: float) -> Tensor:
    r"""One axis of the PSF, :math:`\exp(-\delta^2 / (2\sigma^2))` at offsets ``offset_mm``."""
    return torch.exp(-0.5 * (offset_mm / std_mm).square())


def render(positions_mm: Tensor, amplitudes: Tensor, shape: Sequence[int], pixel_mm: Sequence[float], psf_std_mm: Sequence[float]) -> Tensor:
    r"""The noiseless image of point scatterers at continuous positions: :math:`x_p = \sum_k a_k\, g(r_p - r_k)` at the
    pixel centres :math:`r_p` (the PSF evaluated exactly, not truncated; separable, so one ``einsum``).

    Args:
        positions_mm: ``(batch, K, 2)`` bubble positions (axial, lateral) in mm.
        amplitudes: ``(batch, K)``, real or complex (0 for an empty slot).
        shape: image shape ``(h, w)``.
        pixel_mm, psf_std_mm: pixel size and PSF std (axial, lateral) in mm.

    Returns:
        ``(batch, h, w)``.
    """
    dtype = positions_mm.dtype
    centres = [(torch.arange(n, dtype=dtype, device=positions_mm.device) + 0.5) * d for n, d in zip(shape, pixel_mm)]
    gz = gaussian_profile(centres[0] - positions_mm[..., 0:1], psf_std_mm[0])  # (batch, K, h)
    gx = gaussian_profile(centres[1] - positions_mm[..., 1:2], psf_std_mm[1])  # (batch, K, w)
    weighted = amplitudes[..., None] * gz.to(amplitudes.dtype)
    return torch.einsum("bkh,bkw->bhw", weighted, gx.to(amplitudes.dtype))


def psf_kernel(std_px: Sequence[float], radius_px: Sequence[int], shift_px: Sequence[float] = (0.0, 0.0)) -> Tensor:
    r"""The PSF sampled on a pixel grid, :math:`h[d] = g((d + \delta)\Delta)` for :math:`|d| \le R`, ``(2R_z+1, 2R_x+1)``
    in float64; stds, radii and the half-pixel shifts :math:`\delta` in pixels of that grid."""
    axes = [gaussian_profile(torch.arange(-r, r + 1, dtype=torch.float64) + shift, std) for std, r, shift in zip(std_px, radius_px, shift_px)]
    return axes[0][:, None] * axes[1][None, :]
