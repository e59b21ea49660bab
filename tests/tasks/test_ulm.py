"""Localization microscopy: the simulator's statistics, the PSF-and-decimation operator, detection and matching, the
oracle bound and the CRB against independent computations, and the learned convolutional ISTA's kernels."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy.signal import convolve2d

from mbdl.algorithms.conv_ista import ConvolutionalISTA, shift_invariant_gram
from mbdl.config import ConfigError
from mbdl.operators import Convolution, Decimation, Matrix
from mbdl.tasks.ulm import (
    LocalizationMicroscopy,
    best_threshold,
    detect,
    isolated_bubble_crb_mm2,
    match,
    psf_operator,
)
from mbdl.tasks.ultrasound import render
from tests.helpers import run_config


def task(**options) -> LocalizationMicroscopy:
    return LocalizationMicroscopy(**{"shape": (12, 12), "n_train": 8, "n_val": 8, "n_test": 8, **options})


def test_bubble_counts_are_poisson_with_the_density_and_positions_uniform():
    ulm = task(density=200.0)
    data = ulm.simulate(4000, torch.Generator().manual_seed(0))
    counts = data["valid"].sum(dim=1).double()
    rate = 200.0 * ulm.area_cm2
    assert counts.mean().item() == pytest.approx(rate, rel=0.03)
    assert counts.var().item() == pytest.approx(rate, rel=0.08), "Poisson: the variance equals the mean"
    positions = data["positions_mm"][data["valid"]].double() / torch.tensor([12 * 0.12, 12 * 0.12], dtype=torch.float64)
    assert positions.mean(dim=0).tolist() == pytest.approx([0.5, 0.5], abs=0.01) and positions.var(dim=0).tolist() == pytest.approx([1 / 12, 1 / 12], abs=0.005)
    amplitudes = data["amplitudes"][data["valid"]]
    assert amplitudes.mean().item() == pytest.approx(3.0, rel=0.01) and (amplitudes.std() / amplitudes.mean()).item() == pytest.approx(0.2, rel=0.05)
    # the fine map holds each bubble's amplitude in its fine pixel: the totals agree
    torch.testing.assert_close(data["s"].sum(dim=(1, 2)), data["amplitudes"].sum(dim=1), rtol=1e-5, atol=1e-5)


def test_realised_noise_and_psf_width():
    ulm = task(density=100.0, noise_std=0.2)
    data = ulm.simulate(500, torch.Generator().manual_seed(1))
    clean = render(data["positions_mm"].double(), data["amplitudes"].double(), ulm.shape, ulm.pixel_mm, ulm.psf_std_mm)
    assert (data["x"].double() - clean).std().item() == pytest.approx(0.2, rel=0.02)
    assert ulm.noise_std == pytest.approx(0.2) and task(snr_db=20.0).noise_std == pytest.approx(0.3)
    # one bubble on a fine grid of 1 um pixels: the second moments of its image are the PSF's variances
    image = render(torch.zeros(1, 1, 2, dtype=torch.float64) + 2.0, torch.ones(1, 1, dtype=torch.float64), (4001, 4001), (1e-3, 1e-3), ulm.psf_std_mm)[0]
    z = x = (torch.arange(4001, dtype=torch.float64) + 0.5) * 1e-3 - 2.0  # pixel centres relative to the bubble at (2, 2) mm
    weights = image / image.sum()
    assert math.sqrt((weights.sum(1) * z.square()).sum().item()) == pytest.approx(0.14, rel=1e-3)
    assert math.sqrt((weights.sum(0) * x.square()).sum().item()) == pytest.approx(0.32, rel=1e-3)


@pytest.mark.parametrize("q", [3, 4, 8])
def test_operator_is_the_continuous_image_of_on_grid_bubbles_and_its_adjoint_holds(q):
    shape, pixel, psf = (6, 5), (0.12, 0.12), (0.14, 0.32)
    A = psf_operator(shape, q, pixel, psf, radius=8.0)
    H, W = shape[0] * q, shape[1] * q
    generator = torch.Generator().manual_seed(q)
    index = torch.randint(0, H * W, (3, 4), generator=generator)
    amplitudes = torch.rand(3, 4, generator=generator, dtype=torch.float64) + 1
    s = torch.zeros(3, H * W, dtype=torch.float64).scatter_add_(1, index, amplitudes).reshape(3, H, W)
    centres = torch.stack([(index // W + 0.5) * pixel[0] / q, (index % W + 0.5) * pixel[1] / q], dim=-1)
    torch.testing.assert_close(A(s.float()).double(), render(centres, amplitudes, shape, pixel, psf), atol=2e-5, rtol=1e-5)
    dense = A.dense().double()
    s2 = torch.randn(H * W, dtype=torch.float64, generator=generator)
    x = torch.randn(shape[0] * shape[1], dtype=torch.float64, generator=generator)
    # <A s, x> = <s, A^H x> to float32 rounding, relative to |A s| |x| (the inner product itself may cancel)
    gap = (dense @ s2) @ x - s2 @ A.adjoint(x.reshape(shape).float()).double().flatten()
    assert gap.abs().item() <= 1e-5 * ((dense @ s2).norm() * x.norm()).item()


def test_detection_finds_isolated_bubbles_at_their_centroids():
    maps = torch.zeros(2, 16, 16)
    maps[0, 3, 4] = 3.0
    maps[0, 10, 12], maps[0, 10, 13] = 1.5, 1.5  # a bubble split over two pixels, at their shared edge
    maps[1, 7, 7] = 0.5  # below the threshold
    image, positions = detect(maps, threshold=1.0, fine_pixel_mm=(0.03, 0.03))
    assert image.tolist() == [0, 0]
    expected = torch.tensor([[3.5 * 0.03, 4.5 * 0.03], [10.5 * 0.03, 13.0 * 0.03]])
    torch.testing.assert_close(positions.sort(dim=0).values, expected.sort(dim=0).values)


def isolated_peaks(scale: float, seed: int = 0) -> tuple[torch.Tensor, dict, np.ndarray]:
    """Hand-made fine maps (4 images, 30 µm pixels) of isolated one-pixel peaks on an 8-pixel lattice: true bubbles
    (amplitudes ``scale`` × U(0.5, 3), some weaker than spurious ones) at their pixel's centre, and spurious peaks
    (``scale`` × U(0.1, 1)) at lattice sites no true bubble is within 4 pixels (120 µm > the 60 µm tolerance) of.
    Returns the maps, the task's data fields of the truth and, per peak, (amplitude, is true)."""
    rng = np.random.default_rng(seed)
    maps, positions, valid, peaks = torch.zeros(4, 32, 32), torch.zeros(4, 6, 2), torch.zeros(4, 6, dtype=torch.bool), []
    for image in range(4):
        sites = rng.permutation([(i, j) for i in range(2, 32, 8) for j in range(2, 32, 8)])[:10]
        for k, (i, j) in enumerate(sites):
            real = k < 6
            amplitude = scale * rng.uniform(0.5, 3.0) if real else scale * rng.uniform(0.1, 1.0)
            maps[image, i, j] = amplitude
            peaks.append((amplitude, real))
            if real:
                positions[image, k] = torch.tensor([(i + 0.5) * 0.03, (j + 0.5) * 0.03])
                valid[image, k] = True
    return maps, {"positions_mm": positions, "valid": valid, "s": maps}, np.array(peaks)


@pytest.mark.parametrize("scale", [1e-3, 1.0, 10.0])
def test_threshold_on_validation_is_the_best_f1_over_every_threshold_at_any_scale(scale):
    maps, data, peaks = isolated_peaks(scale)
    # independent: sweep the threshold over 0 and every peak amplitude (one-pixel peaks: mass = amplitude), count by hand
    amplitude, real = peaks[:, 0], peaks[:, 1].astype(bool)
    by_hand = [(2 * (real & (amplitude > t)).sum()) / (2 * (real & (amplitude > t)).sum() + (~real & (amplitude > t)).sum() + (real & (amplitude <= t)).sum()) for t in [0.0, *amplitude]]
    ulm = task(shape=(8, 8))  # fine 32 x 32 of 30 µm pixels
    assert ulm.evaluate(maps, data)["f1"] < max(by_hand) or scale == 1.0  # the fixed threshold 1 misses at the other scales
    chosen = ulm.calibrate(maps, data)["detection_threshold"]
    assert ulm.evaluate(maps, data)["f1"] == pytest.approx(max(by_hand))
    assert chosen == ulm.detection_threshold
    ratio = best_threshold(2 * maps, ulm.true_positions(data), ulm.fine_pixel_mm, ulm.match_tolerance_mm) / chosen
    assert ratio == pytest.approx(2.0, rel=1e-6)  # a multiple of the maps moves the threshold by that multiple
    fixed = task(shape=(8, 8), threshold_on_validation=False)
    assert fixed.calibrate(maps, data) == {} and fixed.detection_threshold == 1.0


def test_the_run_chooses_the_detection_threshold_on_validation_and_tests_with_it(tmp_path):
    setup = ("task=ulm", "task.n_val=50", "task.n_test=50", "method=model_based", "method.iterations=10", "method.lam=5")
    chosen = run_config(tmp_path / "chosen", *setup)
    fixed = run_config(tmp_path / "fixed", *setup, "task.threshold_on_validation=false")
    assert "calibration/detection_threshold" not in fixed and fixed["test/f1"] == 0.0  # 10 FISTA steps of 1/||A||^2: tiny maps
    threshold = chosen["calibration/detection_threshold"]
    assert 0 <= threshold < 1.0 and chosen["test/f1"] > 0.3


def brute_force_match(truth: np.ndarray, found: np.ndarray, tolerance: float) -> tuple[int, float]:
    """The most pairs within the tolerance, then the least total distance, over every partial assignment."""
    best = (0, 0.0)
    d = np.linalg.norm(truth[:, None] - found[None], axis=-1)
    for k in range(min(len(truth), len(found)), 0, -1):
        for rows in itertools.combinations(range(len(truth)), k):
            for cols in itertools.permutations(range(len(found)), k):
                pairs = d[list(rows), list(cols)]
                if (pairs <= tolerance).all() and (k > best[0] or (k == best[0] and pairs.sum() < best[1])):
                    best = (k, pairs.sum())
        if best[0]:
            return best
    return best


def test_matching_is_the_best_assignment_within_the_tolerance():
    rng = np.random.default_rng(0)
    for _ in range(40):
        truth, found = rng.uniform(0, 0.3, (rng.integers(0, 5), 2)), rng.uniform(0, 0.3, (rng.integers(0, 5), 2))
        tp, fp, fn, distances = match([truth], [found], tolerance_mm=0.08)
        expected_tp, expected_total = brute_force_match(truth, found, 0.08)
        assert tp == expected_tp and fp == len(found) - tp and fn == len(truth) - tp
        assert distances.sum() == pytest.approx(expected_total, abs=1e-12)


def test_oracle_bound_is_the_error_of_least_squares_on_the_true_positions_by_monte_carlo():
    ulm = task(density=400.0, noise_std=0.3)
    data = ulm.simulate(6, torch.Generator().manual_seed(3))
    predicted = ulm.oracle_error(data)
    rng = np.random.default_rng(0)
    for i in range(6):
        valid = data["valid"][i]
        positions, amplitudes = data["positions_mm"][i][valid].double(), data["amplitudes"][i][valid].double()
        columns = render(positions[:, None, :], torch.ones(len(positions), 1, dtype=torch.float64), ulm.shape, ulm.pixel_mm, ulm.psf_std_mm)
        G = columns.reshape(len(positions), -1).T.numpy()  # (pixels, K)
        clean = G @ amplitudes.numpy()
        fine = (positions / torch.tensor(ulm.fine_pixel_mm, dtype=torch.float64)).floor().long()
        pixel = (fine[:, 0] * ulm.fine_shape[1] + fine[:, 1]).numpy()
        draws = clean[None] + 0.3 * rng.standard_normal((4000, len(clean)))
        estimates = np.linalg.lstsq(G, draws.T, rcond=None)[0].T  # (draws, K)
        errors = np.zeros((4000, ulm.fine_shape[0] * ulm.fine_shape[1]))
        np.add.at(errors.T, pixel, (estimates - amplitudes.numpy()).T)  # each fine pixel's error
        assert (errors**2).sum(axis=1).mean() == pytest.approx(predicted[i].item(), rel=0.06)


def test_isolated_bubble_crb_is_the_continuous_closed_form_and_monte_carlo_ml():
    pixel, psf, var, a = (0.12, 0.12), (0.14, 0.32), 0.01, 3.0
    crb_z, crb_x = isolated_bubble_crb_mm2(pixel, psf, var, a)
    # J_zz = a^2 pi s_x / (2 dz dx s_z var): the sum over pixels as an integral
    assert crb_z == pytest.approx(2 * var * pixel[0] * pixel[1] * psf[0] / (a * a * math.pi * psf[1]), rel=1e-4)
    assert crb_x == pytest.approx(2 * var * pixel[0] * pixel[1] * psf[1] / (a * a * math.pi * psf[0]), rel=1e-4)
    # maximum likelihood (Gauss-Newton on amplitude and position) of 4000 noisy images of one bubble at a pixel centre
    generator = torch.Generator().manual_seed(0)
    n, size = 4000, 24
    centres = (torch.arange(size, dtype=torch.float64) + 0.5) * 0.12
    truth = torch.tensor([12.5 * 0.12, 12.5 * 0.12], dtype=torch.float64)
    x = render(truth.expand(1, 1, 2), torch.tensor([[a]], dtype=torch.float64), (size, size), pixel, psf)
    x = x + math.sqrt(var) * torch.randn(n, size, size, generator=generator, dtype=torch.float64)
    theta = torch.cat([torch.full((n, 1), a, dtype=torch.float64), truth.expand(n, 2)], dim=1)
    for _ in range(6):
        dz, dx = centres[None, :] - theta[:, 1:2], centres[None, :] - theta[:, 2:3]  # (n, size)
        gz, gx = torch.exp(-0.5 * (dz / psf[0]) ** 2), torch.exp(-0.5 * (dx / psf[1]) ** 2)
        g = gz[:, :, None] * gx[:, None, :]
        amp = theta[:, :1, None]
        jac = torch.stack([g, amp * g * (dz / psf[0] ** 2)[:, :, None], amp * g * (dx / psf[1] ** 2)[:, None, :]], dim=-1).flatten(1, 2)
        residual = (x - amp * g).flatten(1)
        theta = theta + torch.linalg.lstsq(jac, residual[..., None]).solution[..., 0]
    at_centre = isolated_bubble_crb_mm2(pixel, psf, var, a, offsets=1)  # the bound at this position
    mse = (theta[:, 1:] - truth).square().mean(dim=0)
    assert mse[0].item() == pytest.approx(at_centre[0], rel=0.1) and mse[1].item() == pytest.approx(at_centre[1], rel=0.1)


def test_shift_invariant_gram_is_the_mean_diagonal_of_the_dense_gram():
    h = torch.exp(-0.5 * (torch.arange(-3, 4.0)[:, None] ** 2 / 1.5**2 + torch.arange(-4, 5.0)[None, :] ** 2 / 2.0**2))
    q, n = 2, 24
    A = Decimation((n, n), q, 0) @ Convolution(h, (n, n), "zero")
    gram = A.dense().double().T @ A.dense().double()  # (n n, n n)
    k = shift_invariant_gram(A)
    assert k.shape == (13, 17)
    for dz, dx in [(0, 0), (1, 0), (0, 3), (-2, 5), (4, -1)]:
        # the mean over the q^2 phases of a cell in the interior of (A^H A)[p + d, p]
        values = [gram[(8 + a + dz) * n + 8 + b + dx, (8 + a) * n + 8 + b] for a in range(q) for b in range(q)]
        assert k[6 + dz, 8 + dx].item() == pytest.approx(float(np.mean(values)), rel=1e-6)  # the operator holds the kernel in float32


@pytest.mark.parametrize("q", [3, 4])
def test_convolutional_ista_starts_as_ista_on_the_shift_invariant_gram_and_needs_a_decimated_convolution(q):
    ulm, lam = task(q=q), 2.0
    net = ConvolutionalISTA(ulm.assumed.operator, iterations=3, lam=lam, kernel_w=(15, 33), kernel_s=(9, 11), mode="per_iteration")
    assert sum(p.numel() for p in net.parameters()) == 3 * (q * q * 15 * 33 + 99 + 1)
    x = ulm.simulate(4, torch.Generator().manual_seed(0))["x"]
    dense = ulm.assumed.operator.dense().double()  # (h w, H W)
    gram = shift_invariant_gram(ulm.assumed.operator)  # checked against the dense Gram above
    mu = 1.0 / gram.sum().item()
    c = [n // 2 for n in gram.shape]
    crop = gram[c[0] - 4 : c[0] + 5, c[1] - 5 : c[1] + 6].numpy()
    soft = lambda v: np.sign(v) * np.maximum(np.abs(v) - mu * lam, 0.0)
    matched = mu * (x.double().flatten(1) @ dense).reshape(4, *ulm.fine_shape).numpy()  # mu A^H x
    expected = soft(matched)
    for step in net.iterates(x):  # ISTA: s <- soft(mu A^H x + s - mu (k * s), mu lam), k cropped to 9 x 11, by scipy
        scale = np.abs(expected).max()
        assert (expected != 0).mean() > 0.01, "the thresholds leave something"
        torch.testing.assert_close(step.double(), torch.from_numpy(expected), atol=2e-3 * scale, rtol=5e-3)  # float32 net
        expected = soft(matched + np.stack([e - mu * convolve2d(e, crop, mode="same") for e in expected]))
    with pytest.raises(ConfigError, match="a convolutional ISTA needs a 2-D convolution"):
        ConvolutionalISTA(Matrix(torch.randn(4, 6)), 2, 0.1)


def test_bad_options_stop_with_one_line():
    with pytest.raises(ConfigError, match="^task.shape: must be a pair"):
        task(shape=(3,))
    with pytest.raises(ConfigError, match="^task.amplitude_spread"):
        task(amplitude_spread=0.9)
    with pytest.raises(ConfigError, match="^task.psf_mismatch"):
        task(psf_mismatch=-1.5)


def test_psf_mismatch_changes_only_the_told_operator():
    true, wide = task(), task(psf_mismatch=0.2)
    data = true.simulate(3, torch.Generator().manual_seed(0))
    again = wide.simulate(3, torch.Generator().manual_seed(0))
    torch.testing.assert_close(data["x"], again["x"])
    told = lambda t: t.assumed.operator.inner.kernel
    assert told(wide).sum() > told(true).sum()
