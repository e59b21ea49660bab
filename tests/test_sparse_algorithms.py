"""FISTA, ADMM, LISTA-CP(SS) and neural proximal gradient against scikit-learn's Lasso and closed forms."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import Lasso

from mbdl.algorithms.admm import ADMM
from mbdl.algorithms.fista import FISTA
from mbdl.algorithms.ista import ISTA, LISTACP, soft_threshold, support_selection_threshold
from mbdl.algorithms.parameters import IterationParameter, parameters_at
from mbdl.algorithms.proximal_gradient import NeuralProximalGradient
from mbdl.nets.prox import ProxCNN
from tests.test_ista import problem  # noqa: F401 - the float64 LASSO problem fixture

LAM = 0.02


def sklearn_lasso(H: torch.Tensor, x: torch.Tensor, lam: float) -> np.ndarray:
    """Rows of solutions; sklearn minimises 1/(2n)||x - Hs||^2 + alpha||s||_1, so alpha = lam / n."""
    n = H.shape[0]
    lasso = Lasso(alpha=lam / n, fit_intercept=False, tol=1e-14, max_iter=1_000_000)
    return np.stack([lasso.fit(H.numpy(), row.numpy()).coef_ for row in x])


@pytest.mark.parametrize(
    "solver",
    [
        lambda H: FISTA(H, iterations=3000, lam=LAM),
        lambda H: ADMM(H, iterations=3000, lam=LAM, rho=0.5),
        lambda H: ADMM(H, iterations=3000, lam=LAM, rho=2.0, mu=1.5),
    ],
    ids=["fista", "admm", "admm_overrelaxed_dual"],
)
def test_solver_reaches_sklearn_lasso_to_1e_5_relative(problem, solver):
    H, x = problem
    s = solver(H)(x).numpy()
    ref = sklearn_lasso(H, x, LAM)
    assert np.abs(ref).max() > 0.1
    np.testing.assert_allclose(s, ref, rtol=0, atol=1e-5 * np.abs(ref).max())


def test_fista_is_faster_than_ista(problem):
    H, x = problem
    ref = torch.as_tensor(sklearn_lasso(H, x, LAM))
    error = [(algorithm(H, iterations=60, lam=LAM)(x) - ref).norm() for algorithm in (ISTA, FISTA)]
    assert error[1] < 0.5 * error[0]


def test_admm_inverse_matches_the_explicit_one(problem):
    H, _ = problem
    admm = ADMM(H, iterations=1, lam=LAM)
    b = torch.randn(3, H.shape[1])
    rho = torch.tensor(0.7)
    expected = torch.linalg.solve(H.T @ H + rho * torch.eye(H.shape[1]), b.T).T
    torch.testing.assert_close(admm.solve(b, rho), expected)


def test_lista_cp_at_initialisation_is_ista(problem):
    H, x = problem
    for a, b in zip(ISTA(H, 6, 0.05).iterates(x), LISTACP(H, 6, 0.05).iterates(x)):
        torch.testing.assert_close(a, b)


def test_support_selection_passes_the_largest_entries_unshrunk():
    v = torch.tensor([[3.0, -2.0, 0.5, 0.1, -0.05, 1.0, 0.0, 0.2, 0.3, 0.4]])
    out = support_selection_threshold(v, 0.25, percent=20.0)  # top 2 of 10 pass
    expected = soft_threshold(v, 0.25)
    expected[0, :2] = v[0, :2]
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(support_selection_threshold(v, 0.25, percent=0.0), soft_threshold(v, 0.25))


def test_neural_proximal_gradient_starts_as_gradient_descent(problem):
    H, x = problem
    npg = NeuralProximalGradient(H, iterations=3, prox=ProxCNN, step=0.1)
    s = torch.zeros(len(x), H.shape[1])
    for estimate in npg.iterates(x):
        s = s + 0.1 * (x - s @ H.T) @ H
        torch.testing.assert_close(estimate, s)


def test_layer_parameters_are_separate_per_iteration(problem):
    H, _ = problem
    admm = ADMM(H, iterations=4, lam=LAM, mode="per_iteration")
    assert [len(parameters_at(admm, t)) for t in range(4)] == [3, 3, 3, 3]
    shared = ADMM(H, iterations=4, lam=LAM, mode="shared")
    assert [len(parameters_at(shared, t)) for t in range(4)] == [3, 0, 0, 0]
    untied = NeuralProximalGradient(H, 3, ProxCNN, tied=False)
    assert parameters_at(untied, 1) and not set(map(id, parameters_at(untied, 1))) & set(map(id, parameters_at(untied, 0)))
    assert IterationParameter(1.0, 3, "fixed").parameters_at(0) == []
