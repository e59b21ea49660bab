"""The batched Kalman filter against filterpy, the Riccati steady state and its own pieces."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mbdl.algorithms.kalman import (
    autograd_jacobian,
    extended_kalman_filter,
    gain_filter,
    kalman_filter,
    linear,
    riccati_gains,
    steady_state_error_covariance,
)


def random_model(n: int, m: int, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    """A random stable model in float64: spectral radius of F 0.9, SPD Q, R, P0."""

    def spd(k: int) -> torch.Tensor:
        A = torch.randn(k, k, generator=generator, dtype=torch.float64)
        return A @ A.T / k + 0.1 * torch.eye(k, dtype=torch.float64)

    F = torch.randn(n, n, generator=generator, dtype=torch.float64)
    F = 0.9 * F / torch.linalg.eigvals(F).abs().max()
    H = torch.randn(m, n, generator=generator, dtype=torch.float64)
    s0 = torch.randn(n, generator=generator, dtype=torch.float64)
    return F, H, spd(n), spd(m), s0, spd(n)


def simulate(F, H, Q, R, s0, P0, b: int, T: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``b`` trajectories of the linear-Gaussian model: states ``(b, T, n)``, measurements ``(b, T, m)``."""
    chol = [torch.linalg.cholesky(A) for A in (Q, R, P0)]
    noise = lambda L, k: torch.randn(b, k, generator=generator, dtype=F.dtype) @ L.T  # noqa: E731
    s = s0 + noise(chol[2], len(s0))
    states, measurements = [], []
    for _ in range(T):
        s = s @ F.T + noise(chol[0], len(s0))
        states.append(s)
        measurements.append(s @ H.T + noise(chol[1], H.shape[0]))
    return torch.stack(states, 1), torch.stack(measurements, 1)


@pytest.mark.parametrize(("n", "m", "seed"), [(2, 1, 0), (3, 2, 1), (4, 4, 2)])
def test_kalman_filter_equals_filterpy(n, m, seed):
    from filterpy.kalman import KalmanFilter

    generator = torch.Generator().manual_seed(seed)
    F, H, Q, R, s0, P0 = random_model(n, m, generator)
    _, x = simulate(F, H, Q, R, s0, P0, b=5, T=40, generator=generator)
    ours = kalman_filter(x, F, H, Q, R, s0, P0)
    for i in range(len(x)):
        kf = KalmanFilter(dim_x=n, dim_z=m)
        kf.x, kf.P, kf.F, kf.H, kf.Q, kf.R = (A.numpy().copy() for A in (s0, P0, F, H, Q, R))
        means, covariances, gains = [], [], []
        for z in x[i].numpy():
            kf.predict()
            kf.update(z)
            means.append(kf.x.copy())
            covariances.append(kf.P.copy())
            gains.append(kf.K.copy())
        np.testing.assert_allclose(ours.s[i].numpy(), np.stack(means), rtol=0, atol=1e-8)
        np.testing.assert_allclose(ours.P.numpy(), np.stack(covariances), rtol=0, atol=1e-8)
        np.testing.assert_allclose(ours.gain.numpy(), np.stack(gains), rtol=0, atol=1e-8)


def test_batched_covariances_match_the_shared_ones():
    """Per-trajectory (batched) model matrices give the same filter as one shared model."""
    F, H, Q, R, s0, P0 = random_model(3, 2, torch.Generator().manual_seed(4))
    x = torch.randn(6, 20, 2, dtype=torch.float64)
    shared = kalman_filter(x, F, H, Q, R, s0, P0)
    batched = kalman_filter(x, F.expand(6, 3, 3), H.expand(6, 2, 3), Q, R, s0.expand(6, 3), P0.expand(6, 3, 3))
    torch.testing.assert_close(batched.s, shared.s)
    torch.testing.assert_close(batched.P, shared.P.expand(6, -1, -1, -1))


def test_ekf_with_autograd_jacobians_of_a_linear_model_is_the_kf():
    F, H, Q, R, s0, P0 = random_model(3, 2, torch.Generator().manual_seed(5))
    x = torch.randn(4, 15, 2, dtype=torch.float64)
    f, _ = linear(F)
    h, _ = linear(H)
    ekf = extended_kalman_filter(x, f, h, autograd_jacobian(f), autograd_jacobian(h), Q, R, s0, P0)
    kf = kalman_filter(x, F, H, Q, R, s0, P0)
    torch.testing.assert_close(ekf.s, kf.s)
    torch.testing.assert_close(ekf.P[0], kf.P)


def test_autograd_jacobian_of_a_nonlinear_map():
    f = lambda s: torch.stack([s[:, 0] * s[:, 1], torch.sin(s[:, 1])], dim=1)  # noqa: E731
    s = torch.randn(7, 2, dtype=torch.float64)
    expected = torch.zeros(7, 2, 2, dtype=torch.float64)
    expected[:, 0, 0], expected[:, 0, 1], expected[:, 1, 1] = s[:, 1], s[:, 0], torch.cos(s[:, 1])
    torch.testing.assert_close(autograd_jacobian(f)(s), expected)


def test_riccati_gains_drive_the_gain_filter_to_the_kf():
    F, H, Q, R, s0, P0 = random_model(3, 2, torch.Generator().manual_seed(6))
    x = torch.randn(4, 25, 2, dtype=torch.float64)
    gains = riccati_gains(F, H, Q, R, P0, 25)
    f, _ = linear(F)
    h, _ = linear(H)
    kf = kalman_filter(x, F, H, Q, R, s0, P0)
    torch.testing.assert_close(gains, kf.gain)
    torch.testing.assert_close(gain_filter(x, f, h, lambda t, *_: gains[t], s0), kf.s)


def test_long_run_mse_matches_the_riccati_steady_state():
    """Monte-Carlo MSE after the transient against tr(P_inf) from scipy's solve_discrete_are."""
    generator = torch.Generator().manual_seed(7)
    F, H, Q, R, s0, P0 = random_model(3, 2, generator)
    s, x = simulate(F, H, Q, R, s0, P0, b=400, T=300, generator=generator)
    estimate = kalman_filter(x, F, H, Q, R, s0, P0)
    P_inf = steady_state_error_covariance(F, H, Q, R)
    torch.testing.assert_close(estimate.P[-1], P_inf, rtol=1e-9, atol=1e-9)
    error = (estimate.s - s)[:, 100:]  # (400 trajectories, 200 steps, 3)
    per_trajectory = error.square().sum(-1).mean(1)  # independent across trajectories
    mse, standard_error = per_trajectory.mean(), per_trajectory.std() / len(per_trajectory) ** 0.5
    assert abs(mse - P_inf.trace()) < 4 * standard_error
    empirical = torch.einsum("bti,btj->ij", error, error) / (error.shape[0] * error.shape[1])
    torch.testing.assert_close(empirical, P_inf, rtol=0.1, atol=0.1 * P_inf.diagonal().max().item())


def test_gradients_reach_the_noise_covariances():
    F, H, Q, R, s0, P0 = random_model(2, 2, torch.Generator().manual_seed(8))
    Q = Q.clone().requires_grad_()
    x = torch.randn(3, 10, 2, dtype=torch.float64)
    kalman_filter(x, F, H, Q, R, s0, P0).s.square().sum().backward()
    assert Q.grad is not None and torch.isfinite(Q.grad).all() and Q.grad.abs().sum() > 0
