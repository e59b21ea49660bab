"""The DoA simulator, RMSPE and the stochastic CRB."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from mbdl.algorithms.subspace import esprit, sample_covariance
from mbdl.config import ConfigError
from mbdl.tasks.array import SensorArray
from mbdl.tasks.doa import DoA, assigned_errors, stochastic_crb, wrap_angle


def single_source_crb(theta: float, n: int, snapshots: int, snr: float) -> float:
    """The closed form 6 / (T π² cos²θ N (N²-1)) (1/SNR + 1/(N SNR²)) (Stoica & Nehorai 1990)."""
    return 6.0 / (snapshots * math.pi**2 * math.cos(theta) ** 2 * n * (n**2 - 1)) * (1.0 / snr + 1.0 / (n * snr**2))


@pytest.mark.parametrize(("theta_deg", "n", "snapshots", "snr_db"), [(0.0, 8, 100, 10.0), (37.0, 5, 20, -5.0), (-70.0, 12, 500, 25.0)])
def test_crb_equals_the_single_source_closed_form(theta_deg, n, snapshots, snr_db):
    task = DoA(sensors=n, sources=1, snapshots=snapshots, snr_db=snr_db)
    theta = torch.tensor([[math.radians(theta_deg)]], dtype=torch.float64)
    expected = single_source_crb(math.radians(theta_deg), n, snapshots, 10 ** (snr_db / 10))
    assert task.crb(theta).item() == pytest.approx(expected, rel=1e-9)


def test_crb_of_two_sources_matches_the_inverse_fisher_information_of_the_likelihood():
    """Independent check: the Gaussian Fisher information T tr(R⁻¹ ∂R/∂α_i R⁻¹ ∂R/∂α_j) by autograd, with
    the unknown Hermitian source covariance P and the noise power as nuisance parameters."""
    array, snapshots = SensorArray.ula(6), 50
    theta0 = torch.tensor([-0.3, 0.4], dtype=torch.float64)
    # alpha = (theta_1, theta_2, P_11, P_22, Re P_12, Im P_12, sigma^2)
    alpha0 = torch.cat([theta0, torch.tensor([2.0, 0.5, 0.3, -0.2, 1.0], dtype=torch.float64)])

    def covariance(alpha: torch.Tensor) -> torch.Tensor:
        A = array.steering(alpha[:2])
        off = torch.complex(alpha[4], alpha[5])
        P = torch.stack([torch.stack([alpha[2].to(off.dtype), off]), torch.stack([off.conj(), alpha[3].to(off.dtype)])])
        return A @ P @ A.mH + alpha[6] * torch.eye(6)

    jacobian = torch.autograd.functional.jacobian(lambda a: torch.view_as_real(covariance(a)), alpha0)
    dR = torch.view_as_complex(jacobian.movedim(-1, 0).contiguous())  # (7, 6, 6)
    R_inv = torch.linalg.inv(covariance(alpha0))
    fisher = snapshots * torch.einsum("iab,bc,jcd,da->ij", dR, R_inv, dR, R_inv).real
    expected = torch.linalg.inv(fisher)[:2, :2]
    P = torch.tensor([[2.0, 0.3 - 0.2j], [0.3 + 0.2j, 0.5]], dtype=torch.complex128)
    A, D = array.steering(theta0)[None], array.steering_derivative(theta0)[None]
    got = stochastic_crb(A, D, P[None], 1.0, snapshots)[0]
    torch.testing.assert_close(got, expected, rtol=1e-8, atol=0)


@pytest.mark.parametrize("snr_db", [-10.0, 0.0, 10.0, 20.0])
def test_realised_snr_equals_the_nominal_one(snr_db):
    """Per-sensor power of one source over unit noise power: 10^(SNR/10), not 10^(SNR/5)."""
    task = DoA(sensors=4, sources=1, snapshots=200, snr_db=snr_db)
    x = task.simulate(400, torch.Generator().manual_seed(0))["x"].to(torch.complex128)
    noise_only = DoA(sensors=4, sources=1, snapshots=200, snr_db=-200.0).simulate(400, torch.Generator().manual_seed(1))["x"]
    noise_power = noise_only.abs().square().mean().item()
    assert noise_power == pytest.approx(1.0, rel=0.01)
    realised_db = 10 * math.log10(x.abs().square().mean().item() / noise_power - 1.0)
    assert realised_db == pytest.approx(snr_db, abs=0.1)


def test_rmspe_is_invariant_to_the_order_of_the_estimates():
    task = DoA(sources=4)
    data = task.simulate(50, torch.Generator().manual_seed(0))
    estimate = data["s"] + 0.01 * torch.randn(50, 4, generator=torch.Generator().manual_seed(1))
    reference = task.evaluate(estimate, data)
    for permutation in itertools.permutations(range(4)):
        assert task.evaluate(estimate[:, list(permutation)], data) == pytest.approx(reference)
    shuffled = estimate.gather(1, torch.rand(50, 4).argsort(dim=1))
    assert task.evaluate(shuffled, data) == pytest.approx(reference)


def test_assignment_is_the_best_permutation():
    """The Hungarian assignment against a brute-force search over the M! permutations."""
    generator = torch.Generator().manual_seed(2)
    estimate, truth = torch.rand(30, 4, generator=generator) * 3 - 1.5, torch.rand(30, 4, generator=generator) * 3 - 1.5
    best = torch.stack(
        [wrap_angle(estimate[:, list(p)] - truth).square().sum(dim=1) for p in itertools.permutations(range(4))]
    ).amin(dim=0)
    torch.testing.assert_close(assigned_errors(estimate, truth).square().sum(dim=1), best)


def test_rmspe_in_degrees_and_radians_and_the_wrap_at_ninety_degrees():
    task = DoA(sources=2)
    truth = torch.tensor([[math.radians(-89.0), math.radians(10.0)]])
    estimate = torch.tensor([[math.radians(12.0), math.radians(89.0)]])  # 89° is 2° from -89°
    metrics = task.evaluate(estimate, {"s": truth})
    assert metrics["rmspe_deg"] == pytest.approx(2.0)
    assert metrics["rmspe_rad"] == pytest.approx(math.radians(2.0))


@pytest.mark.parametrize(("angle_range", "grid"), [((-90.0, 90.0), None), ((-60.0, 60.0), None), ((-60.0, 60.0), 1.0)])
def test_angles_respect_range_and_separation(angle_range, grid):
    task = DoA(sources=4, min_separation_deg=20.0, angle_range_deg=angle_range, grid_deg=grid)
    theta = torch.rad2deg(task.simulate(2000, torch.Generator().manual_seed(0))["s"].double())
    assert (theta >= angle_range[0] - 1e-4).all() and (theta <= angle_range[1] + 1e-4).all()
    gaps = theta.diff(dim=1)
    if angle_range == (-90.0, 90.0):
        gaps = torch.cat([gaps, 180.0 - (theta[:, -1:] - theta[:, :1])], dim=1)  # cyclic: ±90° coincide
    assert gaps.min() >= 20.0 - 1e-4
    if grid is not None:
        torch.testing.assert_close(theta, theta.round(), atol=1e-4, rtol=0)
    # the draws cover the range, not one corner of it
    assert theta[:, 0].min() < angle_range[0] + 5 and theta[:, -1].max() > angle_range[1] - 5


def test_coherent_sources_are_one_signal():
    task = DoA(sensors=6, sources=2, coherent=True, snr_db=200.0)
    data = task.simulate(5, torch.Generator().manual_seed(0))
    R = sample_covariance(data["x"].to(torch.complex128))
    eigenvalues = torch.linalg.eigvalsh(R)
    assert (eigenvalues[:, -2] / eigenvalues[:, -1] < 1e-8).all()  # rank one


def test_array_mismatch_degrades_esprit_with_the_nominal_array():
    perfect, mismatched = DoA(snr_db=30.0), DoA(snr_db=30.0, gain_error=0.2, phase_error=0.3)
    assert torch.equal(mismatched.assumed.array.positions, perfect.true_array.positions)
    assert not torch.equal(mismatched.true_array.phase, perfect.true_array.phase)
    errors = []
    for task in (perfect, mismatched):
        data = task.simulate(200, torch.Generator().manual_seed(0))
        errors.append(task.evaluate(esprit(sample_covariance(data["x"]), 3), data)["rmspe_deg"])
    assert errors[1] > 3 * errors[0]


def test_unsupervised_loss_is_zero_at_the_truth_without_noise():
    task = DoA(snr_db=200.0, angle_range_deg=(-60.0, 60.0))
    data = task.simulate(8, torch.Generator().manual_seed(0))
    assert task.unsupervised_loss(data["s"].double(), data["x"]).item() < 1e-9
    assert task.unsupervised_loss(data["s"].double() + 0.05, data["x"]).item() > 1e-3


@pytest.mark.parametrize(
    ("kwargs", "option"),
    [
        ({"sources": 8}, "task.sources"),
        ({"angle_range_deg": (-100.0, 90.0)}, "task.angle_range_deg"),
        ({"min_separation_deg": 100.0}, "task.min_separation_deg"),
        ({"gain_error": -0.1}, "task.gain_error"),
        ({"coherent": "yes"}, "task.coherent"),
        ({"snapshots": 0}, "task.snapshots"),
    ],
)
def test_impossible_options_name_the_option(kwargs, option):
    with pytest.raises(ConfigError, match=option):
        DoA(**kwargs)
