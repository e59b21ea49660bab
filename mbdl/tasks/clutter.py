r"""Clutter suppression in contrast-enhanced ultrasound: separate tissue clutter (low rank) from the blood signal of
moving microbubbles (sparse) in a sequence of complex frames, :math:`D = L + S + N` (Cohen et al., ICASSP 2018;
Solomon et al., IEEE TMI 2019, "CORONA").

True model (written from the facts of CORONA's simulation platform, batched; frames ``(T, h, w)``, pixel 0.12 mm):

* tissue :math:`L`: ``tissue_rank`` = :math:`K` scatterer populations, each a fully developed complex speckle
  template :math:`T_k = (g_{lp} * \mathcal{CN}(0,1))\,e^{j\delta\phi}` (low-pass Gaussian of std 0.2 mm, per-pixel
  initial phase :math:`\delta\phi \sim \mathcal N(0, 15°)`) of peak ``tissue_decay``:math:`^k`,
  all scaled by ``tissue_amplitude`` × U(0.6, 1); slow flow as amplitude gains :math:`c_k(t)` (a random walk of std
  ``flow_std`` from 1, floored at ``min_flow``) and slowly drifting phases :math:`\psi_k(t)` (a random walk of std
  ``phase_drift_deg`` per frame): :math:`L_t = h * \sum_k c_k(t)\,e^{j\psi_k(t)}\,T_k`. The Casorati matrix of
  :math:`L` has rank :math:`K` exactly and a geometrically decaying spectrum that overlaps the blood's (the
  platform's templates :math:`|g_{lp} * \mathcal{CN}|\,e^{j(\phi + \delta\phi)}` are positive fields of nearly
  constant phase, so that any two are almost parallel, and its block-wise flow kernels make the clutter only
  approximately low rank, and nearly of rank one);
* blood :math:`S`: bubbles at continuous positions, a uniform number up to ``density`` per cm² at the start, speed
  0.24 mm/frame × max(N(1, 1), 0) in a uniform direction that turns by U(±30°) per frame, births (1…3 new bubbles)
  and deaths (1…3 bubbles) each with probability 0.3 per frame, bubbles leaving the field die; complex amplitudes of
  uniform phase and magnitude around 3, jittered by U(0.9, 1.1) per frame; each frame's bubbles are put in their
  pixels and blurred by the PSF :math:`h` (std (0.14, 0.32) mm, truncated at ``psf_radius`` stds), so :math:`S`
  is exactly zero away from the bubbles;
* noise :math:`N`: white complex Gaussian, :math:`E|n|^2 = \sigma^2` (the platform blurs its noise by the PSF too).

The methods are told :class:`LowRankPlusSparse`: the frame shape and the noise level; nothing of the PSF.

Metrics: NMSE (dB) of :math:`S` and of :math:`L`, the contrast-to-noise ratio (dB) of the recovered blood map
:math:`\hat P(r) = \frac1T\sum_t |\hat S_t(r)|^2` between the vessels (true blood power ≥ ``cnr_level`` of its maximum)
and the background (no blood), :math:`20\log_{10}(|\mu_v - \mu_b| / \sqrt{\sigma_v^2 + \sigma_b^2})` averaged over the
images, and CORONA's loss :math:`\tfrac12\mathrm{MSE}(L) + \tfrac12\mathrm{MSE}(S)` (its ``nn.MSELoss`` on the real
and imaginary parts: half the mean of :math:`|\cdot|^2`).

Bound: least squares with an oracle that knows the clutter subspaces (the column and row spaces :math:`U`, :math:`V`
of :math:`L`'s Casorati matrix, rank ``r`` = ``tissue_rank``), which pixels hold a bubble in each frame, and the PSF:
:math:`D = U C V^H + \sum_k b_k h_k + N` with unknown :math:`C` (``r × r``) and bubble amplitudes :math:`b_k` (:math:`h_k`
the PSF image of the ``k``-th bubble pixel of a frame). With the design :math:`M = [a_{ij} \,|\, h_k]`,
:math:`a_{ij} = \mathrm{vec}(u_i v_j^H)`, and :math:`G = M^H M`, the estimate is unbiased with
:math:`E\|\hat L - L\|^2 = \sigma^2\,\mathrm{tr}[G^{-1}]_{CC}` and :math:`E\|\hat S - S\|^2 = \sigma^2\,\mathrm{tr}(H^H H\,[G^{-1}]_{bb})`.
(An oracle that knows only :math:`S`'s support cannot tell :math:`L` from :math:`S` where the blood covers a frame, which
small patches have: every bubble's footprint is large.) The CNR's reference is the CNR of the true :math:`S`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor
from torch.nn import functional

from mbdl.algorithms.rpca import casorati
from mbdl.config import check_choice, check_positive, require
from mbdl.tasks.base import Batch, Metric, Reference, Task, decibels
from mbdl.tasks.ultrasound import (
    BUBBLE_AMPLITUDE,
    MAX_DENSITY_PER_CM2,
    NOISE_STD,
    PIXEL_MM,
    PSF_STD_MM,
    TISSUE_AMPLITUDE,
    check_pair,
    check_spread,
    draw_amplitudes,
    noise_level,
    psf_kernel,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

UNSUPERVISED_LOSSES = ("rpca",)


@dataclass(frozen=True)
class LowRankPlusSparse:
    """What the methods are told of :math:`D = L + S + N`: the frame sequences' shape ``(T, h, w)`` and the noise std
    (``None`` when not told). Estimates are :math:`(\\hat L, \\hat S)` stacked, ``(batch, 2, T, h, w)``."""

    shape: tuple[int, int, int]
    noise_std: float | None = None


def blur(frames: Tensor, kernel: Tensor) -> Tensor:
    """``frames`` ``(..., h, w)`` (complex) convolved with a real odd-sized ``kernel`` ("same", zero boundary), directly
    (no FFT, so the result is exactly zero away from the inputs' support)."""
    flat = torch.view_as_real(frames.reshape(-1, *frames.shape[-2:])).permute(0, 3, 1, 2).reshape(-1, 1, *frames.shape[-2:])
    weight = torch.flip(kernel, dims=(0, 1)).to(flat.dtype)[None, None]
    out = functional.conv2d(flat, weight, padding=(kernel.shape[0] // 2, kernel.shape[1] // 2))
    return torch.view_as_complex(out.reshape(-1, 2, *frames.shape[-2:]).permute(0, 2, 3, 1).contiguous()).reshape(frames.shape)


def nmse_db(estimate: Tensor, truth: Tensor) -> float:
    r""":math:`10\log_{10}(\sum|\hat u - u|^2 / \sum|u|^2)` pooled, in dB."""
    return decibels((estimate - truth).abs().double().square().sum().item() / truth.abs().double().square().sum().item())


def corona_loss(estimate: Tensor, s: Tensor, alpha: float = 0.5) -> Tensor:
    """CORONA's loss ``α MSE(L) + (1 − α) MSE(S)`` of estimates ``(batch, 2, T, h, w)``, each MSE its ``nn.MSELoss`` on the
    real and imaginary parts (half the mean of the squared magnitudes)."""
    error = (estimate - s).abs().square().transpose(0, 1).flatten(1).mean(dim=1) / 2.0  # (2,): L, S
    return alpha * error[0] + (1.0 - alpha) * error[1]


def contrast_to_noise(power: Tensor, vessels: Tensor, background: Tensor) -> Tensor:
    r"""Per-image :math:`|\mu_v - \mu_b| / \sqrt{\sigma_v^2 + \sigma_b^2}` of blood maps ``power`` ``(batch, h, w)``
    between the masks ``vessels`` and ``background`` (NaN where a mask has fewer than two pixels)."""
    def moments(mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        count = mask.sum(dim=(1, 2)).double()
        mean = (power * mask).sum(dim=(1, 2)) / count
        var = ((power - mean[:, None, None]).square() * mask).sum(dim=(1, 2)) / (count - 1)
        return count, mean, var

    nv, mv, vv = moments(vessels)
    nb, mb, vb = moments(background)
    cnr = (mv - mb).abs() / (vv + vb).sqrt()
    return torch.where((nv >= 2) & (nb >= 2), cnr, math.nan)


class ClutterSuppression(Task):
    """Separate the tissue clutter ``L`` (low rank) from the blood signal ``S`` (sparse) in ``D = L + S + N``.

    Args:
        shape: frame shape ``[h, w]`` (axial, lateral) in pixels.
        frames: frames ``T`` per sequence.
        pixel_mm, psf_std_mm: pixel and PSF std (axial, lateral) in mm.
        tissue_amplitude: the tissue template's peak (before the PSF), times U(0.6, 1) per sequence.
        tissue_rank: scatterer populations, the rank of ``L``'s Casorati matrix (``< frames``).
        tissue_decay: peak of population ``k`` relative to population ``k - 1``.
        phase_std_deg: std of the tissue's per-pixel initial phase.
        lowpass_mm: std of the speckle's low-pass Gaussian.
        flow_std, min_flow: random-walk std and floor of the populations' amplitude gains.
        phase_drift_deg: random-walk std of each population's phase per frame.
        bubble_amplitude, amplitude_spread: mean and relative std of the bubbles' magnitudes.
        density: largest bubble density per cm² at the first frame (uniform count up to it).
        speed_mm: mean bubble speed per frame.
        turn_deg: largest turn of a bubble's direction per frame.
        birth, death: probabilities per frame of a birth and of a death event.
        max_births, max_deaths: bubbles born / dying in one event (uniform from 1).
        amplitude_jitter: relative per-frame jitter of the bubbles' amplitudes.
        noise_std: per-pixel complex noise std, unless ``snr_db`` is set.
        snr_db: peak SNR of a mean bubble, ``20 log10(bubble_amplitude/σ)`` (``None``: use ``noise_std``).
        psf_radius: the PSF is truncated at this many stds each side.
        loss_weight_low_rank: ``α`` of the supervised loss ``α MSE(L) + (1 − α) MSE(S)`` (CORONA: 0.5).
        cnr_level: vessels are the pixels whose true blood power is at least this fraction of its maximum.
        unsupervised_loss: ``"rpca"``, the RPCA objective with ``rpca_lam_low_rank`` and ``rpca_lam_sparse``.
        rpca_lam_low_rank, rpca_lam_sparse: its weights (defaults: the λ_L, λ_S that validation chose for RPCA, as in the config).
        n_train, n_val, n_test: default data-set sizes.
    """

    metrics = {
        "nmse_s_db": Metric("NMSE of the blood signal S", "dB"),
        "nmse_l_db": Metric("NMSE of the tissue clutter L", "dB"),
        "cnr_db": Metric("CNR of the blood map", "dB", higher_is_better=True),
        "corona_loss": Metric("CORONA's loss ½MSE(L)+½MSE(S)"),
    }
    primary_metric = "nmse_s_db"

    def __init__(
        self,
        shape: tuple[int, int] = (32, 32),
        frames: int = 20,
        pixel_mm: tuple[float, float] = PIXEL_MM,
        psf_std_mm: tuple[float, float] = PSF_STD_MM,
        tissue_amplitude: float = TISSUE_AMPLITUDE,
        tissue_rank: int = 4,
        tissue_decay: float = 0.3,
        phase_std_deg: float = 15.0,
        lowpass_mm: float = 0.2,
        flow_std: float = 0.05,
        min_flow: float = 0.1,
        phase_drift_deg: float = 2.0,
        bubble_amplitude: float = BUBBLE_AMPLITUDE,
        amplitude_spread: float = 0.2,
        density: float = MAX_DENSITY_PER_CM2,
        speed_mm: float = 0.24,
        turn_deg: float = 30.0,
        birth: float = 0.3,
        death: float = 0.3,
        max_births: int = 3,
        max_deaths: int = 3,
        amplitude_jitter: float = 0.1,
        noise_std: float = NOISE_STD,
        snr_db: float | None = None,
        psf_radius: float = 3.0,
        loss_weight_low_rank: float = 0.5,
        cnr_level: float = 0.1,
        unsupervised_loss: str = "rpca",
        rpca_lam_low_rank: float = 3.0,
        rpca_lam_sparse: float = 0.1,
        n_train: int = 800,
        n_val: int = 100,
        n_test: int = 100,
    ) -> None:
        self.shape = check_pair(shape, "task.shape", integer=True)
        check_positive(frames, "task.frames", integer=True)
        self.pixel_mm, self.psf_std_mm = check_pair(pixel_mm, "task.pixel_mm"), check_pair(psf_std_mm, "task.psf_std_mm")
        check_positive(tissue_amplitude, "task.tissue_amplitude")
        check_positive(tissue_rank, "task.tissue_rank", integer=True)
        require(tissue_rank < frames, "task.tissue_rank", f"must be less than task.frames={frames} (a low-rank clutter), got {tissue_rank}")
        for option, value in (("phase_std_deg", phase_std_deg), ("flow_std", flow_std), ("min_flow", min_flow), ("phase_drift_deg", phase_drift_deg), ("speed_mm", speed_mm), ("turn_deg", turn_deg), ("density", density)):
            check_positive(value, f"task.{option}", strict=False)
        check_positive(lowpass_mm, "task.lowpass_mm")
        check_positive(bubble_amplitude, "task.bubble_amplitude")
        check_spread(amplitude_spread, "task.amplitude_spread")
        require(isinstance(tissue_decay, (int, float)) and 0 < tissue_decay <= 1, "task.tissue_decay", f"must be in (0, 1], got {tissue_decay!r}")
        for option, value in (("birth", birth), ("death", death), ("loss_weight_low_rank", loss_weight_low_rank), ("cnr_level", cnr_level)):
            require(isinstance(value, (int, float)) and 0 <= value <= 1, f"task.{option}", f"must be in [0, 1], got {value!r}")
        check_positive(max_births, "task.max_births", integer=True)
        check_positive(max_deaths, "task.max_deaths", integer=True)
        require(isinstance(amplitude_jitter, (int, float)) and 0 <= amplitude_jitter < 1, "task.amplitude_jitter", f"must be in [0, 1), got {amplitude_jitter!r}")
        check_positive(noise_std, "task.noise_std", strict=False)
        require(snr_db is None or isinstance(snr_db, (int, float)), "task.snr_db", f"must be a number or null, got {snr_db!r}")
        check_positive(psf_radius, "task.psf_radius")
        check_choice(unsupervised_loss, "task.unsupervised_loss", UNSUPERVISED_LOSSES)
        check_positive(rpca_lam_low_rank, "task.rpca_lam_low_rank", strict=False)
        check_positive(rpca_lam_sparse, "task.rpca_lam_sparse", strict=False)
        self.frames, self.tissue_amplitude, self.tissue_rank, self.tissue_decay = frames, float(tissue_amplitude), tissue_rank, float(tissue_decay)
        self.phase_std = math.radians(phase_std_deg)
        self.lowpass_px = (lowpass_mm / self.pixel_mm[0], lowpass_mm / self.pixel_mm[1])
        self.flow_std, self.min_flow, self.phase_drift = float(flow_std), float(min_flow), math.radians(phase_drift_deg)
        self.bubble_amplitude, self.amplitude_spread, self.density = float(bubble_amplitude), float(amplitude_spread), float(density)
        self.speed_mm, self.turn = float(speed_mm), math.radians(turn_deg)
        self.birth, self.death, self.max_births, self.max_deaths = float(birth), float(death), max_births, max_deaths
        self.amplitude_jitter = float(amplitude_jitter)
        self.noise_std = noise_level(snr_db, noise_std, bubble_amplitude)
        self.loss_weight_low_rank, self.cnr_level = float(loss_weight_low_rank), float(cnr_level)
        self.rpca_lam_low_rank, self.rpca_lam_sparse = float(rpca_lam_low_rank), float(rpca_lam_sparse)
        self.set_sizes(n_train, n_val, n_test)
        std_px = [s / p for s, p in zip(self.psf_std_mm, self.pixel_mm)]
        self.psf = psf_kernel(std_px, [math.ceil(psf_radius * s) for s in std_px]).float()
        #: the methods are told the shape of the frame sequences and the noise std.
        self.assumed = LowRankPlusSparse((frames, *self.shape), self.noise_std)

    @property
    def area_cm2(self) -> float:
        """The field of view in cm²."""
        return self.shape[0] * self.pixel_mm[0] * self.shape[1] * self.pixel_mm[1] / 100.0

    def tissue(self, n: int, generator: torch.Generator) -> Tensor:
        """``n`` clutter sequences ``(n, T, h, w)`` before the PSF, of Casorati rank ``tissue_rank``."""
        (h, w), K = self.shape, self.tissue_rank
        speckle = torch.complex(torch.randn(n, K, h, w, generator=generator), torch.randn(n, K, h, w, generator=generator))
        radius = [math.ceil(3 * s) for s in self.lowpass_px]
        speckle = blur(speckle, psf_kernel(self.lowpass_px, radius).float()) * torch.polar(torch.ones(n, K, h, w), self.phase_std * torch.randn(n, K, h, w, generator=generator))
        scale = self.tissue_decay ** torch.arange(K).reshape(1, K, 1, 1) * self.tissue_amplitude * (0.6 + 0.4 * torch.rand(n, 1, 1, 1, generator=generator))
        templates = speckle / speckle.abs().flatten(2).amax(dim=2)[..., None, None] * scale  # (n, K, h, w)
        gains = [torch.ones(n, K)]
        for _ in range(self.frames - 1):
            gains.append((gains[-1] + self.flow_std * torch.randn(n, K, generator=generator)).clamp(min=self.min_flow))
        drift = torch.cumsum(self.phase_drift * torch.randn(n, self.frames, K, generator=generator), dim=1)
        weights = torch.polar(torch.stack(gains, dim=1), drift - drift[:, :1])  # (n, T, K): c_k(t) e^{j psi_k(t)}
        return torch.einsum("ntk,nkhw->nthw", weights, templates)

    def tracks(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
        """``n`` sequences of bubbles in slots: positions (mm) ``(n, T, slots, 2)``, ``alive`` ``(n, T, slots)`` and complex
        amplitudes ``(n, T, slots)``. Every slot moves whether alive or not; a newborn bubble takes a free slot at a new
        uniform position."""
        h, w = self.shape
        extent = torch.tensor([h * self.pixel_mm[0], w * self.pixel_mm[1]])
        initial = math.floor(self.density * self.area_cm2)
        slots = initial + self.frames * self.max_births
        start = (torch.rand(n, generator=generator) * (initial + 1)).floor().clamp(max=initial)
        alive = torch.arange(slots) < start[:, None]
        used = alive.clone()
        position = torch.rand(n, slots, 2, generator=generator) * extent
        speed = self.speed_mm * (1.0 + torch.randn(n, slots, generator=generator)).clamp(min=0.0)
        heading = 2 * math.pi * torch.rand(n, slots, generator=generator)
        magnitude = draw_amplitudes((n, slots), self.bubble_amplitude, self.amplitude_spread, generator)
        amplitude = torch.polar(magnitude, 2 * math.pi * torch.rand(n, slots, generator=generator))
        history: list[tuple[Tensor, Tensor, Tensor]] = []
        for t in range(self.frames):
            if t > 0:
                heading = heading + self.turn * (2 * torch.rand(n, slots, generator=generator) - 1)
                position = position + speed[..., None] * torch.stack([torch.sin(heading), torch.cos(heading)], dim=-1)
                alive = alive & ((position >= 0) & (position < extent)).all(dim=-1)
                born = (torch.rand(n, generator=generator) < self.birth) * torch.randint(1, self.max_births + 1, (n,), generator=generator)
                new = ~used & (torch.cumsum(~used, dim=1) <= born[:, None])
                position = torch.where(new[..., None], torch.rand(n, slots, 2, generator=generator) * extent, position)
                alive, used = alive | new, used | new
                died = (torch.rand(n, generator=generator) < self.death) * torch.randint(1, self.max_deaths + 1, (n,), generator=generator)
                order = torch.where(alive, torch.rand(n, slots, generator=generator), 2.0).argsort(dim=1).argsort(dim=1)
                alive = alive & (order >= died[:, None])
                amplitude = amplitude * (1.0 + self.amplitude_jitter * (2 * torch.rand(n, slots, generator=generator) - 1))
            history.append((position, alive, amplitude))
        positions, alive_, amplitudes = (torch.stack(parts, dim=1) for parts in zip(*history))
        return positions, alive_, amplitudes

    def bubbles(self, n: int, generator: torch.Generator) -> Tensor:
        """``n`` sequences of bubble maps ``(n, T, h, w)``, complex, before the PSF (each bubble in its pixel)."""
        (h, w), (positions, alive, amplitudes) = self.shape, self.tracks(n, generator)
        pixel = (positions / torch.tensor(self.pixel_mm)).floor().long()
        index = pixel[..., 0].clamp(0, h - 1) * w + pixel[..., 1].clamp(0, w - 1)
        maps = torch.zeros(n, self.frames, h * w, dtype=torch.complex64)
        return maps.scatter_add_(2, index, amplitudes * alive).reshape(n, self.frames, h, w)

    def simulate(self, n: int, generator: torch.Generator) -> Batch:
        """``n`` sequences: ``x`` = :math:`D` ``(n, T, h, w)`` and ``s`` = :math:`(L, S)` ``(n, 2, T, h, w)``, complex;
        ``bubbles`` ``(n, T, h, w)``, the bubble maps before the PSF (for the oracle)."""
        L = blur(self.tissue(n, generator), self.psf)
        bubbles = self.bubbles(n, generator)
        S = blur(bubbles, self.psf)
        noise = torch.complex(torch.randn(n, self.frames, *self.shape, generator=generator), torch.randn(n, self.frames, *self.shape, generator=generator))
        D = L + S + self.noise_std / math.sqrt(2.0) * noise
        return {"x": D, "s": torch.stack([L, S], dim=1), "bubbles": bubbles}

    def oracle_errors(self, data: Batch) -> tuple[Tensor, Tensor]:
        r"""Per-sequence expected squared errors of the oracle least squares on :math:`L` and on :math:`S`, ``(batch,)`` each
        (see the module docstring), in float64 (one sequence at a time: a reference computation)."""
        r, (h, w) = self.tissue_rank, self.shape
        U, _, Vh = torch.linalg.svd(casorati(data["s"][:, 0]).to(torch.complex128), full_matrices=False)
        errors = torch.zeros(2, len(U), dtype=torch.float64)
        for i in range(len(U)):
            frame, pixel = (data["bubbles"][i] != 0).flatten(1).nonzero(as_tuple=True)  # (K,) each
            impulses = torch.zeros(len(frame), h * w, dtype=torch.complex128)
            impulses[torch.arange(len(frame)), pixel] = 1.0
            H = blur(impulses.reshape(-1, h, w), self.psf.double()).reshape(-1, h * w)  # (K, P): each bubble's image in its frame
            low = torch.einsum("pk,lt->ptkl", U[i, :, :r], Vh[i, :r, :]).reshape(h * w, self.frames, r * r)  # a_kl(p, t) = U_pk conj(V_tl)
            # <a_kl, h_k'> = sum_p conj(a_kl(p, t_k')) h_k'(p)
            cross = torch.einsum("kpa,kp->ak", low.conj().permute(1, 0, 2)[frame], H)  # (r^2, K)
            same_frame = (frame[:, None] == frame[None, :]).to(torch.complex128)
            gram_b = same_frame * (H.conj() @ H.T)  # (K, K)
            gram = torch.cat([torch.cat([torch.eye(r * r, dtype=torch.complex128), cross], 1), torch.cat([cross.mH, gram_b], 1)], 0)
            inverse = torch.linalg.inv(gram)
            errors[0, i] = inverse[: r * r, : r * r].diagonal().real.sum()
            errors[1, i] = (gram_b * inverse[r * r :, r * r :].T).sum().real  # tr(H^H H [G^-1]_bb)
        return self.noise_std**2 * errors[0], self.noise_std**2 * errors[1]

    def blood_power(self, S: Tensor) -> Tensor:
        """The blood map :math:`\\frac1T\\sum_t |S_t|^2`, ``(batch, h, w)``."""
        return S.abs().square().mean(dim=1)

    def cnr_db(self, S_hat: Tensor, S: Tensor) -> float:
        """CNR (dB) of the blood map of ``S_hat`` between the vessels and the background of the true ``S``, over the images."""
        truth = self.blood_power(S)
        vessels = truth >= self.cnr_level * truth.flatten(1).amax(dim=1)[:, None, None]
        background = truth == 0
        cnr = contrast_to_noise(self.blood_power(S_hat).double(), vessels & (truth > 0), background)
        valid = cnr[~cnr.isnan()]
        return decibels(valid.mean().item() ** 2) if len(valid) else math.nan

    def evaluate(self, estimate: Tensor, data: Batch) -> dict[str, float]:
        """NMSE (dB) of ``S`` and ``L``, CNR (dB) and CORONA's loss of ``estimate`` ``(batch, 2, T, h, w)``."""
        s = data["s"]
        return {
            "nmse_s_db": nmse_db(estimate[:, 1], s[:, 1]),
            "nmse_l_db": nmse_db(estimate[:, 0], s[:, 0]),
            "cnr_db": self.cnr_db(estimate[:, 1], s[:, 1]),
            "corona_loss": corona_loss(estimate, s).item(),
        }

    def references(self, data: Batch) -> dict[str, Reference]:
        """The oracle least squares on the clutter subspaces and the support (bounds on the NMSEs and CORONA's loss) and
        the CNR of the true blood signal (a reference)."""
        s = data["s"]
        error_L, error_S = (e.sum().item() for e in self.oracle_errors(data))
        entries = s[:, 0].numel()
        name = "oracle least squares on the clutter subspaces and the support of S"
        return {
            "nmse_s_db": Reference(decibels(error_S / s[:, 1].abs().double().square().sum().item()), name, is_bound=True),
            "nmse_l_db": Reference(decibels(error_L / s[:, 0].abs().double().square().sum().item()), name, is_bound=True),
            "corona_loss": Reference(0.5 * (error_L + error_S) / (2.0 * entries), name, is_bound=True),
            "cnr_db": Reference(self.cnr_db(s[:, 1], s[:, 1]), "CNR of the true blood signal", is_bound=False),
        }

    def supervised_loss(self, estimate: Tensor, s: Tensor) -> Tensor:
        """CORONA's loss with ``α`` = ``loss_weight_low_rank`` (:func:`corona_loss`)."""
        return corona_loss(estimate, s, self.loss_weight_low_rank)

    def unsupervised_loss(self, estimate: Tensor, x: Tensor) -> Tensor:
        r"""The RPCA objective per entry, :math:`(\tfrac12\|D - \hat L - \hat S\|^2 + \lambda_L\|\hat L\|_* + \lambda_S\|\hat S\|_1) / (T h w)`,
        mean over the batch."""
        L, S = estimate[:, 0], estimate[:, 1]
        fidelity = 0.5 * (x - L - S).abs().square().flatten(1).sum(dim=1)
        nuclear = torch.linalg.svdvals(casorati(L)).sum(dim=-1)
        return ((fidelity + self.rpca_lam_low_rank * nuclear + self.rpca_lam_sparse * S.abs().flatten(1).sum(dim=1)) / x[0].numel()).mean()

    def figure(self, estimate: Tensor, data: Batch) -> Figure:
        """Two test sequences: a frame of D, of the true and recovered S and L, and the true and recovered blood maps (dB)."""
        from matplotlib.figure import Figure

        figure = Figure(figsize=(13, 5.2), layout="constrained")
        rows = min(2, len(estimate))
        axes = figure.subplots(rows, 6, squeeze=False)
        s, t = data["s"], self.frames // 2
        for row in range(rows):
            peak = self.blood_power(s[row : row + 1, 1])[0].max().clamp(min=1e-12)
            panels = [
                (data["x"][row, t].abs(), f"|D| frame {t}", None),
                (s[row, 0, t].abs(), "|L| (tissue)", None),
                (estimate[row, 0, t].abs(), "|L̂|", None),
                (s[row, 1, t].abs(), "|S| (blood)", None),
                (estimate[row, 1, t].abs(), "|Ŝ|", None),
                (10 * torch.log10(self.blood_power(estimate[row : row + 1, 1])[0] / peak + 1e-6), "blood map of Ŝ (dB)", (-40, 0)),
            ]
            for ax, (image, title, limits) in zip(axes[row], panels):
                ax.imshow(image.detach().cpu(), cmap="gray" if limits is None else "hot", vmin=None if limits is None else limits[0], vmax=None if limits is None else limits[1])
                ax.set_title(title, fontsize=9)
                ax.set_xticks([])
                ax.set_yticks([])
        return figure
