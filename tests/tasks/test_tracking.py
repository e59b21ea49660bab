"""The tracking task (presets, simulator, mismatch, metric, bound) and its methods."""

from __future__ import annotations

import json
import math

import pytest
import torch

from mbdl.algorithms.kalman import autograd_jacobian
from mbdl.config import ConfigError
from mbdl.methods.tracking import KalmanFilter, KalmanNet, LearnedNoiseKF, RecurrentEstimator, UnfoldedKF
from mbdl.run import build
from mbdl.tasks.state_space import LinearGaussian, canonical, kinematics_1d, lorenz
from mbdl.tasks.tracking import Tracking
from tests.helpers import compose_config, method_loss, run_cli, run_config


def draw(task: Tracking, n: int, seed: int = 0) -> dict[str, torch.Tensor]:
    return task.simulate(n, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(("preset", "n", "m", "steps"), [("canonical_2x2", 2, 2, 100), ("kinematics_1d", 2, 1, 200), ("lorenz", 3, 3, 100)])
def test_presets_are_chosen_as_task_model(preset, n, m, steps):
    task, _, _, _ = build(compose_config("task=tracking", f"task/model={preset}", "method=model_based"))
    assert (task.model.n, task.model.m, task.steps) == (n, m, steps)


def test_kinematics_preset_is_the_books_model():
    model = kinematics_1d()
    dt, var = 0.1, 0.25
    torch.testing.assert_close(model.F, torch.tensor([[1.0, dt], [0.0, 1.0]]))
    torch.testing.assert_close(model.Q, var * torch.tensor([[dt**4 / 4, dt**3 / 2], [dt**3 / 2, dt**2]]))
    torch.testing.assert_close(model.R, torch.tensor([[4.0]]))


def test_simulated_noise_has_the_model_covariances():
    task = Tracking(canonical, snr_db=-3.0, steps=50)
    data = task.simulate(2000, torch.Generator().manual_seed(0))
    model = task.model
    s, x = data["s"].double(), data["x"].double()
    previous = torch.cat([torch.zeros(2000, 1, 2, dtype=torch.float64), s[:, :-1]], 1)
    v, w = (s - previous @ model.F.double().T).reshape(-1, 2), (x - s).reshape(-1, 2)
    torch.testing.assert_close(v.T @ v / len(v), model.Q.double(), rtol=0, atol=0.03 * model.Q[0, 0].item())
    torch.testing.assert_close(w.T @ w / len(w), model.R.double(), rtol=0, atol=0.03 * model.R[0, 0].item())


def test_lorenz_taylor_step_and_its_jacobian():
    model = lorenz(taylor_order=12).to(torch.zeros((), dtype=torch.float64))
    s = 10 * torch.randn(5, 3, dtype=torch.float64)
    exact = (torch.linalg.matrix_exp(model.dt * model.dynamics(s)) @ s.unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(model.f(s), exact)
    order5 = lorenz().to(s)
    torch.testing.assert_close(order5.jacobian_f(s), autograd_jacobian(order5.f)(s))


def test_bound_is_the_true_kf_and_rotated_h_hurts():
    true_task = Tracking(canonical, steps=100)
    data = draw(true_task, 300)
    kf = true_task.model.filter(data["x"].double())
    assert true_task.references(data)["mse_db"].value == pytest.approx(true_task.evaluate(kf.s, data)["mse_db"])
    rotated = Tracking(canonical, steps=100, mismatch={"H_rotation_deg": 10.0})
    mismatched = rotated.evaluate(KalmanFilter(rotated.assumed)(data["x"]), data)["mse_db"]
    assert mismatched > true_task.references(data)["mse_db"].value + 10.0  # KalmanNet's table: 4.51 vs -7.49 dB


@pytest.mark.parametrize(
    ("preset", "mismatch", "option"),
    [
        (kinematics_1d, {"H_rotation_deg": 10.0}, "task.mismatch.H_rotation_deg"),
        (canonical, {"taylor_order": 2}, "task.mismatch.taylor_order"),
        (lorenz, {"F_rotation_deg": 5.0}, "task.mismatch.F_rotation_deg"),
        (canonical, {"Q_scale": 0.0}, "task.mismatch.Q_scale"),
    ],
)
def test_impossible_mismatch_is_refused(preset, mismatch, option):
    with pytest.raises(ConfigError, match=f"^{option}"):
        Tracking(preset, mismatch=mismatch)


def test_unsupervised_loss_is_the_innovation_power_of_the_kf():
    """For the KF with the true model the observation-prediction loss is tr(H P_prior Hᵀ + R)/m on average."""
    task = Tracking(canonical, steps=100)
    data = draw(task, 500)
    estimate = KalmanFilter(task.assumed)(data["x"])
    result = task.model.filter(data["x"].double())
    torch.testing.assert_close(task.unsupervised_loss(estimate, data["x"]).double(), result.innovation.square().mean(), rtol=1e-4, atol=0)
    assert task.unsupervised_loss(estimate, data["x"]) < task.unsupervised_loss(0.9 * estimate, data["x"])


def test_untrained_unfolded_kf_is_the_kf_and_lorenz_filters_run():
    task = Tracking(canonical, steps=30)
    data = draw(task, 20)
    torch.testing.assert_close(UnfoldedKF(task.assumed)(data["x"]), KalmanFilter(task.assumed)(data["x"]), rtol=1e-5, atol=1e-5)
    shorter = UnfoldedKF(task.assumed, iterations=10, mode="shared")(data["x"])
    assert shorter.shape == data["s"].shape
    chaotic = Tracking(lorenz, steps=30, mismatch={"taylor_order": 2})
    data = draw(chaotic, 10)
    for method in (KalmanFilter(chaotic.assumed), UnfoldedKF(chaotic.assumed), LearnedNoiseKF(chaotic.assumed), KalmanNet(chaotic.assumed)):
        assert torch.isfinite(method(data["x"])).all()


def train(method, task, data, steps: int, lr: float, kind: str = "supervised") -> list[float]:
    optimizer = torch.optim.Adam(method.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = method_loss(method, task, data, kind)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def test_learned_optimizer_recovers_a_known_q():
    """Supervised training through the filter finds the true Q (R known) from Q = I."""
    dtype = torch.float64
    eye = torch.eye(2, dtype=dtype)
    true_Q = torch.tensor([[0.5, 0.0], [0.0, 0.1]], dtype=dtype)
    model = LinearGaussian(eye, true_Q, eye, torch.zeros(2, dtype=dtype), eye, (0,), 0.9 * eye)
    task = Tracking(lambda: model, steps=40, mismatch={"Q_identity": True})
    data = {k: v.double() for k, v in draw(task, 300).items()}
    method = LearnedNoiseKF(task.assumed, learn_Q=True, learn_R=False).double()
    train(method, task, data, steps=100, lr=0.05)
    torch.testing.assert_close(method.Q().detach(), true_Q, rtol=0, atol=0.06)


def test_learned_optimizer_can_learn_f_on_linear_models_only():
    task = Tracking(canonical, steps=30, mismatch={"F_rotation_deg": 20.0})
    data = draw(task, 64)
    method = LearnedNoiseKF(task.assumed, learn_Q=False, learn_R=False, learn_F=True)
    assert method.trainable_parameters == 4
    losses = train(method, task, data, steps=20, lr=0.02)
    assert losses[-1] < 0.5 * losses[0]
    with pytest.raises(ConfigError, match="^method.learn_F"):
        LearnedNoiseKF(Tracking(lorenz, steps=10).assumed, learn_F=True)


def test_kalmannet_is_nan_safe_and_clips_its_gradients():
    task = Tracking(canonical, steps=20)
    data = draw(task, 16)
    net = KalmanNet(task.assumed, grad_clip=0.5)
    zeros = torch.zeros(16, 2)
    net.net.reset(16, zeros)
    assert torch.isfinite(net.net(zeros, zeros, zeros, zeros)).all()  # F1-F4 vanish at the first step
    (1e6 * method_loss(net, task, data)).backward()
    assert all(p.grad.norm() <= 0.5 + 1e-6 for p in net.parameters())


@pytest.mark.parametrize("kind", ["supervised", "unsupervised"])
def test_kalmannet_learns_in_both_regimes(kind):
    task = Tracking(canonical, steps=30, mismatch={"H_rotation_deg": 10.0})
    data = draw(task, 32)
    net = KalmanNet(task.assumed)
    losses = train(net, task, data, steps=20, lr=3e-3, kind=kind)
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_black_box_learns(cell):
    task = Tracking(canonical, steps=30)
    data = draw(task, 64)
    losses = train(RecurrentEstimator(task.assumed, cell=cell, hidden_size=16, layers=1), task, data, steps=30, lr=1e-2)
    assert losses[-1] < 0.5 * losses[0]


def test_run_record_has_full_state_and_position_metrics(tmp_path):
    small = ("task=tracking", "task.steps=20", "task.n_train=16", "task.n_val=8", "task.n_test=32")
    (tmp_path / "kf").mkdir()
    record = run_config(tmp_path / "kf", *small, "method=model_based")
    for key in ("test/mse_db", "test/position_mse_db", "bound/mse_db", "bound/position_mse_db"):
        assert math.isfinite(record[key])
    assert record["test/mse_db"] == pytest.approx(record["bound/mse_db"], abs=1e-4)
    assert (tmp_path / "kf" / "figure.png").exists()
    trained = run_config(tmp_path / "lo", *small, "method=learned_optimizer", "method.optim.epochs=2", "task.mismatch.Q_scale=100")
    assert trained["params"] == 6 and trained["test/mse_db"] > trained["bound/mse_db"]


def test_cli_selects_a_preset_and_a_mismatch(outputs):
    done = run_cli(
        "task=tracking", "task/model=kinematics_1d", "task.mismatch.Q_identity=true", "method=model_based",
        "task.n_test=16", "task.n_train=4", "task.n_val=4", "threads=1", outputs=outputs,
    )
    assert done.returncode == 0, done.stderr
    (path,) = outputs.rglob("metrics.json")
    record = json.loads(path.read_text())
    assert record["test/position_mse"] > record["bound/position_mse"]


def test_learned_v_from_20_trajectories_reaches_full_knowledge():
    """Book Ex. 5.2 with the experiment's settings in a plain loop: V = I told, V learned (R known)."""
    from mbdl.training.data import split_generator

    task = Tracking(kinematics_1d, steps=200, mismatch={"Q_identity": True})
    train_set, test_set = task.simulate(20, split_generator(0, "train")), task.simulate(200, split_generator(0, "test"))
    method = LearnedNoiseKF(task.assumed, learn_R=False)
    wrong = task.evaluate(method(test_set["x"]).detach(), test_set)["position_mse"]
    train(method, task, train_set, steps=25, lr=0.2)
    learned = task.evaluate(method(test_set["x"]).detach(), test_set)["position_mse"]
    full = task.references(test_set)["position_mse"].value
    assert wrong > 3 * full and learned < 1.1 * full


@pytest.mark.slow
@pytest.mark.parametrize(("experiment", "tolerance_db"), [("kalmannet_canonical", 0.2), ("kalmannet_canonical_rotated_h", 1.5)])
def test_kalmannet_reaches_the_true_model_kf(tmp_path, experiment, tolerance_db):
    """KalmanNet's published claims on the canonical 2x2 model (the full experiment: minutes)."""
    (tmp_path / "run").mkdir()
    record = run_config(tmp_path / "run", f"experiment={experiment}")
    assert record["test/mse_db"] < record["bound/mse_db"] + tolerance_db
