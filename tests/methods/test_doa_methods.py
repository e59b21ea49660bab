"""The DoA spectrum: every method runs, the learned ones learn, through the runner too."""

from __future__ import annotations

import math

import pytest
import torch

from mbdl.config import ConfigError
from mbdl.methods.doa import (
    CovarianceLISTA,
    DeepCNN,
    SubspaceEstimator,
    SubspaceNet,
    angle_grid,
    grid_labels,
    lagged_autocorrelations,
)
from mbdl.tasks.doa import DoA
from tests.helpers import method_loss, run_config

TINY = ("task=doa", "task.n_train=256", "task.n_val=128", "task.n_test=128")


def fit(method, task, data, steps: int, lr: float) -> None:
    """A few full-batch Adam steps on the supervised loss."""
    optimizer = torch.optim.Adam(method.parameters(), lr=lr)
    method.train()
    for _ in range(steps):
        optimizer.zero_grad()
        method_loss(method, task, data).backward()
        optimizer.step()
    method.eval()


def test_grid_labels_mark_the_nearest_grid_points():
    grid = angle_grid(1.0)
    assert len(grid) == 180 and grid[0] == pytest.approx(-math.pi / 2) and grid[-1] == pytest.approx(math.radians(89.0))
    labels = grid_labels(torch.deg2rad(torch.tensor([[89.8, 10.4, 44.6]])), grid)  # 89.8° is nearest to -90°
    assert labels.sum() == 3 and labels[0, [0, 100, 135]].tolist() == [1.0, 1.0, 1.0]
    soft = grid_labels(torch.deg2rad(torch.tensor([[89.5, 10.0]])), grid, width=1.0)
    assert soft[0, 100].item() == pytest.approx(1.0) and soft[0, 101].item() == pytest.approx(math.exp(-0.5))
    assert soft[0, 0].item() == pytest.approx(math.exp(-0.125), rel=1e-5) and soft[0, -1].item() == pytest.approx(math.exp(-0.125), rel=1e-5)  # wraps


def test_lagged_autocorrelations_match_their_definition():
    x = torch.randn(2, 3, 10, dtype=torch.complex128)
    lagged = lagged_autocorrelations(x, 3)
    expected = sum(torch.outer(x[1, :, t + 2], x[1, :, t].conj()) for t in range(8)) / 8
    torch.testing.assert_close(lagged[1, 2], expected)
    torch.testing.assert_close(lagged[:, 0], x @ x.mH / 10)


@pytest.mark.parametrize("algorithm", ["music", "root_music", "esprit"])
def test_model_based_methods_reach_the_crb_at_high_snr(algorithm):
    task = DoA(snr_db=30.0, snapshots=200, angle_range_deg=(-60.0, 60.0))
    data = task.simulate(200, torch.Generator().manual_seed(0))
    metrics, bound = task.evaluate(SubspaceEstimator(task.assumed, algorithm)(data["x"]), data), task.references(data)["rmspe_deg"]
    assert bound.is_bound, "within ±60° the pooled CRB is declared a bound"
    assert 0.8 * bound.value < metrics["rmspe_deg"] < 2.0 * bound.value  # 200 samples: MUSIC may dip below


def test_spatial_smoothing_helps_with_coherent_sources():
    task = DoA(snr_db=20.0, coherent=True, angle_range_deg=(-60.0, 60.0))
    data = task.simulate(200, torch.Generator().manual_seed(0))
    plain = task.evaluate(SubspaceEstimator(task.assumed, "esprit")(data["x"]), data)["rmspe_deg"]
    smoothed = task.evaluate(SubspaceEstimator(task.assumed, "esprit", "spatial_fb")(data["x"]), data)["rmspe_deg"]
    assert smoothed < plain / 3


def test_learned_calibration_undoes_gain_and_phase_errors():
    """Trained through differentiable ESPRIT, the calibration brings the mismatched array back near the ideal one."""
    kwargs = {"snr_db": 20.0, "angle_range_deg": (-60.0, 60.0), "gain_error": 0.2, "phase_error": 0.4}
    task = DoA(**kwargs)
    train, test = task.simulate(256, torch.Generator().manual_seed(0)), task.simulate(256, torch.Generator().manual_seed(1))
    method = SubspaceEstimator(task.assumed, "esprit", calibration="gain_phase")
    before = task.evaluate(method(test["x"]), test)["rmspe_deg"]
    fit(method, task, train, steps=150, lr=0.02)
    after = task.evaluate(method(test["x"]), test)["rmspe_deg"]
    ideal = task.evaluate(SubspaceEstimator(DoA(**{**kwargs, "gain_error": 0.0, "phase_error": 0.0}).assumed, "esprit")(test["x"]), test)["rmspe_deg"]
    assert after < before / 3 and after < 2 * ideal
    torch.testing.assert_close(method.phase.detach() - method.phase.detach()[0], task.true_array.phase.float(), atol=0.05, rtol=0)


@pytest.mark.parametrize("method_class", [DeepCNN, CovarianceLISTA, SubspaceNet])
def test_learned_methods_lower_their_training_loss(method_class):
    torch.manual_seed(0)
    task = DoA(snr_db=20.0, angle_range_deg=(-60.0, 60.0))
    data = task.simulate(128, torch.Generator().manual_seed(0))
    method = method_class(task.assumed)
    assert method(data["x"]).shape == (128, 3)
    method.train()
    before = method_loss(method, task, data).item()
    fit(method, task, data, steps=15, lr=1e-3)
    method.train()
    assert method_loss(method, task, data).item() < before


def test_lista_starts_as_ista_on_the_covariance_and_yields_every_layer():
    task = DoA(snr_db=30.0, angle_range_deg=(-60.0, 60.0), grid_deg=1.0, snapshots=500)
    data = task.simulate(64, torch.Generator().manual_seed(0))
    method = CovarianceLISTA(task.assumed, iterations=200, lam=0.01)
    iterates = list(method.iterates(data["x"]))
    assert len(iterates) == 200
    first, last = (task.evaluate(a, data)["rmspe_deg"] for a in (iterates[0], iterates[-1]))
    assert last < first and last < 3.0  # the untrained network is ISTA on the LASSO


def test_subspacenet_covariance_is_hermitian_positive_definite():
    task = DoA()
    data = task.simulate(4, torch.Generator().manual_seed(0))
    R = SubspaceNet(task.assumed, epsilon=0.5).covariance(data["x"])
    torch.testing.assert_close(R, R.mH)
    assert torch.linalg.eigvalsh(R).min() >= 0.5 - 1e-4


def test_the_cnn_needs_labels():
    task = DoA()
    with pytest.raises(ConfigError, match="regime.loss"):
        method_loss(DeepCNN(task.assumed), task, task.simulate(4, torch.Generator().manual_seed(0)), "unsupervised")


@pytest.mark.parametrize(
    ("method_class", "kwargs", "option"),
    [
        (SubspaceEstimator, {"algorithm": "capon"}, "method.algorithm"),
        (SubspaceEstimator, {"smoothing": "spatial", "subarray": 3}, "method.subarray"),
        (SubspaceEstimator, {"calibration": "position"}, "method.calibration"),
        (SubspaceEstimator, {"train_algorithm": "music"}, "method.train_algorithm"),
        (SubspaceNet, {"lags": 100}, "method.lags"),
    ],
)
def test_impossible_method_options_name_the_option(method_class, kwargs, option):
    with pytest.raises(ConfigError, match=option):
        method_class(DoA().assumed, **kwargs)


@pytest.mark.parametrize(
    ("method", "extra"),
    [
        ("model_based", ()),
        ("learned_optimizer", ("method.optim.epochs=1", "task.phase_error=0.3")),
        ("black_box", ("method.optim.epochs=1",)),
        ("unfolded", ("method.optim.epochs=1", "method.iterations=3")),
        ("dnn_aided", ("method.optim.epochs=1",)),
    ],
)
def test_every_point_of_the_spectrum_runs_and_records_rmspe_and_the_crb(tmp_path, method, extra):
    record = run_config(tmp_path, *TINY, f"method={method}", *extra)
    # on the full ±90° range the pooled CRB is a reference; within ±60° of broadside it is a bound
    for key in ("test/rmspe_deg", "test/rmspe_rad", "reference/rmspe_deg", "reference/rmspe_rad", "bound/rmspe_broadside_deg"):
        assert math.isfinite(record[key]), key
    assert "bound/rmspe_deg" not in record and "CRB" in record["reference_names"]["rmspe_deg"]
    assert record["test/rmspe_rad"] == pytest.approx(math.radians(record["test/rmspe_deg"]))
    assert (tmp_path / "figure.png").exists()


@pytest.mark.parametrize("method", ["dnn_aided", "unfolded", "learned_optimizer"])
def test_unsupervised_training_runs(tmp_path, method):
    record = run_config(tmp_path, *TINY, f"method={method}", "regime=unsupervised", "method.optim.epochs=1")
    assert math.isfinite(record["test/rmspe_deg"])


@pytest.mark.slow
def test_subspacenet_beats_esprit_on_coherent_sources(tmp_path):
    """A short SubspaceNet training (10 000 samples, 4 epochs, ~1 min) against ESPRIT on the coherent benchmark."""
    setup = ("experiment=doa_subspacenet_coherent", "task.n_train=10000", "method.optim.epochs=4")
    learned = run_config(tmp_path / "net", *setup)
    classical = run_config(tmp_path / "esprit", *setup, "method=model_based", "method.algorithm=esprit")
    assert learned["test/mean_rmspe_rad"] < 0.5 * classical["test/mean_rmspe_rad"]
