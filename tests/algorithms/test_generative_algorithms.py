"""Generative learning's algorithms: linear-Gaussian closed forms (book Ex. 5.1), state-space fits, array calibration.

Tolerances come from the sample sizes: a Monte-Carlo mean is compared within 4 standard errors
(computed in closed form or from the replications), and the published single-run values of the
book's notebook within 4 standard deviations of one run.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mbdl.algorithms.calibration import Calibration, calibrate_gain_phase
from mbdl.algorithms.kalman import kalman_filter, kalman_log_likelihood, rts_smoother
from mbdl.algorithms.linear_gaussian import (
    BOOK_EX51_PUBLISHED,
    AffineEstimator,
    LinearGaussianModel,
    book_ex51,
    book_ex51_H,
    discriminative_estimator,
    fit_affine,
    fit_observation,
    generative_estimator,
    mmse_estimator,
)
from mbdl.algorithms.state_space_fit import fit_em, fit_labelled
from mbdl.algorithms.subspace import esprit, sample_covariance, ula_steering
from mbdl.tasks.array import SensorArray
from mbdl.tasks.state_space import LinearGaussian, kinematics_1d

D = torch.float64


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def shifted_model(seed: int = 0) -> LinearGaussianModel:
    """A linear-Gaussian model with non-zero means (n = 6, m = 4) to exercise every term."""
    g = generator(seed)
    n, m = 6, 4
    A = torch.randn(n, n, generator=g, dtype=D)
    return LinearGaussianModel(
        torch.randn(m, n, generator=g, dtype=D), torch.randn(n, generator=g, dtype=D), A @ A.T / n + 0.1 * torch.eye(n, dtype=D), 0.3, torch.randn(m, generator=g, dtype=D)
    )


# ---------------------------------------------------------------- linear Gaussian (Ex. 5.1)


def test_closed_form_mse_matches_monte_carlo():
    model = shifted_model()
    s, x = model.simulate(50, generator(1))
    estimators = {
        "mmse": model.mmse_estimator(),
        "generative, wrong prior": generative_estimator(s, x, model.prior_mean, torch.eye(model.n, dtype=D), model.noise_var),
        "discriminative": discriminative_estimator(s, x),
    }
    count = 40000
    s_test, x_test = model.simulate(count, generator(2))
    for name, estimator in estimators.items():
        monte_carlo = (estimator(x_test) - s_test).square().sum(-1).mean()
        standard_error = (estimator.squared_error_variance(model) / count).sqrt()
        assert abs(monte_carlo - estimator.mse(model)) < 4 * standard_error, name
    assert torch.isclose(estimators["mmse"].mse(model), model.mmse(), rtol=1e-12)


def test_mmse_is_the_conditional_mean_of_the_joint_gaussian():
    model = shifted_model(3)
    C, H = model.prior_covariance, model.H
    C_sx, C_xx = C @ H.T, H @ C @ H.T + model.noise_var * torch.eye(model.m, dtype=D)
    W = C_sx @ torch.linalg.inv(C_xx)
    estimator = model.mmse_estimator()
    torch.testing.assert_close(estimator.weight, W, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(estimator.bias, model.prior_mean - W @ (H @ model.prior_mean + model.noise_mean), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(model.mmse_error_covariance(), C - W @ C_sx.T, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("intercept", [False, True])
@pytest.mark.parametrize("ridge", [0.0, 0.7])
def test_least_squares_matches_numpy_lstsq(intercept, ridge):
    g = generator(4)
    u, y = torch.randn(3, 40, 5, generator=g, dtype=D), torch.randn(3, 40, 2, generator=g, dtype=D)
    A, c = fit_affine(u, y, ridge, intercept)
    for i in range(3):
        design = np.hstack([u[i].numpy(), np.ones((40, 1))]) if intercept else u[i].numpy()
        target = y[i].numpy()
        if ridge:  # penalise the slopes only: stack sqrt(ridge) I (zero column for the intercept)
            penalty = np.sqrt(ridge) * np.eye(design.shape[1])[: 5]
            design, target = np.vstack([design, penalty]), np.vstack([target, np.zeros((5, 2))])
        solution = np.linalg.lstsq(design, target, rcond=None)[0].T
        np.testing.assert_allclose(A[i].numpy(), solution[:, :5], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(c[i].numpy(), solution[:, 5] if intercept else 0.0, rtol=1e-10, atol=1e-12)


def test_sparse_recovery_operator_from_fewer_pairs_than_columns():
    """H (150 x 200) from 120 pairs: ridge least squares without an intercept, as numpy computes it."""
    g = generator(5)
    H = torch.randn(150, 200, generator=g, dtype=D) / math.sqrt(150)
    s = torch.randn(120, 200, generator=g, dtype=D) * (torch.rand(120, 200, generator=g, dtype=D) < 0.02)
    x = s @ H.T + 0.01 * torch.randn(120, 150, generator=g, dtype=D)
    H_hat, offset = fit_observation(s, x, ridge=1e-3, intercept=False)
    design = np.vstack([s.numpy(), np.sqrt(1e-3) * np.eye(200)])
    target = np.vstack([x.numpy(), np.zeros((200, 150))])
    np.testing.assert_allclose(H_hat.numpy(), np.linalg.lstsq(design, target, rcond=None)[0].T, rtol=1e-8, atol=1e-10)
    assert torch.all(offset == 0)


def test_estimators_equal_the_books_sample_moment_formulas():
    """Discriminative Ĉsx Ĉxx⁻¹(x − x̄) + s̄; generative in the book's information form, with 1/n_t sample moments."""
    model = book_ex51(0.3, generator=generator(6))
    s, x = model.simulate(80, generator(7))
    S, X = s.numpy().T, x.numpy().T  # (n, n_t), the notebook's layout
    s_bar, x_bar = S.mean(1, keepdims=True), X.mean(1, keepdims=True)
    C_ss, C_sx = (S - s_bar) @ (S - s_bar).T / 80, (S - s_bar) @ (X - x_bar).T / 80
    C_xx = (X - x_bar) @ (X - x_bar).T / 80
    x_new = model.simulate(5, generator(8))[1].numpy().T
    told = np.eye(30)  # a told prior other than the truth
    mu = np.zeros((30, 1))
    discriminative = s_bar + C_sx @ np.linalg.inv(C_xx) @ (x_new - x_bar)
    inv = np.linalg.inv
    generative = mu + inv(inv(C_ss) @ C_sx @ C_sx.T @ inv(C_ss) + model.noise_var * inv(told)) @ inv(C_ss) @ C_sx @ (
        x_new - x_bar - C_sx.T @ inv(C_ss) @ (mu - s_bar)
    )
    x_t = torch.from_numpy(x_new.T)
    np.testing.assert_allclose(discriminative_estimator(s, x)(x_t).numpy().T, discriminative, rtol=1e-8, atol=1e-10)
    ours = generative_estimator(s, x, model.prior_mean, torch.eye(30, dtype=D), model.noise_var)(x_t)
    np.testing.assert_allclose(ours.numpy().T, generative, rtol=1e-8, atol=1e-10)


def expected_discriminative_mse(mmse: float, n_train: int, m: int) -> float:
    r"""Least squares with an intercept on Gaussian regressors: :math:`E\,\mathrm{MSE} = \mathrm{MMSE}\,(1 + \frac1{n} + (1 + \frac1n)\frac{m}{n - m - 2})`.

    The excess is :math:`\|\bar e\|^2 + \|(\hat W - W)(x - \bar x)\|^2`; with :math:`\tilde X\tilde X^\top \sim \mathcal W(C_{xx}, n - 1)`,
    :math:`E[(\tilde X\tilde X^\top)^{-1}] = C_{xx}^{-1}/(n - m - 2)` and :math:`x - \bar x \sim \mathcal N(0, (1 + 1/n) C_{xx})`.
    """
    return mmse * (1 + 1 / n_train + (1 + 1 / n_train) * m / (n_train - m - 2))


def learned_estimators(model: LinearGaussianModel, n_train: int, seeds: int, seed: int) -> dict[str, AffineEstimator]:
    """The three learned estimators, one training set per seed (batched: weights ``(seeds, n, m)``)."""
    s, x = model.simulate(n_train, generator(seed), (seeds,))
    identity = torch.eye(model.n, dtype=D)
    estimators = {
        "discriminative": discriminative_estimator(s, x),
        "generative": generative_estimator(s, x, model.prior_mean, model.prior_covariance, model.noise_var),
        "generative, prior I": generative_estimator(s, x, model.prior_mean, identity, model.noise_var),
    }
    return estimators


def learned_mse(model: LinearGaussianModel, n_train: int, seeds: int, seed: int) -> dict[str, torch.Tensor]:
    """Exact MSE ``(seeds,)`` of :func:`learned_estimators`."""
    return {name: e.mse(model) for name, e in learned_estimators(model, n_train, seeds, seed).items()}


@pytest.mark.parametrize("n_train", [100, 400])
def test_discriminative_mse_matches_its_expectation(n_train):
    model = book_ex51(0.3, book_ex51_H())
    mse = learned_mse(model, n_train, 300, n_train)["discriminative"]
    expected = expected_discriminative_mse(model.mmse().item(), n_train, model.m)
    assert abs(mse.mean() - expected) < 4 * mse.std() / math.sqrt(len(mse))


def test_learned_estimators_approach_the_mmse():
    """Excess MSE over the MMSE: generative below discriminative, both falling ~1/n_t; the wrong prior stalls at its closed form."""
    model = book_ex51(0.3, book_ex51_H())
    mmse = model.mmse()
    seeds = 64
    small, large = learned_mse(model, 150, seeds, 0), learned_mse(model, 1500, seeds, 1)
    for name in ("discriminative", "generative"):
        excess_small, excess_large = small[name] - mmse, large[name] - mmse
        assert excess_large.mean() + 4 * excess_large.std() / math.sqrt(seeds) < excess_small.mean() / 5, name
    for mse in (small, large):
        gap = mse["discriminative"] - mse["generative"]  # paired, same training sets
        assert gap.mean() > 4 * gap.std() / math.sqrt(seeds)
    # with the prior told as I, generative learning converges to the MMSE rule with the true H and prior I
    limit = mmse_estimator(model.H, model.prior_mean, torch.eye(30, dtype=D), model.noise_var).mse(model)
    stalled = learned_mse(model, 20000, 8, 2)["generative, prior I"]
    assert abs(stalled.mean() - limit) < 4 * stalled.std() / math.sqrt(8) + 1e-3
    assert limit - mmse > 0.2  # the book's "stalls ~0.28 above the MMSE"


@pytest.mark.parametrize(("n_train", "noise_std"), list(BOOK_EX51_PUBLISHED))
def test_published_ex51_points_within_the_spread_of_one_run(n_train, noise_std):
    """Each published value is one run: one training set and 10 000 test draws (printed to 2-4 digits)."""
    model = book_ex51(noise_std, book_ex51_H())
    estimators = learned_estimators(model, n_train, 64, n_train + int(1000 * noise_std)) | {"mmse": model.mmse_estimator()}
    names = ("discriminative", "generative", "mmse", "generative, prior I")
    for name, published in zip(names, BOOK_EX51_PUBLISHED[(n_train, noise_std)]):
        mse = estimators[name].mse(model).reshape(-1)
        training = mse.std().item() if len(mse) > 1 else 0.0  # the training set's share of one run's spread
        test_draws = (estimators[name].squared_error_variance(model).mean() / 10000).sqrt().item()  # the test draws'
        spread = math.sqrt(training**2 + test_draws**2)
        rounding = 5e-4 if noise_std > 0.01 else 5e-5  # half the last printed digit
        assert abs(mse.mean() - published) < 4 * spread + rounding, (name, mse.mean().item(), published, spread)


def test_prior_mismatch_reverses_the_ordering():
    """Right prior: generative < discriminative. Prior told as I: discriminative < generative (paired over training sets)."""
    model = book_ex51(0.3, book_ex51_H())
    for n_train in (97, 1777):
        mse = learned_mse(model, n_train, 32, 10 + n_train)
        right = mse["discriminative"] - mse["generative"]
        wrong = mse["generative, prior I"] - mse["discriminative"]
        for gap in (right, wrong):
            assert gap.mean() > 4 * gap.std() / math.sqrt(len(gap))


# ---------------------------------------------------------------- state space: smoother, likelihood, fits


def random_model(n: int, m: int, seed: int, known_start: bool = False) -> LinearGaussian:
    """A random stable model in float64 (spectral radius of F 0.9, SPD Q, R, P0; P0 = 0 with ``known_start``)."""
    g = generator(seed)

    def spd(k: int) -> torch.Tensor:
        A = torch.randn(k, k, generator=g, dtype=D)
        return A @ A.T / k + 0.1 * torch.eye(k, dtype=D)

    F = torch.randn(n, n, generator=g, dtype=D)
    F = 0.9 * F / torch.linalg.eigvals(F).abs().max()
    H, s0, Q, R, P0 = torch.randn(m, n, generator=g, dtype=D), torch.randn(n, generator=g, dtype=D), spd(n), spd(m), spd(n)
    return LinearGaussian(H, Q, R, s0, torch.zeros(n, n, dtype=D) if known_start else P0, (0,), F)


def matrices(model: LinearGaussian) -> tuple[torch.Tensor, ...]:
    """``F, H, Q, R, s0, P0``."""
    return model.F, model.H, model.Q, model.R, model.s0, model.P0


@pytest.mark.parametrize(("n", "m", "seed"), [(2, 1, 0), (3, 2, 1), (4, 4, 2)])
def test_rts_smoother_equals_filterpy(n, m, seed):
    from filterpy.kalman import KalmanFilter

    model = random_model(n, m, seed)
    F, H, Q, R, s0, P0 = matrices(model)
    _, x = model.simulate(3, 30, generator(seed + 100))
    ours = rts_smoother(x, F, H, Q, R, s0, P0)
    for i in range(len(x)):
        kf = KalmanFilter(dim_x=n, dim_z=m)
        kf.x, kf.P, kf.F, kf.H, kf.Q, kf.R = (A.numpy().copy() for A in (s0, P0, F, H, Q, R))
        means, covariances, _, _ = kf.batch_filter(x[i].numpy())
        s, P, _, _ = kf.rts_smoother(means, covariances)
        np.testing.assert_allclose(ours.s[i].numpy(), s, rtol=1e-8, atol=1e-8)
        np.testing.assert_allclose(ours.P.numpy(), P, rtol=1e-8, atol=1e-8)


def test_rts_smoother_equals_filterpy_on_the_book_model_with_a_known_start():
    """Ex. 5.2: P0 = 0 and a rank-one Q (so P_{1|0} is singular)."""
    from filterpy.kalman import KalmanFilter

    model = kinematics_1d().to(torch.zeros((), dtype=D))
    _, x = model.simulate(2, 50, generator(3))
    ours = rts_smoother(x, model.F, model.H, model.Q, model.R, model.s0, model.P0)
    assert torch.all(ours.s0 == model.s0) and torch.all(ours.P0 == 0)
    for i in range(len(x)):
        kf = KalmanFilter(dim_x=2, dim_z=1)
        kf.x, kf.P, kf.F, kf.H, kf.Q, kf.R = (A.numpy().copy() for A in (model.s0, model.P0, model.F, model.H, model.Q, model.R))
        s, P, _, _ = kf.rts_smoother(*kf.batch_filter(x[i].numpy())[:2])
        np.testing.assert_allclose(ours.s[i].numpy(), s, rtol=1e-8, atol=1e-8)
        np.testing.assert_allclose(ours.P.numpy(), P, rtol=1e-8, atol=1e-10)


def joint_gaussian(F, H, Q, R, s0, P0, T: int) -> tuple[torch.Tensor, ...]:
    """Mean and covariance of the stacked states ``(s_0..s_T)`` and of the stacked measurements, and the map between."""
    n, m = F.shape[0], H.shape[0]
    powers = [torch.linalg.matrix_power(F, t) for t in range(T + 1)]
    mean = torch.cat([A @ s0 for A in powers])
    C = torch.zeros((T + 1) * n, (T + 1) * n, dtype=D)
    for i in range(T + 1):
        for j in range(T + 1):
            block = powers[i] @ P0 @ powers[j].T + sum((powers[i - k] @ Q @ powers[j - k].T for k in range(1, min(i, j) + 1)), torch.zeros(n, n, dtype=D))
            C[i * n : (i + 1) * n, j * n : (j + 1) * n] = block
    observe = torch.zeros(T * m, (T + 1) * n, dtype=D)
    for t in range(1, T + 1):
        observe[(t - 1) * m : t * m, t * n : (t + 1) * n] = H
    return mean, C, observe, torch.block_diag(*[R] * T)


def test_smoother_lag_one_covariances_and_likelihood_equal_the_joint_gaussian():
    model = random_model(3, 2, 9)
    F, H, Q, R, s0, P0 = matrices(model)
    T = 6
    _, x = model.simulate(2, T, generator(109))
    ours = rts_smoother(x, F, H, Q, R, s0, P0)
    mean, C, observe, noise = joint_gaussian(F, H, Q, R, s0, P0, T)
    S = observe @ C @ observe.T + noise
    gain = C @ observe.T @ torch.linalg.inv(S)
    posterior = C - gain @ observe @ C
    lag_one = torch.stack([posterior[t * 3 : (t + 1) * 3, (t - 1) * 3 : t * 3] for t in range(1, T + 1)])
    torch.testing.assert_close(ours.lag_one, lag_one, rtol=1e-9, atol=1e-11)
    torch.testing.assert_close(ours.P0, posterior[:3, :3], rtol=1e-9, atol=1e-11)
    for i in range(2):
        innovation = x[i].reshape(-1) - observe @ mean
        torch.testing.assert_close(torch.cat([ours.s0[i], ours.s[i].reshape(-1)]), mean + gain @ innovation, rtol=1e-9, atol=1e-11)
        log_density = torch.distributions.MultivariateNormal(observe @ mean, S).log_prob(x[i].reshape(-1))
        torch.testing.assert_close(ours.log_likelihood[i], log_density, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(kalman_log_likelihood(x, F, H, Q, R, s0, P0), ours.log_likelihood)


def sample_covariance_standard_error(C: torch.Tensor, count: int) -> torch.Tensor:
    r"""Standard errors of the entries of a zero-mean sample covariance of ``count`` Gaussian draws: :math:`\sqrt{(C_{ii}C_{jj} + C_{ij}^2)/N}`."""
    d = C.diagonal()
    return ((d[:, None] * d[None, :] + C.square()) / count).sqrt()


def test_labelled_fit_recovers_the_model_within_sampling_error():
    model = random_model(3, 2, 10, known_start=True)
    F, H, Q, R, s0, _ = matrices(model)
    s, x = model.simulate(100, 50, generator(110))
    count = 100 * 50
    known = fit_labelled(s, x, F, H, s0)
    assert torch.all((known.Q - Q).abs() < 4 * sample_covariance_standard_error(Q, count))
    assert torch.all((known.R - R).abs() < 4 * sample_covariance_standard_error(R, count))
    fitted = fit_labelled(s, x, F, H, s0, fit_F=True, fit_H=True)
    previous = torch.cat([s0.expand(100, 1, 3), s[:, :-1]], 1).reshape(-1, 3)
    # Cov(row i of F̂) = Q_ii (Σ s_{t-1} s_{t-1}ᵀ)⁻¹ ; Cov(row i of Ĥ) = R_ii (Σ s_t s_tᵀ)⁻¹
    F_se = (Q.diagonal()[:, None] * torch.linalg.inv(previous.T @ previous).diagonal()[None, :]).sqrt()
    states = s.reshape(-1, 3)
    H_se = (R.diagonal()[:, None] * torch.linalg.inv(states.T @ states).diagonal()[None, :]).sqrt()
    assert torch.all((fitted.F - F).abs() < 4 * F_se) and torch.all((fitted.H - H).abs() < 4 * H_se)
    assert torch.all((fitted.Q - Q).abs() < 4 * sample_covariance_standard_error(Q, count))


def symmetric_parameters(*matrices: torch.Tensor) -> torch.Tensor:
    """The upper triangles of symmetric matrices, stacked."""
    return torch.cat([A[tuple(torch.triu_indices(len(A), len(A)))] for A in matrices])


def from_parameters(theta: torch.Tensor, n: int, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse of :func:`symmetric_parameters` for an ``(n, n)`` and an ``(m, m)`` matrix."""
    out = []
    for k, chunk in ((n, theta[: n * (n + 1) // 2]), (m, theta[n * (n + 1) // 2 :])):
        rows, cols = torch.triu_indices(k, k)
        A = torch.zeros(k, k, dtype=theta.dtype).index_put((rows, cols), chunk)
        out.append(A + A.T - torch.diag(A.diagonal()))
    return out[0], out[1]


def em_data() -> tuple[torch.Tensor, ...]:
    """200 trajectories of 25 steps of a random 2-state model with a known start: ``x`` and ``F, H, Q, R, s0, P0``."""
    model = random_model(2, 2, 11, known_start=True)
    return model.simulate(200, 25, generator(111))[1], *matrices(model)


def test_em_log_likelihood_never_decreases():
    """Plain EM and the over-relaxed one, from Q = R = I; the accelerated one gets further in as many iterations."""
    x, F, H, _, _, s0, P0 = em_data()
    eye = torch.eye(2, dtype=D)
    finals = []
    for acceleration in (None, 1.5):
        ll = fit_em(x, F, H, eye, eye, s0, P0, iterations=30, acceleration=acceleration).log_likelihood
        assert len(ll) == 31 and ll[-1] > ll[0]
        assert torch.all(ll.diff() >= -1e-9 * ll.abs()[1:])
        finals.append(ll[-1])
    assert finals[1] > finals[0]


def test_em_recovers_q_and_r_within_sampling_error():
    """EM from measurements only: it ends at a stationary point of the likelihood (the Newton step
    left is a small fraction of a standard error) and the truth lies within 4 standard errors, from
    the observed information (Hessian of the innovation log-likelihood, by autograd)."""
    x, F, H, Q, R, s0, P0 = em_data()
    eye = torch.eye(2, dtype=D)
    fit = fit_em(x, F, H, eye, eye, s0, P0, iterations=150, acceleration=1.5)

    def log_likelihood(theta: torch.Tensor) -> torch.Tensor:
        Q_, R_ = from_parameters(theta, 2, 2)
        return kalman_log_likelihood(x, F, H, Q_, R_, s0, P0).sum()

    theta = symmetric_parameters(fit.Q, fit.R)
    covariance = torch.linalg.inv(-torch.func.hessian(log_likelihood)(theta))
    standard_error = covariance.diagonal().sqrt()
    newton = covariance @ torch.func.grad(log_likelihood)(theta)  # the step left to the maximum
    assert torch.all(newton.abs() < 0.2 * standard_error)
    assert torch.all((theta - symmetric_parameters(Q, R)).abs() < 4 * standard_error)


def test_em_also_fits_f():
    """With F fitted too: monotone; at the end at least as likely as the truth, and not more than Wilks allows
    (2(ℓ̂ − ℓ_true) ~ χ²(k), k = 4 + 3 free parameters of F and Q)."""
    model = random_model(2, 2, 12, known_start=True)
    F, H, Q, R, s0, P0 = matrices(model)
    _, x = model.simulate(200, 25, generator(112))
    eye = torch.eye(2, dtype=D)
    fit = fit_em(x, 0.5 * eye, H, eye, R, s0, P0, iterations=60, fit_F=True, fit_R=False, acceleration=1.5)
    assert torch.all(fit.log_likelihood.diff() >= -1e-9 * fit.log_likelihood.abs()[1:])
    excess = fit.log_likelihood[-1] - kalman_log_likelihood(x, F, H, Q, R, s0, P0).sum()
    k = 7
    assert 0 <= excess < (k + 4 * math.sqrt(2 * k)) / 2


def book_ex52_ratio(fit: str, seed: int = 0) -> float:
    """Book Ex. 5.2: position MSE of the KF told the fitted Q (R known) over that of the KF with full knowledge, same 500 test trajectories."""
    model = kinematics_1d().to(torch.zeros((), dtype=D))
    s, x = model.simulate(20, 200, generator(seed))
    s_test, x_test = model.simulate(500, 200, generator(seed + 1))
    if fit == "labelled":
        Q = fit_labelled(s, x, model.F, model.H, model.s0).Q
    else:
        Q = fit_em(x, model.F, model.H, torch.eye(2, dtype=D), model.R, model.s0, model.P0, 100, fit_R=False, acceleration=1.5).Q
    fitted, full = (kalman_filter(x_test, model.F, model.H, V, model.R, model.s0, model.P0).s[..., 0] for V in (Q, model.Q))
    return ((fitted - s_test[..., 0]).square().mean() / (full - s_test[..., 0]).square().mean()).item()


def test_book_ex52_labelled_fit_is_within_2_percent_of_full_knowledge():
    assert book_ex52_ratio("labelled") < 1.02


@pytest.mark.slow
def test_book_ex52_em_fit_is_within_5_percent_of_full_knowledge():
    assert book_ex52_ratio("em") < 1.05


# ---------------------------------------------------------------- array calibration


def simulate_doa(array: SensorArray, n: int, snapshots: int, snr_db: float, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` samples of 3 non-coherent sources on [-60°, 60°], 15° apart: angles ``(n, 3)``, covariances ``(n, N, N)``."""
    low, span, gap = math.radians(-60), math.radians(120), math.radians(15)
    theta = low + torch.rand(n, 3, generator=g, dtype=D).sort(1).values * (span - 2 * gap) + gap * torch.arange(3, dtype=D)
    y = 10 ** (snr_db / 20) * torch.randn(n, 3, snapshots, generator=g, dtype=torch.complex128)
    w = torch.randn(n, array.size, snapshots, generator=g, dtype=torch.complex128)
    return theta, sample_covariance(array.steering(theta) @ y + w)


def calibrate(theta: torch.Tensor, R: torch.Tensor, snr_db: float, gains: bool = True) -> Calibration:
    P = 10 ** (snr_db / 10) * torch.eye(3, dtype=torch.complex128)
    return calibrate_gain_phase(R, ula_steering(theta, R.shape[-1]), P, 1.0, gains=gains)


def test_calibration_recovers_gain_and_phase_within_sampling_error():
    array = SensorArray.perturbed(8, 0.0, 0.2, 0.3, generator(13))
    replications, n, snapshots = 6, 100, 100
    estimates = []
    for r in range(replications):
        calibration = calibrate(*simulate_doa(array, n, snapshots, 10.0, generator(100 + r)), 10.0)
        assert calibration.log_gain[0] == 0 and calibration.phase[0] == 0
        estimates.append(torch.cat([calibration.log_gain[1:], calibration.phase[1:]]))
    estimates = torch.stack(estimates)
    truth = torch.cat([array.gain.log()[1:], array.phase[1:]])
    spread = estimates.std(0)
    # R̂ entries have relative standard deviation 1/sqrt(T): per parameter about 1/sqrt(n T) of sampling error
    assert torch.all(spread < 3 / math.sqrt(n * snapshots))
    assert torch.all((estimates.mean(0) - truth).abs() < 4 * spread / math.sqrt(replications) + 1e-4)


def test_phase_only_calibration_keeps_unit_gains():
    array = SensorArray.perturbed(6, 0.0, 0.0, 0.4, generator(14))
    calibration = calibrate(*simulate_doa(array, 200, 100, 10.0, generator(15)), 10.0, gains=False)
    assert torch.all(calibration.log_gain == 0)
    assert (calibration.phase - array.phase).abs().max() < 4 / math.sqrt(200 * 100)


def test_calibrated_esprit_approaches_the_true_array():
    """ESPRIT on covariances corrected by the fitted calibration against the exact correction (the true array's)."""
    array = SensorArray.perturbed(8, 0.0, 0.2, 0.3, generator(16))
    snr_db = 20.0
    calibration = calibrate(*simulate_doa(array, 500, 200, snr_db, generator(17)), snr_db)
    theta, R = simulate_doa(array, 1000, 200, snr_db, generator(18))
    rmspe = lambda estimate: (estimate - theta).square().mean().sqrt().item()  # sorted angles, 15° apart
    exact = rmspe(esprit(Calibration(array.gain.log(), array.phase).apply(R), 3))
    fitted = rmspe(esprit(calibration.apply(R), 3))
    nominal = rmspe(esprit(R, 3))
    assert fitted < 1.1 * exact
    assert nominal > 10 * exact
