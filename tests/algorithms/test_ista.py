"""ISTA and LISTA against scikit-learn's Lasso and the LASSO optimality conditions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import minimize
from sklearn.linear_model import Lasso

from mbdl.algorithms.ista import ALISTA, ISTA, LISTA, analytic_weight, lipschitz_step, soft_threshold
from mbdl.operators import Matrix


def test_soft_threshold_is_the_prox_of_the_l1_norm():
    v = torch.linspace(-2, 2, 41)
    expected = torch.where(v.abs() > 0.5, v - 0.5 * v.sign(), torch.zeros_like(v))
    torch.testing.assert_close(soft_threshold(v, 0.5), expected)


def test_ista_reaches_sklearn_lasso(problem):
    H, x = problem
    lam = 0.02
    s = ISTA(Matrix(H), iterations=20000, lam=lam)(x)
    n = H.shape[0]  # sklearn minimises 1/(2n)||x - Hs||^2 + alpha||s||_1: alpha = lam / n
    for i in range(len(x)):
        ref = Lasso(alpha=lam / n, fit_intercept=False, tol=1e-14, max_iter=1_000_000).fit(H.numpy(), x[i].numpy()).coef_
        np.testing.assert_allclose(s[i].numpy(), ref, rtol=0, atol=1e-5 * np.abs(ref).max())


def test_ista_satisfies_the_lasso_optimality_conditions(problem):
    H, x = problem
    lam = 0.02
    s = ISTA(Matrix(H), iterations=20000, lam=lam)(x)
    correlation = (x - s @ H.T) @ H  # H^T (x - H s)
    on = s != 0
    assert on.any() and (~on).any()
    torch.testing.assert_close(correlation[on], lam * s[on].sign(), atol=1e-7, rtol=0)
    assert (correlation[~on].abs() <= lam + 1e-9).all()


def test_lista_at_initialisation_is_ista(problem):
    H, x = problem
    ista, lista = ISTA(Matrix(H), iterations=7, lam=0.05), LISTA(Matrix(H), iterations=7, lam=0.05)
    for a, b in zip(ista.iterates(x), lista.iterates(x)):
        torch.testing.assert_close(a, b)


def test_parameter_modes_count_trainable_scalars(problem):
    H, _ = problem
    assert sum(p.numel() for p in ISTA(Matrix(H), 5, 0.1, mode="fixed").parameters()) == 0
    assert sum(p.numel() for p in ISTA(Matrix(H), 5, 0.1, mode="shared").parameters()) == 2
    assert sum(p.numel() for p in ISTA(Matrix(H), 5, 0.1, mode="per_iteration").parameters()) == 10
    n, m = H.shape
    assert sum(p.numel() for p in LISTA(Matrix(H), 5, 0.1).parameters()) == 5 * (m * n + m * m + 1)


def test_lipschitz_step_is_the_inverse_squared_spectral_norm(problem):
    H, _ = problem
    assert lipschitz_step(Matrix(H)) == pytest.approx(1 / np.linalg.norm(H.numpy(), 2) ** 2)


def test_analytic_weight_solves_alistas_problem_like_scipy(problem):
    """min ||W^T H||_F^2 s.t. w_i^T h_i = 1, column by column, against scipy's SLSQP."""
    H, _ = problem
    W = analytic_weight(H)
    torch.testing.assert_close((W * H).sum(0), torch.ones(H.shape[1]))
    A = (H @ H.T).numpy()
    for i in (0, 17):
        h = H[:, i].numpy()
        ref = minimize(lambda w: w @ A @ w, h / (h @ h), jac=lambda w: 2 * A @ w, method="SLSQP",
                       constraints={"type": "eq", "fun": lambda w: w @ h - 1, "jac": lambda w: h}, options={"ftol": 1e-15, "maxiter": 1000})
        assert ref.success
        np.testing.assert_allclose(W[:, i].numpy() @ A @ W[:, i].numpy(), ref.fun, rtol=1e-6)
        np.testing.assert_allclose(W[:, i].numpy(), ref.x, atol=1e-5 * np.abs(ref.x).max())
    # less coherent with H than H itself (both normalised to a unit diagonal of W^T H)
    off = lambda G: (G - torch.diag(torch.diag(G))).square().sum()  # noqa: E731
    assert off(W.T @ H) < off(H.T @ H / (H * H).sum(0))


def test_alista_with_decaying_thresholds_recovers_noiseless_sparse_signals(problem):
    """With a hand-set geometric threshold decay and the analytic W, 40 layers reach the true s from x = Hs."""
    H, _ = problem
    s = torch.zeros(8, H.shape[1], dtype=H.dtype)
    s[:, :3] = torch.randn(8, 3, generator=torch.Generator().manual_seed(1), dtype=H.dtype) + 2.0
    alista = ALISTA(Matrix(H), iterations=40, lam=0.0, mode="per_iteration", support_step=2.0, support_max=8.0)
    with torch.no_grad():
        for t in range(40):
            alista.theta.values[t].fill_(0.5 * 0.8**t)
    error = [((estimate - s).square().sum() / s.square().sum()).item() for estimate in alista.iterates(s @ H.T)]
    assert error[-1] < 1e-8 and error[-1] < error[9] < error[0]
    assert sum(p.numel() for p in alista.parameters()) == 2 * 40
