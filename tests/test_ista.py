"""ISTA and LISTA against scikit-learn's Lasso and the LASSO optimality conditions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import Lasso

from mbdl.algorithms.ista import ISTA, LISTA, lipschitz_step, soft_threshold
from mbdl.tasks.sparse_recovery import SparseRecovery


@pytest.fixture
def problem():
    torch.set_default_dtype(torch.float64)
    task = SparseRecovery(n=30, m=50, k=3, noise_std=0.01, model_seed=1)
    data = task.simulate(4, torch.Generator().manual_seed(0))
    yield task.H.double(), data["x"].double()
    torch.set_default_dtype(torch.float32)


def test_soft_threshold_is_the_prox_of_the_l1_norm():
    v = torch.linspace(-2, 2, 41)
    expected = torch.where(v.abs() > 0.5, v - 0.5 * v.sign(), torch.zeros_like(v))
    torch.testing.assert_close(soft_threshold(v, 0.5), expected)


def test_ista_reaches_sklearn_lasso(problem):
    H, x = problem
    lam = 0.02
    s = ISTA(H, iterations=20000, lam=lam)(x)
    n = H.shape[0]  # sklearn minimises 1/(2n)||x - Hs||^2 + alpha||s||_1: alpha = lam / n
    for i in range(len(x)):
        ref = Lasso(alpha=lam / n, fit_intercept=False, tol=1e-14, max_iter=1_000_000).fit(H.numpy(), x[i].numpy()).coef_
        np.testing.assert_allclose(s[i].numpy(), ref, rtol=0, atol=1e-5 * np.abs(ref).max())


def test_ista_satisfies_the_lasso_optimality_conditions(problem):
    H, x = problem
    lam = 0.02
    s = ISTA(H, iterations=20000, lam=lam)(x)
    correlation = (x - s @ H.T) @ H  # H^T (x - H s)
    on = s != 0
    assert on.any() and (~on).any()
    torch.testing.assert_close(correlation[on], lam * s[on].sign(), atol=1e-7, rtol=0)
    assert (correlation[~on].abs() <= lam + 1e-9).all()


def test_lista_at_initialisation_is_ista(problem):
    H, x = problem
    ista, lista = ISTA(H, iterations=7, lam=0.05), LISTA(H, iterations=7, lam=0.05)
    for a, b in zip(ista.iterates(x), lista.iterates(x)):
        torch.testing.assert_close(a, b)


def test_parameter_modes_count_trainable_scalars(problem):
    H, _ = problem
    assert sum(p.numel() for p in ISTA(H, 5, 0.1, mode="fixed").parameters()) == 0
    assert sum(p.numel() for p in ISTA(H, 5, 0.1, mode="shared").parameters()) == 2
    assert sum(p.numel() for p in ISTA(H, 5, 0.1, mode="per_iteration").parameters()) == 10
    n, m = H.shape
    assert sum(p.numel() for p in LISTA(H, 5, 0.1).parameters()) == 5 * (m * n + m * m + 1)


def test_lipschitz_step_is_the_inverse_squared_spectral_norm(problem):
    H, _ = problem
    assert lipschitz_step(H) == pytest.approx(1 / np.linalg.norm(H.numpy(), 2) ** 2)
