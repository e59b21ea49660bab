r"""Direction of arrival (DoA) of narrowband far-field sources on a sensor array.

``T`` snapshots :math:`x_t = A(\theta)\, y_t + w_t \in \mathbb{C}^N` of ``M`` sources at angles
:math:`\theta \in \mathbb{R}^M` (radians from broadside) on the *true* array (a half-wavelength
ULA, optionally with sensor position, gain and phase errors, see
:meth:`mbdl.tasks.array.SensorArray.perturbed`). The noise is :math:`w_t \sim \mathcal{CN}(0, I)`
and each source has amplitude :math:`10^{\mathrm{SNR}/20}`, so its power per sensor is
:math:`10^{\mathrm{SNR}/10}` times the noise power (SubspaceNet's code uses ``/10`` and doubles
the SNR in dB). Non-coherent sources are independent, :math:`y_t \sim \mathcal{CN}(0, \sigma_s^2 I)`;
coherent sources are one signal repeated, :math:`y_t = s_t \mathbf 1` (a rank-one :math:`P`).
The methods are told the nominal ULA (the *assumed* array).

Metric: RMSPE, the root-mean-square angle error after the best assignment of estimates to
sources (a linear assignment problem per sample, solved with
:func:`scipy.optimize.linear_sum_assignment`); errors are wrapped to :math:`[-\pi/2, \pi/2)`
since :math:`\pm 90°` are the same direction for a half-wavelength ULA. ``rmspe`` pools the
squared errors of all samples and sources before the root (the quantity the CRB bounds);
``mean_rmspe`` averages the per-sample RMSPE (SubspaceNet's convention, for its published
numbers); ``rmspe_broadside_deg`` pools only the sources within :data:`BROADSIDE_DEG` of broadside.

Bound: the stochastic Cramér-Rao bound of Stoica & Nehorai (1990) with the true array,
:math:`\sqrt{\text{mean over samples and sources of } \mathrm{CRB}(\theta_m)}`. It bounds (asymptotically)
unbiased estimators, and is declared a *bound* only where that holds: for ``rmspe_broadside_deg``
always, for the pooled metrics when the DoA range stays within :data:`BROADSIDE_DEG` of broadside.
Toward endfire :math:`\mathrm{CRB}(\theta) \propto 1/\cos^2\theta` grows without limit while any estimate's
wrapped error stays below 90°, so on the full ±90° range the pooled CRB (dominated by the few
sources near endfire) is only a *reference*: MUSIC's 7° beside a pooled "bound" of 16° is no paradox.

The methods are told :class:`ArrayModel`: the nominal ULA, the number of sources and snapshots, and
the SNR.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from mbdl.algorithms.subspace import sample_covariance
from mbdl.config import check_positive, require
from mbdl.tasks.array import SensorArray
from mbdl.tasks.base import Batch, Metric, Reference, Task

if TYPE_CHECKING:
    from matplotlib.figure import Figure


#: sources within this angle of broadside (degrees) enter ``rmspe_broadside_deg``, where the CRB is a bound.
BROADSIDE_DEG = 60.0


@dataclass(frozen=True)
class ArrayModel:
    """What the DoA methods are told: the array, the number of sources ``M`` and snapshots ``T``, the
    per-source SNR in dB (unit noise power), and whether the sources are coherent."""

    array: SensorArray
    sources: int
    snapshots: int
    snr_db: float
    coherent: bool = False

    @property
    def sensors(self) -> int:
        return self.array.size

    @property
    def source_power(self) -> float:
        r""":math:`\sigma_s^2 = 10^{\mathrm{SNR}/10}` (the noise power is 1)."""
        return 10.0 ** (self.snr_db / 10.0)


def wrap_angle(error: Tensor) -> Tensor:
    r"""Angle differences wrapped to :math:`[-\pi/2, \pi/2)` (the period of a half-wavelength ULA in :math:`\theta`)."""
    return torch.remainder(error + math.pi / 2, math.pi) - math.pi / 2


def assigned_errors(estimate: Tensor, truth: Tensor) -> Tensor:
    """Wrapped errors ``(batch, M)`` of ``estimate`` ``(batch, M)`` after the best assignment to ``truth``.

    The assignment minimises the sum of squared errors of each sample (Hungarian algorithm on
    the ``M x M`` cost matrix, not a search over the ``M!`` permutations). Differentiable in
    ``estimate`` (the assignment itself is piecewise constant).
    """
    error = wrap_angle(estimate[:, :, None] - truth[:, None, :].to(estimate))  # (batch, estimate, source)
    cost = error.detach().square().transpose(1, 2).cpu().numpy()  # (batch, source, estimate)
    order = np.stack([linear_sum_assignment(c)[1] for c in cost])  # estimate index of each source
    order = torch.as_tensor(order, device=estimate.device)
    source = torch.arange(truth.shape[1], device=estimate.device).expand_as(order)
    return error[torch.arange(len(order), device=estimate.device)[:, None], order, source]


def stochastic_crb(A: Tensor, D: Tensor, P: Tensor, noise_var: float, snapshots: int) -> Tensor:
    r"""The stochastic (unconditional) CRB of Stoica & Nehorai (1990), ``(batch, M, M)``.

    .. math::  \mathrm{CRB}(\theta) = \frac{\sigma^2}{2T}\Big\{\mathrm{Re}\big[(D^H \Pi_A^\perp D)
               \odot (P A^H R^{-1} A P)^\top\big]\Big\}^{-1},

    :math:`R = A P A^H + \sigma^2 I`, :math:`\Pi_A^\perp = I - A(A^H A)^{-1}A^H`.

    Args:
        A: ``(batch, N, M)`` steering matrices; D: ``(batch, N, M)`` their derivatives in ``θ``.
        P: ``(batch, M, M)`` source covariance; noise_var: :math:`\sigma^2`; snapshots: ``T``.
    """
    eye = torch.eye(A.shape[-2], dtype=A.dtype, device=A.device)
    R = A @ P @ A.mH + noise_var * eye
    projector = eye - A @ torch.linalg.solve(A.mH @ A, A.mH)
    H = D.mH @ projector @ D
    G = P @ A.mH @ torch.linalg.solve(R, A) @ P
    fisher = (H * G.mT).real
    return noise_var / (2 * snapshots) * torch.linalg.inv(fisher)


def _broadside_mean(per_source: Tensor, theta: Tensor) -> float:
    """Mean of ``per_source`` ``(batch, M)`` over the sources within :data:`BROADSIDE_DEG` of broadside (NaN if none)."""
    inside = theta.abs() <= math.radians(BROADSIDE_DEG)
    return per_source[inside.to(per_source.device)].double().mean().item() if inside.any() else math.nan


class DoA(Task):
    """Estimate ``M`` directions of arrival from ``T`` snapshots of an ``N``-sensor array.

    Args:
        sensors: ``N``.
        sources: ``M``, ``1 <= M < N``.
        snapshots: ``T``.
        snr_db: per-source SNR in dB (amplitude ``10^(snr_db/20)``, unit noise power).
        coherent: one signal repeated for all sources (rank-one source covariance).
        angle_range_deg: ``[low, high]`` range of the DoAs in degrees, within ``[-90, 90]``.
        min_separation_deg: smallest distance between two DoAs of a sample, in degrees.
        grid_deg: ``null`` for continuous DoAs, or a grid step in degrees to draw them on.
        position_error, gain_error, phase_error: levels η of the array mismatch (position in
            half-wavelengths, relative gain, phase in radians) of the true array.
        model_seed: seed of the draw of the array errors.
        n_train, n_val, n_test: default data-set sizes.
    """

    metrics = {
        "rmspe_deg": Metric("RMSPE", "deg"),
        "rmspe_rad": Metric("RMSPE", "rad"),
        "mean_rmspe_rad": Metric("mean per-sample RMSPE", "rad"),
        "rmspe_broadside_deg": Metric(f"RMSPE within ±{BROADSIDE_DEG:g}°", "deg"),
    }
    primary_metric = "rmspe_deg"

    def __init__(
        self,
        sensors: int = 8,
        sources: int = 3,
        snapshots: int = 100,
        snr_db: float = 10.0,
        coherent: bool = False,
        angle_range_deg: tuple[float, float] = (-90.0, 90.0),
        min_separation_deg: float = 15.0,
        grid_deg: float | None = None,
        position_error: float = 0.0,
        gain_error: float = 0.0,
        phase_error: float = 0.0,
        model_seed: int = 0,
        n_train: int = 10000,
        n_val: int = 1000,
        n_test: int = 1000,
    ) -> None:
        for option, value in (("sensors", sensors), ("sources", sources), ("snapshots", snapshots)):
            check_positive(value, f"task.{option}", integer=True)
        require(sources < sensors, "task.sources", f"must be below task.sensors={sensors}, got {sources}")
        require(isinstance(snr_db, (int, float)) and math.isfinite(snr_db), "task.snr_db", f"must be a finite number, got {snr_db!r}")
        require(isinstance(coherent, bool), "task.coherent", f"must be true or false, got {coherent!r}")
        low, high = (float(v) for v in angle_range_deg)
        require(-90.0 <= low < high <= 90.0, "task.angle_range_deg", f"must be [low, high] with -90 <= low < high <= 90, got {list(angle_range_deg)}")
        check_positive(min_separation_deg, "task.min_separation_deg", strict=False)
        span = (sources - 1) * min_separation_deg
        require(span <= high - low, "task.min_separation_deg", f"{sources} sources {min_separation_deg}° apart do not fit in {high - low}°")
        if grid_deg is not None:
            check_positive(grid_deg, "task.grid_deg")
        for option, value in (("position_error", position_error), ("gain_error", gain_error), ("phase_error", phase_error)):
            check_positive(value, f"task.{option}", strict=False)
        self.sensors, self.sources, self.snapshots = sensors, sources, snapshots
        self.snr_db, self.coherent = float(snr_db), coherent
        self.angle_range = (math.radians(low), math.radians(high))
        self.min_separation = math.radians(min_separation_deg)
        self.grid_step = None if grid_deg is None else math.radians(grid_deg)
        self.set_sizes(n_train, n_val, n_test)
        #: the array that generates the data.
        self.true_array = SensorArray.perturbed(sensors, position_error, gain_error, phase_error, torch.Generator().manual_seed(model_seed))
        #: the methods are told the nominal ULA.
        self.assumed = ArrayModel(SensorArray.ula(sensors), sources, snapshots, self.snr_db, coherent)

    @property
    def source_power(self) -> float:
        r""":math:`\sigma_s^2 = 10^{\mathrm{SNR}/10}` (the noise power is 1)."""
        return 10.0 ** (self.snr_db / 10.0)

    @property
    def crb_is_bound(self) -> bool:
        """Whether every DoA lies within :data:`BROADSIDE_DEG` of broadside, where the pooled CRB is a bound."""
        return max(abs(a) for a in self.angle_range) <= math.radians(BROADSIDE_DEG) + 1e-12

    def draw_angles(self, n: int, generator: torch.Generator) -> Tensor:
        """``(n, M)`` sorted DoAs, uniform over the configurations at least ``min_separation`` apart.

        Sorted uniforms on the range shortened by the gaps, then shifted by ``m·sep``: a bijection
        onto the valid sorted configurations. On a grid, the shortened positions are floored to
        it first (the shifts are whole grid steps when ``sep`` is a multiple of the step). When
        the range is the whole ``[-90°, 90°]`` (where ``±90°`` are one direction), the separation
        is cyclic, the last gap included, and the configuration is rotated by a uniform angle.
        """
        low, high = self.angle_range
        m, sep = self.sources, self.min_separation
        cyclic = high - low >= math.pi - 1e-9
        u = torch.rand(n, m + 1, generator=generator, dtype=torch.float64)
        u, rotation = u[:, :m].sort(dim=1).values * (high - low - (m if cyclic else m - 1) * sep), u[:, m:]
        if self.grid_step is not None:
            u = torch.floor(u / self.grid_step) * self.grid_step
            rotation = torch.floor(rotation * math.pi / self.grid_step) * self.grid_step / math.pi
        theta = low + u + sep * torch.arange(m, dtype=torch.float64)
        if cyclic:
            theta = (wrap_angle(theta + math.pi * rotation)).sort(dim=1).values
        return theta

    def source_covariance(self, n: int) -> Tensor:
        """:math:`P` ``(n, M, M)``: :math:`\\sigma_s^2 I` (non-coherent) or :math:`\\sigma_s^2 \\mathbf{1}\\mathbf{1}^\\top` (coherent)."""
        m = self.sources
        shape = torch.ones(m, m, dtype=torch.float64) if self.coherent else torch.eye(m, dtype=torch.float64)
        return (self.source_power * shape).to(torch.complex128).expand(n, m, m)

    def simulate(self, n: int, generator: torch.Generator) -> Batch:
        """``x`` ``(n, N, T)`` complex snapshots and ``s`` ``(n, M)`` sorted DoAs in radians."""
        theta = self.draw_angles(n, generator)
        m, t = self.sources, self.snapshots
        amplitude = math.sqrt(self.source_power)
        y = amplitude * torch.randn(n, 1 if self.coherent else m, t, generator=generator, dtype=torch.complex128)
        w = torch.randn(n, self.sensors, t, generator=generator, dtype=torch.complex128)
        x = self.true_array.steering(theta) @ y.expand(n, m, t) + w
        real = torch.get_default_dtype()
        return {"x": x.to(torch.complex64 if real == torch.float32 else torch.complex128), "s": theta.to(real)}

    def evaluate(self, estimate: Tensor, data: Batch) -> dict[str, float]:
        """``rmspe_deg``/``rmspe_rad`` (pooled), ``mean_rmspe_rad`` (SubspaceNet's) and ``rmspe_broadside_deg`` of ``estimate`` ``(batch, M)``."""
        squared = assigned_errors(estimate.double(), data["s"].double()).square()
        rmspe = squared.mean().sqrt().item()
        return {
            "rmspe_deg": math.degrees(rmspe),
            "rmspe_rad": rmspe,
            "mean_rmspe_rad": squared.mean(dim=1).sqrt().mean().item(),
            "rmspe_broadside_deg": math.degrees(_broadside_mean(squared, data["s"]) ** 0.5),
        }

    def crb(self, theta: Tensor) -> Tensor:
        """Per-source stochastic CRB ``(batch, M)`` in rad², for DoAs ``theta`` ``(batch, M)`` on the true array."""
        theta = theta.double()
        A = self.true_array.steering(theta)
        D = self.true_array.steering_derivative(theta)
        bound = stochastic_crb(A, D, self.source_covariance(len(theta)), 1.0, self.snapshots)
        return bound.diagonal(dim1=-2, dim2=-1)

    def references(self, data: Batch) -> dict[str, Reference]:
        """The CRB keyed like :meth:`evaluate`: its root averaged over samples and sources (``rmspe_deg``,
        ``rmspe_rad``; a bound only when :attr:`crb_is_bound`), the per-sample root averaged
        (``mean_rmspe_rad``, likewise), and over the sources within ±60° (``rmspe_broadside_deg``, a bound)."""
        crb = self.crb(data["s"])
        root = crb.mean().sqrt().item()
        pooled = "stochastic CRB" if self.crb_is_bound else "stochastic CRB pooled up to endfire (not a bound there)"
        return {
            "rmspe_deg": Reference(math.degrees(root), pooled, self.crb_is_bound),
            "rmspe_rad": Reference(root, pooled, self.crb_is_bound),
            "mean_rmspe_rad": Reference(crb.mean(dim=1).sqrt().mean().item(), pooled, self.crb_is_bound),
            "rmspe_broadside_deg": Reference(math.degrees(_broadside_mean(crb, data["s"]) ** 0.5), f"stochastic CRB within ±{BROADSIDE_DEG:g}°", True),
        }

    def supervised_loss(self, estimate: Tensor, s: Tensor) -> Tensor:
        """Mean per-sample RMSPE in radians (SubspaceNet's training loss), after the best assignment."""
        squared = assigned_errors(estimate, s).square()
        return (squared.mean(dim=1) + 1e-12).sqrt().mean()

    def unsupervised_loss(self, estimate: Tensor, x: Tensor) -> Tensor:
        r"""Deterministic maximum-likelihood fit :math:`\mathrm{tr}(\Pi^\perp_{A(\hat\theta)} \hat R) / \mathrm{tr}(\hat R)`.

        The share of the sample covariance's power outside the span of the assumed array's
        steering vectors at the estimated angles (the concentrated likelihood of Gaussian
        sources with unknown waveforms, minimised by the ML estimate); no labels needed.
        """
        R = sample_covariance(x).to(torch.complex128)
        A = self.assumed.array.steering(estimate.double()).to(R.device)
        inside = A @ torch.linalg.solve(A.mH @ A, A.mH @ R)
        power = R.diagonal(dim1=-2, dim2=-1).real.sum(-1)
        residual = power - inside.diagonal(dim1=-2, dim2=-1).real.sum(-1)
        return (residual / power).mean().to(estimate.dtype)

    def figure(self, estimate: Tensor, data: Batch) -> Figure:
        """MUSIC spectra (assumed array) of four test samples, with the true and estimated DoAs."""
        import matplotlib.pyplot as plt

        from mbdl.algorithms.subspace import music_spectrum

        grid = torch.linspace(-math.pi / 2, math.pi / 2, 721, dtype=torch.float64)
        R = sample_covariance(data["x"][:4].to(torch.complex128))
        spectrum = music_spectrum(R, self.sources, self.assumed.array.steering(grid))
        figure, axes = plt.subplots(len(R), 1, figsize=(7, 1.8 * len(R)), sharex=True, squeeze=False)
        axes = axes[:, 0]
        for ax, p, truth, guess in zip(axes, spectrum, data["s"], estimate):
            ax.semilogy(np.degrees(grid.numpy()), (p / p.max()).numpy(), color="0.5", lw=1, label="MUSIC spectrum")
            for k, angle in enumerate(truth.tolist()):
                ax.axvline(math.degrees(angle), color="k", ls="--", lw=1, label="true" if k == 0 else None)
            for k, angle in enumerate(guess.tolist()):
                ax.axvline(math.degrees(angle), color="C3", lw=1.5, label="estimate" if k == 0 else None)
        axes[0].legend(loc="lower right", fontsize=7)
        axes[-1].set_xlabel("angle (degrees)")
        figure.tight_layout()
        return figure
