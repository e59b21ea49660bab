"""FISTA, ADMM, LISTA-CP(SS) and neural proximal gradient against scikit-learn's Lasso and closed forms, on matrices,
images (2-D convolution), complex MRI data (masked Fourier) and the matrix-free convolution task."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import Lasso

from mbdl.algorithms.admm import ADMM
from mbdl.algorithms.data_fidelity import LeastSquares
from mbdl.algorithms.fista import FISTA
from mbdl.algorithms.ista import ALISTA, ISTA, LISTA, LISTACP, soft_threshold, support_selection_threshold
from mbdl.algorithms.parameters import IterationParameter, parameters_at
from mbdl.algorithms.proximal_gradient import NeuralProximalGradient
from mbdl.config import ConfigError
from mbdl.nets.prox import ProxCNN
from mbdl.operators import Convolution, MaskedFourier, Matrix
from mbdl.tasks.sparse_recovery import SparseRecovery, convolution_operator, sparse_convolution_operator

LAM = 0.02


def sklearn_lasso(H: torch.Tensor, x: torch.Tensor, lam: float) -> np.ndarray:
    """Rows of solutions; sklearn minimises 1/(2n)||x - Hs||^2 + alpha||s||_1, so alpha = lam / n."""
    n = H.shape[0]
    lasso = Lasso(alpha=lam / n, fit_intercept=False, tol=1e-14, max_iter=1_000_000)
    return np.stack([lasso.fit(H.numpy(), row.numpy()).coef_ for row in x])


@pytest.mark.parametrize(
    "solver",
    [
        lambda H: FISTA(Matrix(H), iterations=3000, lam=LAM),
        lambda H: ADMM(Matrix(H), iterations=3000, lam=LAM, rho=0.5),
        lambda H: ADMM(Matrix(H), iterations=3000, lam=LAM, rho=2.0, mu=1.5),
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
    error = [(algorithm(Matrix(H), iterations=60, lam=LAM)(x) - ref).norm() for algorithm in (ISTA, FISTA)]
    assert error[1] < 0.5 * error[0]


def test_admm_inverse_matches_the_explicit_one(problem):
    H, _ = problem
    admm = ADMM(Matrix(H), iterations=1, lam=LAM)
    b = torch.randn(3, H.shape[1])
    rho = torch.tensor(0.7)
    expected = torch.linalg.solve(H.T @ H + rho * torch.eye(H.shape[1]), b.T).T
    torch.testing.assert_close(admm.operator.solve(rho, b), expected)


def test_lista_cp_at_initialisation_is_ista(problem):
    H, x = problem
    for a, b in zip(ISTA(Matrix(H), 6, 0.05).iterates(x), LISTACP(Matrix(H), 6, 0.05).iterates(x)):
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
    npg = NeuralProximalGradient(Matrix(H), iterations=3, prox=ProxCNN, step=0.1)
    s = torch.zeros(len(x), H.shape[1])
    for estimate in npg.iterates(x):
        s = s + 0.1 * (x - s @ H.T) @ H
        torch.testing.assert_close(estimate, s)


def test_layer_parameters_are_separate_per_iteration(problem):
    H, _ = problem
    admm = ADMM(Matrix(H), iterations=4, lam=LAM, mode="per_iteration")
    assert [len(parameters_at(admm, t)) for t in range(4)] == [3, 3, 3, 3]
    shared = ADMM(Matrix(H), iterations=4, lam=LAM, mode="shared")
    assert [len(parameters_at(shared, t)) for t in range(4)] == [3, 0, 0, 0]
    untied = NeuralProximalGradient(Matrix(H), 3, ProxCNN, tied=False)
    assert parameters_at(untied, 1) and not set(map(id, parameters_at(untied, 1))) & set(map(id, parameters_at(untied, 0)))
    assert IterationParameter(1.0, 3, "fixed").parameters_at(0) == []


# ---------------------------------------------------------------- on any operator: images, complex data, matrix-free H

SOLVERS = {
    "ista": lambda A: ISTA(A, iterations=300, lam=LAM),
    "ista_ss": lambda A: ISTA(A, iterations=30, lam=LAM, mode="per_iteration", support_step=2.0, support_max=10.0),
    "fista": lambda A: FISTA(A, iterations=300, lam=LAM),
    "admm": lambda A: ADMM(A, iterations=300, lam=LAM, rho=0.5),
}


def blurred_images(complex_data: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """A sparse batch of 2 x 1 x 8 x 8 images and a 3 x 3 kernel, float64 (complex images if asked)."""
    generator = torch.Generator().manual_seed(0)
    kernel = torch.rand(3, 3, generator=generator, dtype=torch.float64)
    s = torch.randn(2, 1, 8, 8, generator=generator, dtype=torch.complex128 if complex_data else torch.float64)
    return s * (torch.rand(2, 1, 8, 8, generator=generator) < 0.15), kernel


@pytest.mark.parametrize("boundary", ["circular", "zero"])
@pytest.mark.parametrize("name", list(SOLVERS))
def test_solvers_on_a_2d_convolution_are_the_dense_matrix_run_to_1e_8(name, boundary):
    s, kernel = blurred_images()
    A = Convolution(kernel, (1, 8, 8), boundary)
    x = A(s) + 0.01 * torch.randn(s.shape, generator=torch.Generator().manual_seed(1), dtype=s.dtype)
    images = list(SOLVERS[name](A).iterates(x))
    vectors = list(SOLVERS[name](Matrix(A.dense())).iterates(x.reshape(2, -1)))
    assert images[-1].shape == (2, 1, 8, 8)
    for a, b in zip(images, vectors):
        torch.testing.assert_close(a.reshape(2, -1), b, rtol=0, atol=1e-8)


@pytest.mark.parametrize(("name", "boundary"), [("fista", "zero"), ("admm", "circular")])  # ADMM: the solve in Fourier (CG 3000 times is slow)
def test_solvers_on_a_2d_convolution_reach_sklearn_lasso(name, boundary):
    s, kernel = blurred_images()
    A = Convolution(kernel, (1, 8, 8), boundary)
    x = A(s) + 0.01 * torch.randn(s.shape, generator=torch.Generator().manual_seed(1), dtype=s.dtype)
    solver = FISTA(A, iterations=3000, lam=LAM) if name == "fista" else ADMM(A, iterations=3000, lam=LAM, rho=0.5)
    ref = sklearn_lasso(A.dense(), x.reshape(2, -1), LAM)
    np.testing.assert_allclose(solver(x).reshape(2, -1).numpy(), ref, rtol=0, atol=1e-5 * np.abs(ref).max())


def complex_lasso_violation(A, s: torch.Tensor, x: torch.Tensor, lam: float) -> float:
    r"""Largest violation of the complex LASSO optimality conditions: :math:`A^H(x - As) = \lambda\,\mathrm{sgn}(s)` on the
    support, :math:`|A^H(x - As)| \le \lambda` off it."""
    correlation = A.adjoint(x - A(s))
    on = s != 0
    assert on.any() and (~on).any()
    return max((correlation[on] - lam * torch.sgn(s[on])).abs().max().item(), (correlation[~on].abs() - lam).clamp(min=0).max().item())


@pytest.mark.parametrize("name", list(SOLVERS))
def test_solvers_on_masked_fourier_with_complex_images(name):
    s, _ = blurred_images(complex_data=True)
    mask = torch.rand(8, 8, generator=torch.Generator().manual_seed(2)) < 0.5
    A = MaskedFourier(mask.double())
    x = A(s) + 0.01 * torch.randn(s.shape, generator=torch.Generator().manual_seed(1), dtype=s.dtype)
    estimates = list(SOLVERS[name](A).iterates(x))
    assert estimates[-1].dtype == torch.complex128 and estimates[-1].shape == (2, 1, 8, 8)
    vectors = list(SOLVERS[name](Matrix(A.dense())).iterates(x.reshape(2, -1)))
    for a, b in zip(estimates, vectors):
        torch.testing.assert_close(a.reshape(2, -1), b, rtol=0, atol=1e-8)
    if name in ("fista", "admm"):  # converged: the complex LASSO optimality conditions, to the iteration's accuracy
        assert complex_lasso_violation(A, estimates[-1], x, LAM) < 1e-6


def test_soft_threshold_shrinks_the_magnitude_of_complex_entries():
    v = torch.tensor([3.0 + 4.0j, 0.3 - 0.4j, -2.0j])
    torch.testing.assert_close(soft_threshold(v, 1.0), torch.tensor([2.4 + 3.2j, 0.0, -1.0j]))


def test_support_selection_ranks_the_entries_of_a_whole_image():
    v = torch.zeros(2, 1, 4, 5)
    v[0, 0, 1, 2], v[0, 0, 3, 4], v[1, 0, 0, 0] = 3.0, -2.0, 1.0
    out = support_selection_threshold(v, 0.5, percent=10.0, dims=3)  # the top 2 of 20 pixels pass
    torch.testing.assert_close(out.flatten(1), support_selection_threshold(v.flatten(1), 0.5, percent=10.0))
    assert out[0, 0, 1, 2] == 3.0 and out[0, 0, 3, 4] == -2.0 and out[1, 0, 0, 0] == 1.0


@pytest.mark.parametrize(("n", "m", "width"), [(25, 100, 3.0), (50, 150, 2.0), (40, 40, 1.5)])
def test_sparse_convolution_operator_is_the_tasks_matrix_to_1e_12(problem, n, m, width):
    torch.testing.assert_close(sparse_convolution_operator(n, m, width).dense(), convolution_operator(n, m, width), rtol=0, atol=1e-12)


def test_sparse_convolution_operator_needs_an_integer_ratio():
    with pytest.raises(ConfigError, match="task.m: must be a multiple of task.n=30"):
        sparse_convolution_operator(30, 100, 2.0)


@pytest.mark.parametrize("name", ["ista", "fista", "admm"])
def test_solvers_on_the_matrix_free_convolution_task_equal_the_matrix_run_to_1e_8(problem, name):
    task = SparseRecovery(n=25, m=100, k=3, operator="convolution", psf_width=3.0)
    x = task.simulate(8, torch.Generator().manual_seed(0))["x"]
    matrix_free, dense = (SOLVERS[name](A)(x) for A in (sparse_convolution_operator(25, 100, 3.0), Matrix(task.H)))
    assert dense.abs().max() > 0.1
    torch.testing.assert_close(matrix_free, dense, rtol=0, atol=1e-8)


@pytest.mark.parametrize("method", [LISTA, LISTACP, ALISTA])
def test_dense_matrix_methods_refuse_other_operators(method):
    name = {LISTA: "lista", LISTACP: "lista_cp", ALISTA: "alista"}[method]
    with pytest.raises(ConfigError, match=f"method.algorithm: {name} .* needs a Matrix operator, the task's operator is Convolution"):
        method(Convolution(torch.ones(3), (10,)), iterations=3, lam=0.1)


def test_admm_trains_rho_through_a_conjugate_gradient_solve(problem):  # problem: float64 parameters
    s, kernel = blurred_images()
    A = Convolution(kernel, (1, 8, 8), "zero")
    admm = ADMM(A, iterations=5, lam=LAM, rho=0.5, mode="shared")
    loss = (admm(A(s)) - s).square().sum()
    (grad,) = torch.autograd.grad(loss, admm.rho.values[0])
    eps = 1e-6
    with torch.no_grad():
        admm.rho.values[0] += eps
        above = (admm(A(s)) - s).square().sum()
        admm.rho.values[0] -= 2 * eps
        below = (admm(A(s)) - s).square().sum()
    assert grad.item() == pytest.approx(((above - below) / (2 * eps)).item(), rel=1e-5)


def test_least_squares_gradient_is_the_autograd_gradient():
    s, kernel = blurred_images()
    A = Convolution(kernel, (1, 8, 8), "zero")
    f = LeastSquares(A, A(s) + 1.0)
    estimate = torch.randn(s.shape, dtype=s.dtype).requires_grad_()
    value = f(estimate)
    assert value.shape == (2,)
    (grad,) = torch.autograd.grad(value.sum(), estimate)
    torch.testing.assert_close(f.gradient(estimate), grad)
    with pytest.raises(ValueError, match=r"do not end in the operator's output shape \(1, 8, 8\)"):
        LeastSquares(A, torch.zeros(2, 8, 8))
