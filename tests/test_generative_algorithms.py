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

from mbdl.algorithms.linear_gaussian import (
    AffineEstimator,
    LinearGaussianModel,
    book_ex51,
    discriminative_estimator,
    fit_affine,
    fit_observation,
    generative_estimator,
    mmse_estimator,
)

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


@pytest.fixture(scope="module")
def ex51_h() -> torch.Tensor:
    """The notebook's H: ``np.random.seed(12)`` and no other draw before ``H = np.random.randn(30, 30)``."""
    return torch.from_numpy(np.random.RandomState(12).randn(30, 30))


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
def test_discriminative_mse_matches_its_expectation(ex51_h, n_train):
    model = book_ex51(0.3, ex51_h)
    mse = learned_mse(model, n_train, 300, n_train)["discriminative"]
    expected = expected_discriminative_mse(model.mmse().item(), n_train, model.m)
    assert abs(mse.mean() - expected) < 4 * mse.std() / math.sqrt(len(mse))


def test_learned_estimators_approach_the_mmse(ex51_h):
    """Excess MSE over the MMSE: generative below discriminative, both falling ~1/n_t; the wrong prior stalls at its closed form."""
    model = book_ex51(0.3, ex51_h)
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


#: the notebook's own code (seed 12, 10 000 test draws, MSE summed over 30 entries):
#: (n_t, σ) -> (discriminative, generative, MMSE, generative with the prior mismatch)
PUBLISHED = {
    (42, 0.3): (1.464, 1.132, 0.492, 2.247),
    (97, 0.3): (0.723, 0.604, 0.499, 1.058),
    (1777, 0.3): (0.502, 0.498, 0.493, 0.776),
    (100, 1.0): (2.378, 1.977, 1.631, 3.173),
    (100, 0.01): (0.0021, 0.0021, 0.0014, 0.0020),
}


@pytest.mark.parametrize(("n_train", "noise_std"), list(PUBLISHED))
def test_published_ex51_points_within_the_spread_of_one_run(ex51_h, n_train, noise_std):
    """Each published value is one run: one training set and 10 000 test draws (printed to 2-4 digits)."""
    model = book_ex51(noise_std, ex51_h)
    estimators = learned_estimators(model, n_train, 64, n_train + int(1000 * noise_std)) | {"mmse": model.mmse_estimator()}
    names = ("discriminative", "generative", "mmse", "generative, prior I")
    for name, published in zip(names, PUBLISHED[(n_train, noise_std)]):
        mse = estimators[name].mse(model).reshape(-1)
        training = mse.std().item() if len(mse) > 1 else 0.0  # the training set's share of one run's spread
        test_draws = (estimators[name].squared_error_variance(model).mean() / 10000).sqrt().item()  # the test draws'
        spread = math.sqrt(training**2 + test_draws**2)
        rounding = 5e-4 if noise_std > 0.01 else 5e-5  # half the last printed digit
        assert abs(mse.mean() - published) < 4 * spread + rounding, (name, mse.mean().item(), published, spread)


def test_prior_mismatch_reverses_the_ordering(ex51_h):
    """Right prior: generative < discriminative. Prior told as I: discriminative < generative (paired over training sets)."""
    model = book_ex51(0.3, ex51_h)
    for n_train in (97, 1777):
        mse = learned_mse(model, n_train, 32, 10 + n_train)
        right = mse["discriminative"] - mse["generative"]
        wrong = mse["generative, prior I"] - mse["discriminative"]
        for gap in (right, wrong):
            assert gap.mean() > 4 * gap.std() / math.sqrt(len(gap))
