"""The sparse-recovery simulator, metric and oracle bound."""

from __future__ import annotations

import math

import pytest
import torch

from mbdl.config import ConfigError
from mbdl.tasks.sparse_recovery import SparseRecovery, nmse_db, oracle_ls_error


def test_samples_have_k_spikes_and_unit_norm_operator():
    task = SparseRecovery(n=20, m=40, k=3, noise_std=0.0)
    data = task.simulate(100, torch.Generator().manual_seed(0))
    assert ((data["s"] != 0).sum(dim=1) == 3).all()
    torch.testing.assert_close(task.H.norm(dim=0), torch.ones(40))
    torch.testing.assert_close(data["x"], data["s"] @ task.H.T)


def test_oracle_bound_matches_monte_carlo_least_squares():
    """The closed form sigma^2 tr((H_S^T H_S)^-1) against least squares on the true support."""
    task = SparseRecovery(n=15, m=30, k=5, noise_std=0.1, model_seed=3)
    data = task.simulate(20, torch.Generator().manual_seed(1))
    H = task.H.double()
    trials = 4000
    generator = torch.Generator().manual_seed(2)
    errors = []
    for s in data["s"].double():
        S = s != 0
        noise = 0.1 * torch.randn(trials, 15, generator=generator, dtype=torch.float64)
        x = s @ H.T + noise
        s_S = torch.linalg.lstsq(H[:, S], x.T).solution.T  # (trials, k)
        errors.append((s_S - s[S]).square().sum(dim=1).mean())
    closed_form = oracle_ls_error(H, data["s"] != 0, data["noise_std"].double().square())
    torch.testing.assert_close(closed_form, torch.stack(errors), rtol=0.08, atol=0)
    bound = task.references(data)["nmse_db"].value
    assert bound == pytest.approx(10 * math.log10(closed_form.sum().item() / data["s"].double().square().sum().item()))


def test_oracle_bound_handles_supports_of_different_sizes():
    H = torch.randn(10, 12, dtype=torch.float64)
    support = torch.zeros(2, 12, dtype=torch.bool)
    support[0, [1, 4]] = True
    support[1, [0, 2, 5, 7]] = True
    got = oracle_ls_error(H, support, torch.tensor([1.0, 2.0]))
    expected = [torch.linalg.inv(H[:, s].T @ H[:, s]).trace() * v for s, v in zip(support, (1.0, 2.0))]
    torch.testing.assert_close(got, torch.stack(expected))


def test_nmse_db_of_half_the_signal_is_minus_six_db():
    s = torch.randn(10, 5)
    assert nmse_db(0.5 * s, s) == pytest.approx(10 * math.log10(0.25))


def test_test_set_does_not_depend_on_train_size():
    from mbdl.training.data import SimulatedData

    task = SparseRecovery(n=10, m=20, k=2)
    a, b = SimulatedData(task, seed=4, batch_size=8, n_train=5), SimulatedData(task, seed=4, batch_size=8, n_train=50)
    torch.testing.assert_close(a.split("test")["x"], b.split("test")["x"])
    assert not torch.equal(a.split("train")["x"][:5], SimulatedData(task, seed=5, batch_size=8).split("train")["x"][:5])


@pytest.mark.parametrize(
    ("kwargs", "option"),
    [({"k": 300}, "task.k"), ({"noise_std": -0.1}, "task.noise_std"), ({"m": 0}, "task.m"), ({"operator": "dct"}, "task.operator")],
)
def test_impossible_options_name_the_option(kwargs, option):
    with pytest.raises(ConfigError, match=option):
        SparseRecovery(**kwargs)


@pytest.mark.parametrize("algorithm", ["ista", "fista", "admm"])
def test_matrix_free_convolution_task_gives_the_estimates_of_the_dense_one(algorithm):
    """task.operator=convolution told as a Matrix or matrix-free (decimation, convolution, scaling): same estimates to 1e-8."""
    from mbdl.methods.sparse_recovery import IterativeSolver

    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        dense, free = (SparseRecovery(n=25, m=100, k=3, operator="convolution", psf_width=3.0, matrix_free=flag) for flag in (False, True))
        assert type(dense.assumed.operator).__name__ == "Matrix" and type(free.assumed.operator).__name__ == "Composition"
        data = dense.simulate(32, torch.Generator().manual_seed(0))
        estimates = [IterativeSolver(task.assumed, algorithm, iterations=50, lam=0.01)(data["x"]) for task in (dense, free)]
    finally:
        torch.set_default_dtype(previous)
    torch.testing.assert_close(estimates[1], estimates[0], rtol=0, atol=1e-8)


def test_matrix_free_needs_the_convolution_operator_and_no_mismatch():
    with pytest.raises(ConfigError, match="^task.matrix_free"):
        SparseRecovery(operator="gaussian", matrix_free=True)
    with pytest.raises(ConfigError, match="^task.matrix_free"):
        SparseRecovery(n=25, m=100, operator="convolution", matrix_free=True, mismatch=0.1)
