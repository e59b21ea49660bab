"""Generative versus discriminative learning through the runner: task=linear_gaussian (book Ex. 5.1) and
regime=generative on tracking, sparse recovery and DoA; the refusals; the data-efficiency sweep over both regimes.

Tolerances come from the sample sizes: a run's test MSE is compared with the distribution of one run (the spread
of the exact MSE over training sets, in closed form from :mod:`mbdl.algorithms.linear_gaussian`, plus the test
set's Monte-Carlo spread) within 4 standard deviations.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch

from mbdl.algorithms.calibration import Calibration, calibrate_gain_phase
from mbdl.algorithms.linear_gaussian import BOOK_EX51_PUBLISHED, book_ex51, book_ex51_H, discriminative_estimator, generative_estimator
from mbdl.algorithms.subspace import sample_covariance
from mbdl.config import ConfigError
from mbdl.results.compare import compare
from mbdl.results.dashboard import Charts, TaskCharts
from mbdl.run import build, fit, make_method
from tests.helpers import compose_config, poison_true_model, run_cli, run_config

GAUSSIAN = ("task=linear_gaussian",)


def fitted(tmp_path, *overrides: str):
    """Build a run and fit its method (closed form or gradient), without evaluating: task, method, training data."""
    cfg = compose_config("~logger", "trainer.enable_progress_bar=false", *overrides)
    task, method, data, module = build(cfg)
    fit(cfg, module, data, str(tmp_path))
    return task, method, data.split("train")


# ---------------------------------------------------------------- task=linear_gaussian (book Ex. 5.1)


def notebook_mmse(sigma: float) -> float:
    """tr(C - C Hᵀ (H C Hᵀ + σ² I)⁻¹ H C) for the notebook's H and C_ss = toeplitz(0.2 e^{-k}), in numpy."""
    H = np.random.RandomState(12).randn(30, 30)
    C = scipy.linalg.toeplitz(0.2 * np.exp(-np.arange(30.0)))
    S = H @ C @ H.T + sigma**2 * np.eye(30)
    return float(np.trace(C - C @ H.T @ np.linalg.solve(S, H @ C)))


@pytest.mark.parametrize(("overrides", "sigma"), [(("task.noise_std=0.3",), 0.3), (("task.snr_db=20",), 0.1), (("task.noise_std=0.01",), 0.01)])
def test_the_bound_is_the_closed_form_mmse_of_the_true_model(tmp_path, overrides, sigma):
    record = run_config(tmp_path, *GAUSSIAN, "method=model_based", "task.n_test=200", "task.n_val=10", *overrides)
    assert record["bound/mse"] == pytest.approx(notebook_mmse(sigma), rel=1e-9)
    assert record["reference_names"]["mse"] == "MMSE with the true model (closed form)"
    assert record["test/mse"] > record["bound/mse"], "the told H is perturbed by default"


def one_run_spread(name: str, n_train: int, prior: torch.Tensor | None = None, replicas: int = 100) -> tuple[float, float]:
    """Mean and standard deviation of one run's test MSE (10 000 test draws) of ``name`` trained on ``n_train`` pairs."""
    model = book_ex51(0.3, book_ex51_H())
    s, x = model.simulate(n_train, torch.Generator().manual_seed(n_train), (replicas,))
    if name == "discriminative":
        estimator = discriminative_estimator(s, x)
    else:
        estimator = generative_estimator(s, x, model.prior_mean, model.prior_covariance if prior is None else prior, model.noise_var)
    exact = estimator.mse(model)
    test = estimator.squared_error_variance(model).mean() / 10000
    return exact.mean().item(), math.sqrt(exact.var().item() + test.item())


RULES = {"discriminative": ("method=black_box",), "generative": ("method=model_based", "regime=generative")}


def test_discriminative_and_generative_approach_the_mmse_as_the_training_set_grows(tmp_path):
    mse = {}
    for name, overrides in RULES.items():
        for n_train in (100, 1000):
            record = run_config(tmp_path / f"{name}{n_train}", *GAUSSIAN, *overrides, f"regime.n_train={n_train}", "task.n_val=10")
            mean, spread = one_run_spread(name, n_train)
            assert abs(record["test/mse"] - mean) < 4 * spread, (name, n_train, record["test/mse"], mean, spread)
            mse[name, n_train] = record["test/mse"] - record["bound/mse"]
    for name in RULES:
        assert mse[name, 1000] < mse[name, 100] / 4 and mse[name, 1000] < 0.05, "the excess over the MMSE falls like 1/n_train"
    assert mse["generative", 100] < mse["discriminative", 100], "with the right prior, generative learning needs fewer samples"


def test_with_the_prior_told_as_identity_generative_learning_stalls_above_the_mmse(tmp_path):
    record = run_config(tmp_path, *GAUSSIAN, "method=model_based", "regime=generative", "regime.n_train=1000", "task.mismatch.prior_identity=true", "task.n_val=10")
    mean, spread = one_run_spread("generative", 1000, torch.eye(30, dtype=torch.float64))
    assert abs(record["test/mse"] - mean) < 4 * spread
    discriminative = run_config(tmp_path / "d", *GAUSSIAN, "method=black_box", "regime.n_train=1000", "task.mismatch.prior_identity=true", "task.n_val=10")
    assert discriminative["test/mse"] < record["test/mse"] - 0.15, "the discriminative rule does not use the prior"


def numpy_least_squares(u: torch.Tensor, y: torch.Tensor, intercept: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``A, c`` of ``y ≈ A u + c`` by ``numpy.linalg.lstsq``."""
    design = np.hstack([u.numpy(), np.ones((len(u), 1))]) if intercept else u.numpy()
    solution = np.linalg.lstsq(design, y.numpy(), rcond=None)[0].T
    return (solution[:, :-1], solution[:, -1]) if intercept else (solution, np.zeros(len(solution)))


#: the notebook's columns as runs: discriminative, generative, the MMSE estimator (H told exactly), generative with C_ss told as I.
NOTEBOOK_COLUMNS = (
    ("method=black_box",),
    ("method=model_based", "regime=generative"),
    ("method=model_based", "task.mismatch.H=0"),
    ("method=model_based", "regime=generative", "task.mismatch.prior_identity=true"),
)


@pytest.mark.slow
def test_the_notebooks_five_points_through_the_runner(tmp_path):
    """Every column at every published point over 8 seeds: the notebook's single run lies within 4 standard deviations
    of one run (the spread over seeds, plus half its last printed digit) of our mean."""
    for (n_train, sigma), published in BOOK_EX51_PUBLISHED.items():
        for overrides, value in zip(NOTEBOOK_COLUMNS, published):
            mse = [
                run_config(tmp_path / f"{n_train}_{sigma}_{seed}", *GAUSSIAN, *overrides, f"regime.n_train={n_train}", f"task.noise_std={sigma}", f"seed={seed}", "task.n_val=10")["test/mse"]
                for seed in range(8)
            ]
            rounding = 5e-4 if sigma > 0.01 else 5e-5
            assert abs(np.mean(mse) - value) < 4 * np.std(mse, ddof=1) + rounding, (n_train, sigma, overrides, np.mean(mse), value)


def test_the_fits_are_the_books_least_squares(tmp_path):
    """Black box: Ĉsx Ĉxx⁻¹ (least squares of s on x); model-based generative: Ĥ by least squares of x on s, then the MMSE rule."""
    _, black_box, train = fitted(tmp_path, *GAUSSIAN, "method=black_box", "regime.n_train=80")
    (layer,) = black_box.net.net
    W, b = numpy_least_squares(train["x"], train["s"])
    np.testing.assert_allclose(layer.weight.detach().numpy(), W, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(layer.bias.detach().numpy(), b, rtol=1e-8, atol=1e-10)
    assert black_box.fitted_parameters == 30 * 31

    task, generative, train = fitted(tmp_path, *GAUSSIAN, "method=model_based", "regime=generative", "regime.n_train=80")
    H, mu = numpy_least_squares(train["s"], train["x"])
    C, sigma2 = task.assumed.prior_covariance.numpy(), task.assumed.noise_var
    x = train["x"][:5].numpy()
    expected = (C @ H.T @ np.linalg.solve(H @ C @ H.T + sigma2 * np.eye(30), (x - mu).T)).T  # μ_s = 0
    np.testing.assert_allclose(generative(train["x"][:5]).detach().numpy(), expected, rtol=1e-7, atol=1e-9)


def test_trained_through_the_rule_h_improves_on_the_told_guess(tmp_path):
    told = run_config(tmp_path / "told", *GAUSSIAN, "method=model_based", "task.n_val=100", "task.n_test=2000")
    trained = run_config(tmp_path / "trained", *GAUSSIAN, "method=learned_optimizer", "task.n_val=100", "task.n_test=2000", "method.optim.epochs=40")
    assert trained["test/mse"] < told["test/mse"] - 0.02 and trained["params"] == 30 * 31


# ---------------------------------------------------------------- regime=generative on the existing tasks


def position_ratio(record: dict) -> float:
    return record["test/position_mse"] / record["bound/position_mse"]


def test_book_ex52_generative_q_from_20_labelled_trajectories_within_2_percent(tmp_path):
    record = run_config(tmp_path, "experiment=book_learned_v", "regime=generative")
    assert position_ratio(record) < 1.02 and record["params"] == 3


def test_book_ex52_em_without_labels_within_5_percent(tmp_path):
    """40 over-relaxed EM iterations (the fit has settled by then: 1.022, 1.026, 1.039 on three seeds against 1.022,
    1.026, 1.040 after 100); the slow test runs the configured 100 on five seeds."""
    record = run_config(tmp_path, "experiment=book_learned_v", "regime=generative", "regime.loss=unsupervised", "method.em_iterations=40")
    assert position_ratio(record) < 1.05


@pytest.mark.slow
def test_book_ex52_targets_hold_over_seeds(tmp_path):
    """Five seeds (training and test sets): labelled fit within 2 %, EM within 5 %, as the discriminative learned V."""
    for seed in range(5):
        for extra, target in ((("regime=generative",), 1.02), (("regime=generative", "regime.loss=unsupervised"), 1.05), (("regime=supervised",), 1.02)):
            record = run_config(tmp_path / f"{seed}{len(extra)}{target}", "experiment=book_learned_v", *extra, f"seed={seed}")
            assert position_ratio(record) < target, (seed, extra, position_ratio(record))


def test_tracking_generative_fit_of_q_r_and_f_is_the_labelled_ml_estimate(tmp_path):
    """Q, R and F of the canonical model from labelled trajectories: the sample moments of the residuals, in numpy."""
    _, method, train = fitted(tmp_path, "task=tracking", "task.steps=20", "task.n_train=50", "task.n_val=4", "task.n_test=4", "method=learned_optimizer", "method.learn_F=true", "regime=generative")
    s, x = train["s"].double().numpy(), train["x"].double().numpy()
    previous = np.concatenate([np.zeros((50, 1, 2)), s[:, :-1]], 1).reshape(-1, 2)
    current = s.reshape(-1, 2)
    F = np.linalg.lstsq(previous, current, rcond=None)[0].T
    v, w = current - previous @ F.T, x.reshape(-1, 2) - current
    np.testing.assert_allclose(method.F.detach().numpy(), F, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(method.Q().detach().double().numpy(), v.T @ v / len(v), rtol=1e-3, atol=1e-7)
    np.testing.assert_allclose(method.R().detach().double().numpy(), w.T @ w / len(w), rtol=1e-3, atol=1e-6)
    assert method.fitted_parameters == 3 + 3 + 4


def test_sparse_recovery_fits_h_toward_the_told_one_and_beats_it(tmp_path):
    tiny = ("task.n=20", "task.m=30", "task.k=3", "task.n_val=10", "task.n_test=300", "task.mismatch=0.3", "regime.n_train=300")
    task, method, train = fitted(tmp_path, *tiny, "method=model_based", "method.algorithm=fista", "regime=generative", "method.ridge=0.05")
    told = task.assumed.operator.H.double()
    s, x = train["s"].double(), train["x"].double()
    design = np.vstack([s.numpy(), math.sqrt(0.05) * np.eye(30)])
    target = np.vstack([(x - s @ told.T).numpy(), np.zeros((30, 20))])
    expected = told.numpy() + np.linalg.lstsq(design, target, rcond=None)[0].T
    np.testing.assert_allclose(method.algorithm.operator.H.double().numpy(), expected, rtol=1e-4, atol=1e-5)
    generative = run_config(tmp_path / "g", *tiny, "method=model_based", "method.algorithm=fista", "regime=generative", "method.ridge=0.05")
    model_based = run_config(tmp_path / "m", *tiny, "method=model_based", "method.algorithm=fista")
    assert generative["test/nmse_db"] < model_based["test/nmse_db"] - 3 and generative["params"] == 20 * 30


def test_the_doa_calibration_fit_is_the_correction_the_estimator_applies(tmp_path):
    """The runner's generative fit is calibrate_gain_phase on the labelled samples, and SubspaceEstimator.covariance
    applies exactly Calibration.apply."""
    setup = ("experiment=doa_calibration", "regime=generative", "regime.n_train=200", "task.n_val=10", "task.n_test=10")
    task, method, train = fitted(tmp_path, *setup)
    P = task.source_power * torch.eye(3, dtype=torch.complex128)
    R = sample_covariance(train["x"].to(torch.complex128))
    expected = calibrate_gain_phase(R, task.assumed.array.steering(train["s"].double()), P, 1.0)
    torch.testing.assert_close(method.log_gain.double(), expected.log_gain, rtol=0, atol=1e-6)
    torch.testing.assert_close(method.phase.double(), expected.phase, rtol=0, atol=1e-6)
    calibration = Calibration(method.log_gain.detach().double(), method.phase.detach().double())
    x = train["x"][:6].to(torch.complex128)
    torch.testing.assert_close(method.covariance(x).to(torch.complex128), calibration.apply(sample_covariance(x)), rtol=1e-5, atol=1e-6)
    # about 1/sqrt(n T) = 0.005 of sampling error per parameter (tests/algorithms/test_generative_algorithms.py)
    assert (method.log_gain.double() - task.true_array.gain.log()).abs().max() < 0.025
    assert (method.phase.double() - task.true_array.phase).abs().max() < 0.025


def test_the_doa_generative_calibration_approaches_the_crb(tmp_path):
    setup = ("experiment=doa_calibration", "task.n_val=10", "task.n_test=300")
    generative = run_config(tmp_path / "g", *setup, "regime=generative", "regime.n_train=100")
    nominal = run_config(tmp_path / "m", *setup, "method=model_based", "method.algorithm=esprit")
    assert generative["test/rmspe_deg"] < 2.0 * generative["bound/rmspe_deg"] < nominal["test/rmspe_deg"] / 10


# ---------------------------------------------------------------- the contract and the refusals


GENERATIVE_PAIRS = [
    ("experiment=book_learned_v", "task.n_test=4", "task.steps=30"),
    ("experiment=book_learned_v", "task.n_test=4", "task.steps=30", "regime.loss=unsupervised", "method.em_iterations=5"),
    ("task=sparse_recovery", "task.n=20", "task.m=30", "task.k=2", "task.n_train=50", "task.mismatch=0.1", "method=model_based"),
    ("experiment=doa_calibration", "task.n_train=50", "method.calibration=phase"),
    (*GAUSSIAN, "method=model_based", "task.n_train=40"),
]


@pytest.mark.parametrize("setup", GENERATIVE_PAIRS, ids=lambda s: " ".join(s[:2]))
def test_generative_fits_touch_only_the_assumed_model(setup):
    """Fitted with the true model poisoned (NaNs), a method gives the estimates it gives without, to rounding: any
    use of the true model would give NaNs. Not bit for bit: a method built and fitted anew, with nothing poisoned,
    already differs from the first in the last bits (3e-15 in float64 for linear_gaussian's model-based method,
    measured on 2026-12-03), and bit equality failed on that pair run alone."""
    cfg = compose_config(*setup, "regime=generative", "task.n_val=4")
    task, method, data, _ = build(cfg)
    train, x = data.split("train"), data.split("train")["x"][:4]
    labels = train["s"] if cfg.regime.loss == "supervised" else None
    method.fit_model(train["x"], labels)
    expected = method(x).detach()
    poison_true_model(task)
    again = make_method(cfg, task.assumed)
    again.fit_model(train["x"], labels)
    torch.testing.assert_close(again(x).detach(), expected, rtol=1e-12, atol=1e-12)


def test_the_black_box_least_squares_is_also_a_closed_form_with_labels_only():
    _, method, _, _ = build(compose_config(*GAUSSIAN, "method=black_box"))
    assert method.closed_form.learning == "discriminative"
    _, method, _, _ = build(compose_config(*GAUSSIAN, "method=black_box", "method.fit=gradient", "method.hidden=[8]"))
    assert method.closed_form is None


REFUSED = [
    ((*GAUSSIAN, "method=black_box", "regime=generative"), "regime: generative learning fits the unknown parts of the assumed model"),
    (("task=tracking", "method=model_based", "regime=generative"), "regime: generative learning"),
    (("task=tracking", "task/model=lorenz", "method=learned_optimizer", "regime=generative"), "regime: generative learning"),
    (("task=doa", "method=model_based", "regime=generative"), "regime: generative learning"),
    (("task=sparse_recovery", "method=unfolded", "regime=generative"), "regime: generative learning"),
    (("task=doa", "method=learned_optimizer", "regime=generative", "regime.loss=unsupervised"), "regime.loss: SubspaceEstimator's generative fit learns from supervised data"),
    ((*GAUSSIAN, "method=black_box", "regime=unsupervised"), "regime.loss: AffineNetwork's discriminative fit learns from supervised data"),
    ((*GAUSSIAN, "method=model_based", "regime=generative", "regime.fresh_data=true"), "regime.fresh_data: a closed-form fit uses the fixed training set"),
    ((*GAUSSIAN, "method=black_box", "method.hidden=[8]"), "method.fit: least_squares fits a linear layer"),
    ((*GAUSSIAN, "method=model_based", "regime.learning=maybe"), "regime.learning: got 'maybe'"),
    ((*GAUSSIAN, "+task.mismatch.C=1"), "task.mismatch: unknown keys"),
    ((*GAUSSIAN, "task.observation=notebook", "task.n=20"), "task.observation: the notebook's H is 30 x 30"),
]


@pytest.mark.parametrize(("overrides", "message"), REFUSED, ids=lambda v: v if isinstance(v, str) else " ".join(v[1:]))
def test_a_pair_without_meaning_is_refused_before_any_work(overrides, message):
    with pytest.raises(Exception) as info:
        build(compose_config(*overrides))
    error = info.value
    while not isinstance(error, ConfigError) and error.__cause__ is not None:  # Hydra wraps the task's errors
        error = error.__cause__
    assert isinstance(error, ConfigError) and str(error).startswith(message) and "\n" not in str(error)


# ---------------------------------------------------------------- the data-efficiency sweep over both regimes


def test_data_efficiency_sweep_over_both_regimes_draws_both_lines_per_method(outputs, tmp_path):
    done = run_cli(
        "-m", "sweep=data_efficiency", *GAUSSIAN, "method=model_based", "regime=supervised,generative", "regime.n_train=50,400", "seed=0",
        "task.n_val=10", "task.n_test=500", outputs=outputs,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("[ok] linear_gaussian model_based generative") == 2 and done.stdout.count("[ok] linear_gaussian model_based supervised") == 2
    (root,) = (outputs / "sweeps").glob("*/*")
    result = compare([root], tmp_path / "comparison")
    rows = {(r["regime"], r["override:regime.n_train"]): r["test/mse"] for r in result["rows"]}
    assert rows["generative", 400] < rows["generative", 50] and rows["supervised", 400] == rows["supervised", 50], "only the fitted rule learns"
    lines = {line.label: line for line in TaskCharts(result["runs"], result["swept"], Charts()).spectrum_series()}
    assert {"model_based supervised", "model_based generative"} <= lines.keys() and sum(name.startswith("bound: MMSE") for name in lines) == 1
    assert len(lines) == 3 and all(len(line.x) == 2 for line in lines.values()), "each regime's line and the bound, at both sizes"
    html = result["paths"]["dashboard"].read_text()
    assert all(name in html for name in lines), "the dashboard draws them"
