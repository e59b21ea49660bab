r"""Ultrasound localization microscopy (ULM): microbubbles at continuous positions, imaged through a Gaussian PSF on a
coarse pixel grid, localized on a grid ``q`` times finer (van Sloun et al., IUS 2019; Proc. IEEE 108(1), 2020).

True model. A coarse image ``(h, w)`` of pixel :math:`\Delta` (0.12 × 0.12 mm) holds :math:`K \sim
\mathrm{Poisson}(\rho\,|\Omega|)` bubbles (density :math:`\rho` per cm² over the field :math:`\Omega`), uniform
positions :math:`r_k \in \Omega`, amplitudes :math:`a_k` uniform around 3 (:func:`~mbdl.tasks.ultrasound.draw_amplitudes`):

.. math::  x_p = \sum_k a_k\, g(r_p - r_k) + w_p, \qquad w_p \sim \mathcal N(0, \sigma^2),

with the unit-peak Gaussian PSF :math:`g` of std (0.14, 0.32) mm at the pixel centres :math:`r_p`, evaluated exactly.
The target is the fine map :math:`s` ``(q h, q w)``: each bubble's amplitude in the fine pixel (of size
:math:`\Delta/q`) that holds it.

Assumed model (:class:`~mbdl.tasks.inverse_problem.LinearInverseProblem`): :math:`x = D\,C_{\tilde h}\, s + w`,
matrix-free: :math:`C_{\tilde h}` the convolution of the fine grid with the PSF sampled at the fine-pixel offsets
(zero boundary; std :math:`\tilde\sigma = (1 + \epsilon)\sigma` with ``psf_mismatch`` :math:`\epsilon`), then
:math:`D` the decimation by ``q`` that keeps the fine pixel whose centre is the coarse pixel's centre (for even
``q`` the centres fall between fine pixels: the kernel is sampled half a fine pixel off, as in
:func:`~mbdl.tasks.sparse_recovery.sparse_convolution_operator`). It is exact for a bubble at a fine-pixel
centre; a bubble elsewhere in its fine pixel is off the grid by up to half a fine pixel.

Metrics. Bubbles are detected in an estimated map as local maxima (3 × 3) whose 3 × 3 sum exceeds
``detection_threshold``, localized at the 3 × 3 centroid, and matched to the true bubbles of the image by
the assignment that maximises the number of pairs closer than ``match_tolerance_mm`` and then minimises their
total distance (``scipy.optimize.linear_sum_assignment``): precision, recall and F1 pooled over the test set,
the localization RMSE (µm) of the matched pairs, and the NMSE (dB) of the fine map. Each method's maps have their
own amplitude scale (an ℓ1 solution is shrunk by λ, a network trained on a blurred MSE spreads a bubble it cannot
place), so by default (``threshold_on_validation``) the threshold is the one of the best F1 on the validation maps
(:meth:`LocalizationMicroscopy.calibrate`), then fixed for the test set.

Bound and reference. ``nmse_db``: least squares with an oracle that knows every bubble's true position and the
true PSF, :math:`\hat a = (G^\top G)^{-1} G^\top x` with the columns :math:`g(r_p - r_k)`; its fine-map error is
:math:`\sigma^2\,\mathrm{tr}(P^\top P\,(G^\top G)^{-1})` (:math:`P` puts each bubble in its fine pixel): the
minimum-variance unbiased estimate given the support, a bound as in sparse recovery. ``rmse_um``: the
Cramér–Rao bound of one isolated bubble's position for this PSF, pixel and noise (amplitude unknown, averaged over
the position within a pixel and over the amplitudes) — a reference line, not a bound of the RMSE of the matched
bubbles (which selects the well-localized ones and includes overlapping bubbles).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor
from torch.nn import functional

from mbdl.config import check_choice, check_positive, require
from mbdl.operators import Convolution, Decimation, LinearOperator
from mbdl.tasks.base import Batch, Metric, Reference, Task, decibels
from mbdl.tasks.inverse_problem import UNSUPERVISED_LOSSES, LinearInverseProblem
from mbdl.tasks.ultrasound import (
    BUBBLE_AMPLITUDE,
    MAX_DENSITY_PER_CM2,
    NOISE_STD,
    PIXEL_MM,
    PSF_STD_MM,
    amplitude_range,
    check_pair,
    check_spread,
    draw_amplitudes,
    gaussian_profile,
    noise_level,
    psf_kernel,
    render,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def psf_operator(shape: tuple[int, int], q: int, pixel_mm: tuple[float, float], psf_std_mm: tuple[float, float], radius: float = 4.0) -> LinearOperator:
    r""":math:`A = D\,C_h`: the PSF convolution on the fine grid ``(q h, q w)`` (zero boundary), then decimation by ``q``.

    With the coarse centre :math:`(c + \tfrac12)q - \tfrac12 = c q + o + \delta` in fine pixels (:math:`o` its integer
    part, :math:`\delta \in \{0, \tfrac12\}`), :math:`h[d] = g((d + \delta)\Delta/q)` for :math:`|d| \le R`,
    :math:`R = \lceil \mathrm{radius}\cdot\sigma q/\Delta\rceil` (at most the fine size), and :math:`D` keeps every
    ``q``-th fine pixel from :math:`o`. In the default dtype."""
    fine = (shape[0] * q, shape[1] * q)
    offset, shift = divmod((q - 1) / 2, 1.0)
    std_px = [s * q / p for s, p in zip(psf_std_mm, pixel_mm)]
    radii = [min(math.ceil(radius * s), n - 1) for s, n in zip(std_px, fine)]
    kernel = psf_kernel(std_px, radii, (shift, shift)).to(torch.get_default_dtype())
    return Decimation(fine, q, int(offset)) @ Convolution(kernel, fine, "zero")


def isolated_bubble_crb_mm2(pixel_mm: tuple[float, float], psf_std_mm: tuple[float, float], noise_var: float, amplitude: float = 1.0, offsets: int = 8) -> tuple[float, float]:
    r"""The Cramér–Rao bound (mm²) of the axial and lateral position of one isolated bubble of amplitude :math:`a`
    (unknown, a nuisance parameter) in white noise of variance :math:`\sigma^2`, averaged over ``offsets``² positions
    of the bubble within its pixel.

    Parameters :math:`\theta = (a, z_0, x_0)`, mean :math:`\mu_p = a\,g(r_p - r_0)`, Fisher information
    :math:`J = \sigma^{-2}\sum_p \nabla_\theta\mu_p \nabla_\theta\mu_p^\top` on a pixel grid of ±8 PSF stds around
    the bubble (no border), :math:`\mathrm{CRB} = [J^{-1}]_{zz}, [J^{-1}]_{xx}`, in float64. It scales as
    :math:`1/a^2`."""
    dtype = torch.float64
    half = [math.ceil(8 * s / p) for s, p in zip(psf_std_mm, pixel_mm)]
    fractions = (torch.arange(offsets, dtype=dtype) + 0.5) / offsets
    crb = torch.zeros(2, dtype=dtype)
    for fz in fractions:
        for fx in fractions:
            dz = (torch.arange(-half[0], half[0] + 1, dtype=dtype) - fz + 0.5) * pixel_mm[0]  # r_p - r_0 per axis
            dx = (torch.arange(-half[1], half[1] + 1, dtype=dtype) - fx + 0.5) * pixel_mm[1]
            gz, gx = gaussian_profile(dz, psf_std_mm[0]), gaussian_profile(dx, psf_std_mm[1])
            g = gz[:, None] * gx[None, :]
            # d mu / d(a, z0, x0): g, a g dz / s_z^2, a g dx / s_x^2
            jac = torch.stack([g, amplitude * g * dz[:, None] / psf_std_mm[0] ** 2, amplitude * g * dx[None, :] / psf_std_mm[1] ** 2]).flatten(1)
            inverse = torch.linalg.inv(jac @ jac.T / noise_var)
            crb += inverse.diagonal()[1:]
    crb /= offsets * offsets
    return float(crb[0]), float(crb[1])


def peaks(maps: Tensor, fine_pixel_mm: tuple[float, float]) -> tuple[Tensor, Tensor, Tensor]:
    """Every candidate bubble of estimated fine maps: the local maxima (3 × 3) of the positive part, at the 3 × 3
    centroid. Of equal neighbouring maxima (a bubble split evenly over two pixels) the first in raster order counts.

    Args:
        maps: ``(batch, H, W)`` fine maps.
        fine_pixel_mm: the fine pixel (axial, lateral) in mm.

    Returns:
        ``(m,)`` the image of each peak (in image order), ``(m, 2)`` its position (axial, lateral) in mm and ``(m,)`` its mass, the
        3 × 3 sum of the positive part around it (amplitude units).
    """
    m = maps.detach().float().clamp(min=0.0)[:, None]
    padded = functional.pad(m, (1, 1, 1, 1))
    earlier = torch.stack([padded[..., 1:-1, :-2], padded[..., :-2, :-2], padded[..., :-2, 1:-1], padded[..., :-2, 2:]]).amax(dim=0)
    peak = (m == functional.max_pool2d(m, 3, 1, 1)) & (m > earlier) & (m > 0)
    offsets = torch.tensor([-1.0, 0.0, 1.0], device=m.device)
    weights = torch.stack([torch.ones(3, 3, device=m.device), offsets[:, None].expand(3, 3), offsets[None, :].expand(3, 3)])[:, None]
    mass, moment_z, moment_x = functional.conv2d(m, weights, padding=1).unbind(1)  # 3x3 sum and first moments
    image, i, j = peak[:, 0].nonzero(as_tuple=True)
    total = mass[image, i, j]
    z = (i.float() + 0.5 + moment_z[image, i, j] / total) * fine_pixel_mm[0]
    x = (j.float() + 0.5 + moment_x[image, i, j] / total) * fine_pixel_mm[1]
    return image, torch.stack([z, x], dim=1), total


def detect(maps: Tensor, threshold: float, fine_pixel_mm: tuple[float, float]) -> tuple[Tensor, Tensor]:
    """Bubbles in estimated fine maps: the :func:`peaks` whose mass (3 × 3 sum) exceeds ``threshold``.

    Returns:
        ``(m,)`` the image of each detection and ``(m, 2)`` its position (axial, lateral) in mm.
    """
    image, positions, mass = peaks(maps, fine_pixel_mm)
    keep = mass > threshold
    return image[keep], positions[keep]


def per_image(image: Tensor, positions: Tensor, n: int) -> list[np.ndarray]:
    """Detections ``(m,)`` images (in image order, as :func:`peaks` gives them) and ``(m, 2)`` positions as one
    ``(m_i, 2)`` array per image of ``n``."""
    counts = torch.bincount(image, minlength=n).tolist()
    return [p.double().cpu().numpy() for p in torch.split(positions, counts)]


def f1_score(tp: int, fp: int, fn: int) -> float:
    r""":math:`F_1 = 2\,TP / (2\,TP + FP + FN)` (1 when there is nothing to find and nothing is found)."""
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0


def best_threshold(maps: Tensor, true_mm: list[np.ndarray], fine_pixel_mm: tuple[float, float], tolerance_mm: float, levels: int = 64) -> float:
    r"""The detection threshold (least 3 × 3 sum) that maximises the pooled F1 of :func:`detect` and :func:`match`.

    The F1 changes only where the threshold crosses a peak's mass, so the candidates are 0 and the masses of the
    :func:`peaks` (largest first) of ranks :math:`1, \dots,` ``levels`` and of ``levels`` ranks on a geometric grid
    from 1 to their number :math:`P` (every peak when :math:`P \le` ``levels``): finest among the largest peaks, where
    the threshold between the bubbles and many small noise peaks lies; a map and its multiple :math:`c\,\hat s` get
    thresholds in ratio :math:`c`. Of equal F1 the middle candidate is taken. Without any peak, 0.
    """
    image, positions, mass = peaks(maps, fine_pixel_mm)
    if len(mass) == 0:
        return 0.0
    geometric = torch.logspace(0.0, math.log10(len(mass)), levels, dtype=torch.float64).round().long() - 1
    ranks = torch.cat([torch.arange(min(len(mass), levels)), geometric]).unique()
    candidates = torch.cat([torch.zeros(1), mass.sort(descending=True).values[ranks]]).unique()
    scores = []
    for threshold in candidates:
        keep = mass > threshold
        scores.append(f1_score(*match(true_mm, per_image(image[keep], positions[keep], len(maps)), tolerance_mm)[:3]))
    best = np.flatnonzero(np.asarray(scores) == max(scores))
    return float(candidates[best[len(best) // 2]])


def match(true_mm: list[np.ndarray], found_mm: list[np.ndarray], tolerance_mm: float) -> tuple[int, int, int, np.ndarray]:
    """Match each image's detections to its true bubbles: the assignment (``linear_sum_assignment``) that maximises the
    number of pairs within ``tolerance_mm`` and, among those, minimises their total distance.

    Returns:
        true positives, false positives, false negatives, and the distances (mm) of the matched pairs.
    """
    tp, distances = 0, []
    for truth, found in zip(true_mm, found_mm):
        if len(truth) == 0 or len(found) == 0:
            continue
        d = np.linalg.norm(truth[:, None, :] - found[None, :, :], axis=-1)
        inside = d <= tolerance_mm
        # a pair outside the tolerance costs more than all pairs inside together: the number of matches comes first
        cost = np.where(inside, d, tolerance_mm * (1 + min(d.shape)) + d)
        rows, cols = linear_sum_assignment(cost)
        ok = inside[rows, cols]
        tp += int(ok.sum())
        distances.append(d[rows, cols][ok])
    n_true, n_found = sum(len(t) for t in true_mm), sum(len(f) for f in found_mm)
    return tp, n_found - tp, n_true - tp, np.concatenate(distances) if distances else np.zeros(0)


class LocalizationMicroscopy(Task):
    """Localize microbubbles on a grid ``q`` times finer than the image.

    Args:
        shape: coarse image ``[h, w]`` (axial, lateral) in pixels.
        q: super-resolution factor (the fine grid is ``q h × q w``).
        density: bubbles per cm² (Poisson counts; the platform's largest is 130).
        pixel_mm: coarse pixel (axial, lateral) in mm.
        psf_std_mm: true PSF std (axial, lateral) in mm.
        amplitude: mean bubble amplitude.
        amplitude_spread: relative std of the amplitudes (uniform; ``< 1/√3``).
        noise_std: per-pixel noise std, unless ``snr_db`` is set.
        snr_db: peak SNR of a mean bubble, ``20 log10(amplitude/σ)`` (``None``: use ``noise_std``).
        psf_mismatch: the methods are told the PSF std ``(1 + psf_mismatch)`` times the true one.
        psf_radius: the assumed kernel extends ``psf_radius`` PSF stds each side.
        detection_threshold: least 3 × 3 sum of a detection (amplitude units); with ``threshold_on_validation`` only
            until :meth:`calibrate` has chosen it.
        threshold_on_validation: choose the detection threshold on the validation estimates (:func:`best_threshold`),
            as each method's maps have their own amplitude scale.
        match_tolerance_mm: largest distance of a matched pair.
        loss_blur_px: std (fine pixels) of the Gaussian that blurs estimate and target in the supervised loss
            (Deep-ULM's loss; 0: the plain MSE).
        unsupervised_loss: ``"consistency"`` or ``"lasso"`` (with ``lasso_lam``), from the assumed operator.
        lasso_lam: ``λ`` of the ``lasso`` loss.
        n_train, n_val, n_test: default data-set sizes.
    """

    metrics = {
        "f1": Metric("detection F1", higher_is_better=True),
        "precision": Metric("detection precision", higher_is_better=True),
        "recall": Metric("detection recall", higher_is_better=True),
        "rmse_um": Metric("localization RMSE", "µm"),
        "nmse_db": Metric("NMSE of the fine map", "dB"),
    }
    primary_metric = "f1"

    def __init__(
        self,
        shape: tuple[int, int] = (16, 16),
        q: int = 4,
        density: float = MAX_DENSITY_PER_CM2,
        pixel_mm: tuple[float, float] = PIXEL_MM,
        psf_std_mm: tuple[float, float] = PSF_STD_MM,
        amplitude: float = BUBBLE_AMPLITUDE,
        amplitude_spread: float = 0.2,
        noise_std: float = NOISE_STD,
        snr_db: float | None = None,
        psf_mismatch: float = 0.0,
        psf_radius: float = 4.0,
        detection_threshold: float = 1.0,
        threshold_on_validation: bool = True,
        match_tolerance_mm: float = 0.06,
        loss_blur_px: float = 1.0,
        unsupervised_loss: str = "consistency",
        lasso_lam: float = 0.1,
        n_train: int = 1000,
        n_val: int = 200,
        n_test: int = 500,
    ) -> None:
        self.shape = check_pair(shape, "task.shape", integer=True)
        check_positive(q, "task.q", integer=True)
        check_positive(density, "task.density", strict=False)
        self.pixel_mm, self.psf_std_mm = check_pair(pixel_mm, "task.pixel_mm"), check_pair(psf_std_mm, "task.psf_std_mm")
        check_positive(amplitude, "task.amplitude")
        check_spread(amplitude_spread, "task.amplitude_spread")
        check_positive(noise_std, "task.noise_std", strict=False)
        require(snr_db is None or isinstance(snr_db, (int, float)), "task.snr_db", f"must be a number or null, got {snr_db!r}")
        require(isinstance(psf_mismatch, (int, float)) and psf_mismatch > -1, "task.psf_mismatch", f"must be a number > -1 (told std (1 + psf_mismatch)·true), got {psf_mismatch!r}")
        check_positive(psf_radius, "task.psf_radius")
        check_positive(detection_threshold, "task.detection_threshold")
        check_positive(match_tolerance_mm, "task.match_tolerance_mm")
        check_positive(loss_blur_px, "task.loss_blur_px", strict=False)
        check_choice(unsupervised_loss, "task.unsupervised_loss", UNSUPERVISED_LOSSES)
        check_positive(lasso_lam, "task.lasso_lam", strict=False)
        self.loss_blur_px = float(loss_blur_px)
        self.q, self.density, self.amplitude, self.amplitude_spread = q, float(density), float(amplitude), float(amplitude_spread)
        self.noise_std = noise_level(snr_db, noise_std, amplitude)
        require(isinstance(threshold_on_validation, bool), "task.threshold_on_validation", f"must be true or false, got {threshold_on_validation!r}")
        self.detection_threshold, self.match_tolerance_mm = float(detection_threshold), float(match_tolerance_mm)
        self.threshold_on_validation = threshold_on_validation
        self.unsupervised_kind, self.lasso_lam = unsupervised_loss, lasso_lam
        self.set_sizes(n_train, n_val, n_test)
        self.fine_shape = (self.shape[0] * q, self.shape[1] * q)
        self.fine_pixel_mm = (self.pixel_mm[0] / q, self.pixel_mm[1] / q)
        told_std = tuple(s * (1.0 + psf_mismatch) for s in self.psf_std_mm)
        #: the methods are told the PSF-and-decimation operator with the told PSF width, and the noise std.
        self.assumed = LinearInverseProblem(psf_operator(self.shape, q, self.pixel_mm, told_std, psf_radius), self.noise_std)

    @property
    def area_cm2(self) -> float:
        """The field of view in cm²."""
        return self.shape[0] * self.pixel_mm[0] * self.shape[1] * self.pixel_mm[1] / 100.0

    def simulate(self, n: int, generator: torch.Generator) -> Batch:
        """``n`` images: ``x`` ``(n, h, w)``, ``s`` ``(n, q h, q w)``, and for the metrics ``positions_mm``
        ``(n, K, 2)``, ``amplitudes`` ``(n, K)`` and ``valid`` ``(n, K)`` (``K`` the largest count, empty slots
        invalid with amplitude 0)."""
        counts = torch.poisson(torch.full((n,), self.density * self.area_cm2, dtype=torch.float64), generator=generator).long()
        K = max(int(counts.max()), 1) if n else 1
        valid = torch.arange(K) < counts[:, None]
        extent = torch.tensor([self.shape[0] * self.pixel_mm[0], self.shape[1] * self.pixel_mm[1]], dtype=torch.float64)
        positions = torch.rand(n, K, 2, generator=generator, dtype=torch.float64) * extent
        amplitudes = draw_amplitudes((n, K), self.amplitude, self.amplitude_spread, generator, torch.float64) * valid
        clean = render(positions, amplitudes, self.shape, self.pixel_mm, self.psf_std_mm)
        x = clean + self.noise_std * torch.randn(n, *self.shape, generator=generator, dtype=torch.float64)
        H, W = self.fine_shape
        iz = (positions[..., 0] / self.fine_pixel_mm[0]).floor().long().clamp(0, H - 1)
        ix = (positions[..., 1] / self.fine_pixel_mm[1]).floor().long().clamp(0, W - 1)
        s = torch.zeros(n, H * W, dtype=torch.float64).scatter_add_(1, iz * W + ix, amplitudes).reshape(n, H, W)
        dtype = torch.get_default_dtype()
        return {"x": x.to(dtype), "s": s.to(dtype), "positions_mm": positions.to(dtype), "amplitudes": amplitudes.to(dtype), "valid": valid}

    def true_positions(self, data: Batch) -> list[np.ndarray]:
        """Each image's true bubble positions (mm), ``(K_i, 2)``."""
        positions, valid = data["positions_mm"].double().cpu().numpy(), data["valid"].cpu().numpy()
        return [p[v] for p, v in zip(positions, valid)]

    def localize(self, estimate: Tensor) -> list[np.ndarray]:
        """Each image's detections (mm) in the estimated fine maps ``(batch, q h, q w)`` (:func:`detect`)."""
        return per_image(*detect(estimate, self.detection_threshold, self.fine_pixel_mm), len(estimate))

    def calibrate(self, estimate: Tensor, data: Batch) -> dict[str, float]:
        """With ``threshold_on_validation``, the detection threshold of the best F1 on these (validation) maps
        (:func:`best_threshold`), kept for every later :meth:`evaluate`."""
        if not self.threshold_on_validation:
            return {}
        self.detection_threshold = best_threshold(estimate, self.true_positions(data), self.fine_pixel_mm, self.match_tolerance_mm)
        return {"detection_threshold": self.detection_threshold}

    def evaluate(self, estimate: Tensor, data: Batch) -> dict[str, float]:
        """Detection precision, recall, F1, localization RMSE (µm) and NMSE (dB) of fine maps ``(batch, q h, q w)``."""
        tp, fp, fn, distances = match(self.true_positions(data), self.localize(estimate), self.match_tolerance_mm)
        error = (estimate.double() - data["s"].double()).square().sum().item()
        return {
            "f1": f1_score(tp, fp, fn),
            "precision": tp / (tp + fp) if tp + fp else 0.0,
            "recall": tp / (tp + fn) if tp + fn else 1.0,
            "rmse_um": 1e3 * math.sqrt(np.mean(distances**2)) if len(distances) else math.nan,
            "nmse_db": decibels(error / data["s"].double().square().sum().item()),
        }

    def oracle_error(self, data: Batch) -> Tensor:
        r"""Per-image expected squared error of the fine map by least squares on the true positions with the true PSF,
        :math:`\sigma^2\,\mathrm{tr}(P^\top P\,(G^\top G)^{-1})`, ``(batch,)``. The PSF is separable, so
        :math:`G^\top G = (G_z G_z^\top) \odot (G_x G_x^\top)` from the per-axis profiles."""
        positions, valid = data["positions_mm"].double(), data["valid"]
        centres = [(torch.arange(n, dtype=torch.float64) + 0.5) * d for n, d in zip(self.shape, self.pixel_mm)]
        gz = gaussian_profile(centres[0] - positions[..., 0:1], self.psf_std_mm[0])  # (batch, K, h)
        gx = gaussian_profile(centres[1] - positions[..., 1:2], self.psf_std_mm[1])  # (batch, K, w)
        pair = valid[:, :, None] & valid[:, None, :]
        gram = torch.where(pair, (gz @ gz.transpose(1, 2)) * (gx @ gx.transpose(1, 2)), torch.diag_embed((~valid).double()))
        iz = (positions[..., 0] / self.fine_pixel_mm[0]).floor().long().clamp(0, self.fine_shape[0] - 1)
        ix = (positions[..., 1] / self.fine_pixel_mm[1]).floor().long().clamp(0, self.fine_shape[1] - 1)
        pixel = iz * self.fine_shape[1] + ix
        same_pixel = (pixel[:, :, None] == pixel[:, None, :]) & pair  # P^T P
        return self.noise_std**2 * (same_pixel * torch.linalg.inv(gram)).sum(dim=(1, 2))

    def crb_rmse_um(self) -> float:
        r"""The CRB of one isolated bubble's 2-D position as an RMSE, :math:`\sqrt{E[\mathrm{CRB}_z + \mathrm{CRB}_x]}`
        in µm, over the amplitudes (uniform on :math:`[a_-, a_+]`: :math:`E[a^{-2}] = 1/(a_- a_+)`)."""
        low, high = amplitude_range(self.amplitude, self.amplitude_spread)
        crb_z, crb_x = isolated_bubble_crb_mm2(self.pixel_mm, self.psf_std_mm, self.noise_std**2)
        return 1e3 * math.sqrt((crb_z + crb_x) / (low * high))

    def references(self, data: Batch) -> dict[str, Reference]:
        """The oracle least squares on the true positions (a bound on ``nmse_db``) and the isolated-bubble CRB
        (a reference line for ``rmse_um``)."""
        nmse = decibels(self.oracle_error(data).sum().item() / data["s"].double().square().sum().item())
        return {
            "nmse_db": Reference(nmse, "oracle least squares on the true bubble positions", is_bound=True),
            "rmse_um": Reference(self.crb_rmse_um(), "CRB of one isolated bubble", is_bound=False),
        }

    def supervised_loss(self, estimate: Tensor, s: Tensor) -> Tensor:
        r"""Deep-ULM's loss: the mean squared difference of the fine maps after a Gaussian blur :math:`G` (unit sum) of std
        ``loss_blur_px``, :math:`\mathrm{mean}\,(G * \hat s - G * s)^2` (a bubble one fine pixel off is not a total
        miss); the plain MSE when ``loss_blur_px = 0``."""
        if self.loss_blur_px == 0:
            return super().supervised_loss(estimate, s)
        radius = math.ceil(3 * self.loss_blur_px)
        kernel = psf_kernel((self.loss_blur_px,) * 2, (radius, radius))
        kernel = (kernel / kernel.sum()).to(device=estimate.device, dtype=estimate.dtype)[None, None]
        blurred = functional.conv2d((estimate - s).unsqueeze(1), kernel, padding=kernel.shape[-1] // 2)
        return blurred.square().mean()

    def unsupervised_loss(self, estimate: Tensor, x: Tensor) -> Tensor:
        """``task.unsupervised_loss`` (consistency or LASSO) with the assumed operator."""
        return self.assumed.unsupervised_loss(estimate, x, self.unsupervised_kind, self.lasso_lam)

    def figure(self, estimate: Tensor, data: Batch) -> Figure:
        """Three test images: the coarse image, the true fine map, the recovered one (true bubbles ○, detections +)."""
        from matplotlib.figure import Figure

        figure = Figure(figsize=(9, 8.5), layout="constrained")
        axes = figure.subplots(3, 3, squeeze=False)
        extent_mm = [0, self.shape[1] * self.pixel_mm[1], self.shape[0] * self.pixel_mm[0], 0]
        truth, found = self.true_positions(data), self.localize(estimate[:3])
        for row, i in enumerate(range(min(3, len(estimate)))):
            panels = [(data["x"][i], "coarse image x"), (data["s"][i], "true fine map s"), (estimate[i].detach(), "recovered fine map")]
            for ax, (image, title) in zip(axes[row], panels):
                ax.imshow(image.cpu(), cmap="hot", extent=extent_mm, aspect="auto")
                ax.set_title(title, fontsize=9)
                ax.plot(truth[i][:, 1], truth[i][:, 0], "o", mfc="none", mec="c", ms=7, lw=0.8)
                if title.startswith("recovered"):
                    ax.plot(found[i][:, 1], found[i][:, 0], "+", c="lime", ms=7)
            axes[row][0].set_ylabel("depth (mm)")
        for ax in axes[-1]:
            ax.set_xlabel("lateral (mm)")
        return figure
