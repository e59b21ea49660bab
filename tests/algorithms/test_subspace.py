"""MUSIC, Root-MUSIC and ESPRIT: exact on noiseless data, differentiable, smoothing for coherent sources."""

from __future__ import annotations

import math

import pytest
import torch

from mbdl.algorithms.subspace import (
    esprit,
    forward_backward,
    music,
    music_spectrum,
    root_music,
    sample_covariance,
    spatial_smoothing,
    spectrum_peaks,
    ula_steering,
)

GRID = torch.linspace(-math.pi / 2, math.pi / 2, 1801, dtype=torch.float64)


def noiseless(theta: torch.Tensor, n: int, snapshots: int = 40, coherent: bool = False, seed: int = 0) -> torch.Tensor:
    """Sample covariances of ``x_t = A(θ) y_t`` (no noise) for angles ``theta`` ``(batch, M)``."""
    generator = torch.Generator().manual_seed(seed)
    batch, m = theta.shape
    y = torch.randn(batch, 1 if coherent else m, snapshots, generator=generator, dtype=torch.complex128)
    return sample_covariance(ula_steering(theta, n) @ y.expand(batch, m, snapshots))


def random_angles(batch: int, m: int, seed: int = 0) -> torch.Tensor:
    """Sorted angles in [-60°, 60°], at least 10° apart."""
    generator = torch.Generator().manual_seed(seed)
    gaps = torch.rand(batch, m, generator=generator, dtype=torch.float64) * math.radians(20) + math.radians(10)
    return (gaps.cumsum(dim=1) - math.radians(60)).clamp(max=math.radians(60))


@pytest.mark.parametrize(
    ("estimator", "atol"),
    # MUSIC on a 0.1° grid, its peaks refined by a parabola: exact to 1e-4 rad (0.006°)
    [(lambda R, m: music(R, m, GRID), 1e-4), (root_music, 1e-7), (esprit, 1e-9)],
    ids=["music", "root_music", "esprit"],
)
def test_exact_angles_from_noiseless_data(estimator, atol):
    theta = random_angles(16, 3)
    estimate = estimator(noiseless(theta, 8), 3)
    torch.testing.assert_close(estimate, theta, atol=atol, rtol=0)


def test_music_peak_refinement_beats_the_grid():
    theta = random_angles(16, 3)
    spectrum = music_spectrum(noiseless(theta, 8), 3, ula_steering(GRID, 8))
    coarse = spectrum_peaks(spectrum, 3, GRID, refine=False)
    assert (coarse - theta).abs().max() > 10 * (spectrum_peaks(spectrum, 3, GRID) - theta).abs().max()


def test_music_spectrum_matches_a_loop_over_angles():
    """The batched spectrum against the textbook per-angle formula 1 / (a^H E_n E_n^H a)."""
    R = noiseless(random_angles(3, 2), 6) + 0.1 * torch.eye(6)
    grid = GRID[::50]
    got = music_spectrum(R, 2, ula_steering(grid, 6))
    for b in range(3):
        noise = torch.linalg.eigh(R[b]).eigenvectors[:, :4]
        for g, angle in enumerate(grid):
            a = torch.exp(1j * math.pi * torch.arange(6, dtype=torch.float64) * torch.sin(angle))
            assert got[b, g].item() == pytest.approx(1.0 / (a.conj() @ noise @ noise.conj().T @ a).real.item(), rel=1e-9)


def test_peaks_are_refined_off_the_grid_and_padded_when_too_few():
    grid = torch.linspace(-1.0, 1.0, 21, dtype=torch.float64)
    spectrum = 1.0 / (1e-3 + (grid - 0.234) ** 2)[None]  # one exact parabola in 1/spectrum
    refined = spectrum_peaks(spectrum, 1, grid)
    assert refined.item() == pytest.approx(0.234, abs=1e-9)
    assert spectrum_peaks(spectrum, 1, grid, refine=False).item() == pytest.approx(0.2)
    two = spectrum_peaks(spectrum, 2, grid, refine=False)
    assert sorted(two[0].tolist()) == pytest.approx([0.2, 0.3])


def test_a_full_period_grid_is_searched_circularly():
    """±90° are one direction: a source at 89.9° peaks across the ends of a [-90°, 90°) grid."""
    grid = (torch.arange(1800, dtype=torch.float64) * math.pi / 1800 - math.pi / 2).float()
    theta = torch.tensor([[math.radians(-30.0), math.radians(89.93)]], dtype=torch.float64)
    got = music(noiseless(theta, 8).to(torch.complex64), 2, grid).double()
    error = torch.remainder(got - theta + math.pi / 2, math.pi) - math.pi / 2
    assert error.abs().max() < 1e-3  # below the 0.1° step; near endfire the null spectrum is flat in θ, the parabola cruder


def test_coherent_sources_need_spatial_smoothing():
    theta = torch.tensor([[-0.6, 0.1, 0.8]], dtype=torch.float64)
    R = noiseless(theta, 8, coherent=True) + 1e-3 * torch.eye(8)
    assert (esprit(R, 3) - theta).abs().max() > 0.05
    smoothed = spatial_smoothing(R, 5)
    assert smoothed.shape == (1, 5, 5)
    torch.testing.assert_close(esprit(smoothed, 3), theta, atol=1e-3, rtol=0)
    torch.testing.assert_close(root_music(forward_backward(smoothed), 3), theta, atol=1e-3, rtol=0)


def test_forward_backward_is_persymmetric_and_keeps_ula_covariances():
    R = noiseless(random_angles(2, 2), 5)
    J = torch.eye(5, dtype=R.dtype).flip(0)
    averaged = forward_backward(R)
    torch.testing.assert_close(averaged, J @ averaged.conj() @ J)
    exact = ula_steering(random_angles(2, 2), 5)
    exact = exact @ exact.mH  # uncorrelated unit-power sources: already persymmetric
    torch.testing.assert_close(forward_backward(exact), exact)


@pytest.mark.parametrize("estimator", [root_music, esprit], ids=["root_music", "esprit"])
def test_differentiable_estimators_pass_gradcheck(estimator):
    theta = torch.tensor([[-0.4, 0.5]], dtype=torch.float64)
    A = ula_steering(theta, 6)
    R0 = A @ A.mH + 0.1 * torch.eye(6)
    K = (0.05 * torch.randn(1, 6, 6, generator=torch.Generator().manual_seed(1), dtype=torch.complex128)).requires_grad_()
    assert torch.autograd.gradcheck(lambda K: estimator(R0 + K @ K.mH, 2), (K,))


def test_null_spectrum_equals_the_norm_of_the_noise_projection_on_any_array():
    """The one-GEMM form against its definition ||E_n^H a||^2, for a perturbed (non-ULA) array."""
    from mbdl.algorithms.subspace import music_null_spectrum, subspaces

    g = torch.Generator().manual_seed(5)
    x = torch.complex(torch.randn(4, 7, 30, generator=g, dtype=torch.float64), torch.randn(4, 7, 30, generator=g, dtype=torch.float64))
    R = x @ x.mH / 30
    grid = torch.linspace(-1.5, 1.5, 50, dtype=torch.float64)
    gains = torch.polar(1 + 0.1 * torch.rand(7, 1, generator=g, dtype=torch.float64), torch.rand(7, 1, generator=g, dtype=torch.float64))
    steering = gains * ula_steering(grid, 7)
    _, noise = subspaces(R, 2)
    expected = (noise.mH @ steering).abs().square().sum(dim=-2)
    torch.testing.assert_close(music_null_spectrum(R, 2, steering), expected, rtol=1e-10, atol=1e-12)
