r"""Subspace methods for direction of arrival on a half-wavelength ULA, batched over samples.

With :math:`M` sources and :math:`N` sensors, the covariance
:math:`R = A(\theta) P A(\theta)^H + \sigma^2 I` has a signal subspace :math:`E_s` (the :math:`M`
leading eigenvectors, spanning :math:`A(\theta)` when :math:`P` has rank :math:`M`) and a noise
subspace :math:`E_n` (the :math:`N - M` others), orthogonal to every steering vector
:math:`a(\theta_m)`. On the nominal ULA :math:`a(\theta) = [1, z, \dots, z^{N-1}]^\top` with
:math:`z = e^{j\pi\sin\theta}` (see :mod:`mbdl.tasks.array`).

* **MUSIC** (Schmidt 1986): :math:`P(\theta) = 1 / \|E_n^H a(\theta)\|^2` on a grid, the
  :math:`M` highest peaks (:func:`music_spectrum`, :func:`spectrum_peaks`, :func:`music`).
* **Root-MUSIC** (Barabell 1983): the roots of :math:`a(1/z^*)^H E_n E_n^H a(z)`, a polynomial of
  degree :math:`2N - 2`; the :math:`M` roots inside the unit circle closest to it,
  :math:`\hat\theta = \arcsin(\angle z / \pi)` (:func:`root_music`).
* **ESPRIT** (Roy & Kailath 1989): :math:`E_{s,2} = E_{s,1}\Psi` between the first and last
  :math:`N-1` rows; the eigenvalues of the least-squares :math:`\Psi` are :math:`z_m` (:func:`esprit`).
* Coherent sources make :math:`P` rank-deficient; **spatial smoothing** and **forward-backward
  averaging** restore its rank (:func:`spatial_smoothing`, :func:`forward_backward`).

Root-MUSIC and ESPRIT are differentiable (``torch.linalg.eigh`` / ``eigvals``): a loss on their
angles trains whatever produced the covariance, as long as its eigenvalues are distinct.
Every function takes covariances ``R`` of shape ``(batch, N, N)`` and returns angles in radians.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def sample_covariance(x: Tensor) -> Tensor:
    r""":math:`\hat R = \frac1T \sum_t x_t x_t^H`: ``(batch, N, N)`` from snapshots ``x`` ``(batch, N, T)``."""
    return x @ x.mH / x.shape[-1]


def forward_backward(R: Tensor) -> Tensor:
    r"""Forward-backward average :math:`\tfrac12(R + J R^* J)`, :math:`J` the exchange matrix."""
    return 0.5 * (R + R.conj().flip(-2, -1))


def spatial_smoothing(R: Tensor, subarray: int) -> Tensor:
    r"""Spatially smoothed covariance of the :math:`L = N - K + 1` overlapping subarrays of ``subarray`` = K sensors.

    :math:`\bar R = \frac1L \sum_{l=0}^{L-1} R_{l:l+K,\, l:l+K}`, ``(batch, K, K)``; it has full rank
    for up to :math:`L` coherent sources.
    """
    n = R.shape[-1]
    windows = [R[..., i : i + subarray, i : i + subarray] for i in range(n - subarray + 1)]
    return torch.stack(windows).mean(dim=0)


def subspaces(R: Tensor, num_sources: int) -> tuple[Tensor, Tensor]:
    """Signal subspace ``(batch, N, M)`` (the ``M`` leading eigenvectors) and noise subspace ``(batch, N, N-M)``, in double precision.

    The decomposition runs in double precision whatever the input's: the estimators only depend on the subspaces,
    not on each eigenvector's arbitrary phase, but in single precision the rounding of a large gradient (close
    eigenvalues, coherent sources) reached the tolerance of ``eigh``'s backward check, which then refused to
    differentiate (SubspaceNet's training stopped with "eigenvectors ... specified up to multiplication by e^{i phi}").
    """
    _, vectors = torch.linalg.eigh(R.to(torch.complex128 if R.is_complex() else torch.float64))  # ascending eigenvalues
    n = R.shape[-1]
    return vectors[..., n - num_sources :], vectors[..., : n - num_sources]


def ula_steering(theta: Tensor, n: int) -> Tensor:
    r"""Nominal ULA steering matrix :math:`[z_k^n]`, ``(..., n, K)`` complex, for real angles ``theta`` ``(..., K)``."""
    positions = torch.arange(n, dtype=theta.dtype, device=theta.device)
    phase = math.pi * positions[:, None] * torch.sin(theta)[..., None, :]
    return torch.polar(torch.ones_like(phase), phase)


def music_null_spectrum(R: Tensor, num_sources: int, steering: Tensor) -> Tensor:
    r""":math:`\|E_n^H a(\theta_g)\|^2` for every grid angle: ``(batch, G)`` from ``steering`` ``(N, G)``.

    With the noise projector :math:`C = E_n E_n^H` (Hermitian),
    :math:`\|E_n^H a\|^2 = a^H C a = \sum_{ij} \mathrm{Re}(C_{ij})\,\mathrm{Re}(\bar a_i a_j)
    - \mathrm{Im}(C_{ij})\,\mathrm{Im}(\bar a_i a_j)`: one real product of the ``(batch, 2N^2)``
    coefficients of :math:`C` with a ``(2N^2, G)`` basis of the grid, whatever the array geometry.
    Nothing of size ``batch x N x G`` is formed, so the cost is one GEMM and the output. The sum
    cancels near the nulls, so it is taken in double precision and kept positive.
    """
    _, noise = subspaces(R, num_sources)
    C = (noise @ noise.mH).to(torch.complex128).flatten(-2)  # (batch, N*N)
    steering = steering.to(torch.complex128)
    outer = (steering.conj()[:, None, :] * steering[None, :, :]).flatten(0, 1)  # (N*N, G): conj(a_i) a_j
    coefficients = torch.cat([C.real, C.imag], dim=-1)  # (batch, 2 N*N)
    basis = torch.cat([outer.real, -outer.imag])  # (2 N*N, G)
    dtype = noise.real.dtype
    return (coefficients @ basis).to(dtype).clamp_min(torch.finfo(dtype).tiny)


def music_spectrum(R: Tensor, num_sources: int, steering: Tensor) -> Tensor:
    r"""MUSIC pseudo-spectrum :math:`P(\theta_g) = 1/\|E_n^H a(\theta_g)\|^2`, ``(batch, G)``.

    Args:
        R: ``(batch, N, N)`` covariances.
        num_sources: ``M``.
        steering: ``(N, G)`` steering vectors of the grid (any array geometry),
            e.g. ``ula_steering(grid, N)``.

    Example:
        One source at 0.3 rad in white noise on an 8-element ULA:

        >>> a = ula_steering(torch.tensor([0.3], dtype=torch.float64), 8)  # (8, 1)
        >>> R = (a @ a.conj().T + 0.01 * torch.eye(8, dtype=a.dtype))[None]  # (1, 8, 8)
        >>> grid = torch.linspace(-math.pi / 2, math.pi / 2, 3601, dtype=torch.float64)
        >>> P = music_spectrum(R, 1, ula_steering(grid, 8))  # (1, 3601)
        >>> round(grid[P.argmax()].item(), 3)
        0.3
    """
    return 1.0 / music_null_spectrum(R, num_sources, steering)


def spectrum_peaks(spectrum: Tensor, num_sources: int, grid: Tensor, refine: bool = True, circular: bool = False) -> Tensor:
    """Angles of the ``M`` highest local maxima of ``spectrum`` ``(batch, G)`` on the uniform ``grid`` ``(G,)``.

    A sample with fewer than ``M`` local maxima takes its highest remaining grid points. With
    ``refine``, each peak moves to the vertex of the parabola through ``1/spectrum`` at the peak
    and its two neighbours (the MUSIC null spectrum is quadratic near a zero), so the estimate is
    not quantised to the grid. With ``circular``, the grid covers one period (``[-90°, 90°)``
    on a half-wavelength ULA, where ``±90°`` coincide): the first and last points are
    neighbours and refined angles wrap. Returns ``(batch, M)`` sorted angles.
    """
    if circular:
        left, right = spectrum.roll(1, dims=-1), spectrum.roll(-1, dims=-1)
    else:
        left = torch.nn.functional.pad(spectrum[..., :-1], (1, 0), value=-math.inf)
        right = torch.nn.functional.pad(spectrum[..., 1:], (0, 1), value=-math.inf)
    is_peak = (spectrum > left) & (spectrum >= right)
    score = torch.where(is_peak, spectrum, spectrum - spectrum.amax(dim=-1, keepdim=True) - 1.0)
    index = score.topk(num_sources, dim=-1).indices  # (batch, M)
    angles = grid[index]
    size = len(grid)
    if refine and size > 2:
        inner = index if circular else index.clamp(1, size - 2)
        q = [1.0 / spectrum.gather(-1, (inner + shift) % size) for shift in (-1, 0, 1)]
        curvature = q[0] - 2 * q[1] + q[2]
        offset = torch.where(curvature > 0, 0.5 * (q[0] - q[2]) / curvature, torch.zeros_like(curvature))
        offset = torch.where(index == inner, offset.clamp(-0.5, 0.5), torch.zeros_like(offset))
        angles = angles + offset * (grid[1] - grid[0])
    if circular:
        period = size * (grid[1] - grid[0])
        angles = torch.remainder(angles - grid[0], period) + grid[0]
    return angles.sort(dim=-1).values


def is_full_period(grid: Tensor) -> bool:
    """Whether the uniform ``grid`` samples ``[-90°, 90°)``, one whole period of a half-wavelength ULA (to half a step)."""
    if len(grid) < 2:
        return False
    step = (grid[1] - grid[0]).item()
    return abs(len(grid) * step - math.pi) < step / 2 and abs(grid[0].item() + math.pi / 2) < step / 2


def music(R: Tensor, num_sources: int, grid: Tensor, steering: Tensor | None = None) -> Tensor:
    """MUSIC: the ``M`` peaks of :func:`music_spectrum` on ``grid`` (radians), ``(batch, M)``.

    ``steering`` ``(N, G)`` defaults to the nominal ULA's on ``grid``. A ``grid`` covering
    ``[-90°, 90°)`` is searched circularly (see :func:`spectrum_peaks`).
    """
    if steering is None:
        steering = ula_steering(grid, R.shape[-1])
    return spectrum_peaks(music_spectrum(R, num_sources, steering), num_sources, grid, circular=is_full_period(grid))


def _angles(z: Tensor) -> Tensor:
    r""":math:`\arcsin(\angle z/\pi)` of unit-circle points ``z``, sorted (``(batch, M)``, real)."""
    sine = (torch.angle(z) / math.pi).clamp(-1.0, 1.0)
    return torch.asin(sine).sort(dim=-1).values


def root_music(R: Tensor, num_sources: int) -> Tensor:
    r"""Root-MUSIC on the nominal ULA: ``(batch, M)`` angles, differentiable in ``R``.

    With :math:`C = E_n E_n^H`, :math:`a(\theta)^H C a(\theta) = \sum_{k=-(N-1)}^{N-1} c_k z^k` where
    :math:`c_k` is the sum of the :math:`k`-th diagonal of :math:`C`. The :math:`2N-2` roots of
    :math:`z^{N-1}\sum_k c_k z^k` (eigenvalues of its companion matrix) come in pairs
    :math:`(z, 1/z^*)`; of the :math:`N-1` smallest in modulus (one of each pair), the :math:`M`
    closest to the unit circle give :math:`\hat\theta_m = \arcsin(\angle z_m / \pi)`.
    """
    n = R.shape[-1]
    _, noise = subspaces(R, num_sources)
    C = noise @ noise.mH
    # ascending powers z^0 .. z^(2N-2): coefficient of z^(k+N-1) is c_k
    coefficients = torch.stack([C.diagonal(offset=k, dim1=-2, dim2=-1).sum(-1) for k in range(-(n - 1), n)], dim=-1)
    degree = 2 * n - 2
    monic = coefficients[..., :-1] / coefficients[..., -1:]
    companion = torch.zeros(*R.shape[:-2], degree, degree, dtype=C.dtype, device=R.device)
    companion[..., 1:, :-1] = torch.eye(degree - 1, dtype=C.dtype, device=R.device)
    companion = companion - torch.nn.functional.pad(monic[..., :, None], (degree - 1, 0))
    roots = torch.linalg.eigvals(companion)  # (batch, 2N-2)
    modulus = roots.abs()
    inner = modulus.topk(n - 1, dim=-1, largest=False).indices
    inner_modulus = modulus.gather(-1, inner)
    closest = inner.gather(-1, inner_modulus.topk(num_sources, dim=-1).indices)
    return _angles(roots.gather(-1, closest))


def esprit(R: Tensor, num_sources: int) -> Tensor:
    r"""ESPRIT (least squares) on the nominal ULA: ``(batch, M)`` angles, differentiable in ``R``.

    :math:`\Psi = (E_1^H E_1)^{-1} E_1^H E_2` with :math:`E_1, E_2` the first and last :math:`N-1`
    rows of :math:`E_s`; its eigenvalues are :math:`z_m = e^{j\pi\sin\theta_m}`.
    """
    signal, _ = subspaces(R, num_sources)
    first, last = signal[..., :-1, :], signal[..., 1:, :]
    psi = torch.linalg.solve(first.mH @ first, first.mH @ last)
    return _angles(torch.linalg.eigvals(psi))


#: names of the subspace estimators taken by :func:`estimate`.
ALGORITHMS = ("music", "root_music", "esprit")


def estimate(name: str, R: Tensor, num_sources: int, grid: Tensor) -> Tensor:
    """Angles ``(batch, M)`` from ``"music"`` (on ``grid``), ``"root_music"`` or ``"esprit"``."""
    if name == "music":
        return music(R, num_sources, grid)
    if name == "root_music":
        return root_music(R, num_sources)
    return esprit(R, num_sources)
