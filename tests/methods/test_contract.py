"""The contract between a task and its methods, on every (task, method) pair of the spectrum.

Methods are built from ``task.assumed`` alone and see only measurements (and labels when supervised);
initial weights follow the run's seed; layer-wise training is for iterative methods only; every task
has the noise axis ``task.snr_db``; metrics declare their direction; optimiser and schedule come from config.
"""

from __future__ import annotations


import lightning as L
import pytest
import torch
from torch import nn

from mbdl.config import ConfigError
from mbdl.methods.base import IterativeMethod
from mbdl.run import build, make_method
from mbdl.tasks.base import Metric, Task
from mbdl.training.module import regime_objective
from tests.helpers import CONFIGS, compose_config, poison_true_model, run_cli

SPECTRUM = sorted((p.parent.name, p.stem) for p in (CONFIGS / "spectrum").glob("*/*.yaml"))
#: small data sets, and a true model that differs from the assumed one.
SETUP = {
    "sparse_recovery": ("task.n=20", "task.m=30", "task.k=2", "task.n_train=16", "task.n_val=8", "task.n_test=8", "task.mismatch=0.1"),
    "tracking": ("task.steps=10", "task.n_train=16", "task.n_val=8", "task.n_test=8", "task.mismatch.H_rotation_deg=5", "task.mismatch.Q_scale=2"),
    "doa": ("task.n_train=16", "task.n_val=8", "task.n_test=8", "task.phase_error=0.2", "task.gain_error=0.1"),
    "linear_gaussian": ("task.n_train=40", "task.n_val=8", "task.n_test=8", "task.mismatch.H=0.1", "task.mismatch.prior_identity=true"),
    "imaging": ("task.operator.block=8", "task.crop=8", "task.test_size=16", "task.n_train=16", "task.n_val=8", "task.reference_samples=200"),
    "ulm": ("task.shape=[8,8]", "task.q=2", "task.n_train=16", "task.n_val=8", "task.n_test=8", "task.psf_mismatch=0.1"),
    "clutter": ("task.shape=[8,8]", "task.frames=6", "task.tissue_rank=2", "task.n_train=16", "task.n_val=8", "task.n_test=8"),
}


def outputs(method: nn.Module, task: Task, data: dict, kind: str) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """The estimate, the training loss and its gradients, with dropout and the like drawn from seed 0."""
    torch.manual_seed(0)
    estimate = method(data["x"]).detach()
    torch.manual_seed(0)
    loss = method.loss(data["x"], regime_objective(task, data, kind))
    trained = [p for p in method.parameters() if p.requires_grad]
    gradients = list(torch.autograd.grad(loss, trained, allow_unused=True)) if trained and loss.requires_grad else []
    return estimate, loss.detach(), [g for g in gradients if g is not None]


@pytest.mark.parametrize(("task_name", "method_name"), SPECTRUM)
@pytest.mark.parametrize("kind", ["supervised", "unsupervised"])
def test_methods_touch_only_the_assumed_model(task_name, method_name, kind):
    """Built, run and trained with the true model poisoned, every method gives exactly what it gives without."""
    cfg = compose_config(f"task={task_name}", f"method={method_name}", *SETUP[task_name])
    task, method, data, _ = build(cfg)
    batch = {key: value[:4] for key, value in data.split("train").items()}
    if kind == "unsupervised" and method_name == "black_box" and task_name == "doa":
        with pytest.raises(ConfigError, match="regime.loss"):  # the DoA CNN's grid spectrum is trained from labels only
            outputs(method, task, batch, kind)
        return
    expected = outputs(method, task, batch, kind)
    poison_true_model(task)
    L.seed_everything(cfg.seed, verbose=False)  # as build() does before making the method
    again = make_method(cfg, task.assumed)
    got = outputs(again, task, batch, kind)
    assert torch.isfinite(got[0]).all() and torch.isfinite(got[1]).all(), "a method read a poisoned true model"
    torch.testing.assert_close(got[0], expected[0], rtol=0, atol=0)
    torch.testing.assert_close(got[1], expected[1], rtol=1e-6, atol=1e-9)
    for g, h in zip(got[2], expected[2]):
        torch.testing.assert_close(g, h, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize(("task_name", "method_name"), SPECTRUM)
def test_initial_weights_follow_the_seed(task_name, method_name):
    """Two seeds give different initial weights, unless the method's initialisation draws no random numbers at all
    (ISTA's steps from ‖H‖, Riccati gains, a zero calibration: they come from the assumed model)."""
    weights, draws = [], []
    for seed in (0, 1):
        cfg = compose_config(f"task={task_name}", f"method={method_name}", *SETUP[task_name], f"seed={seed}")
        task, _, _, _ = build(cfg)
        L.seed_everything(seed, verbose=False)
        state = torch.random.get_rng_state()
        method = make_method(cfg, task.assumed)
        draws.append(not torch.equal(state, torch.random.get_rng_state()))
        weights.append([p.detach().clone() for p in method.parameters() if p.requires_grad])
    if not weights[0]:
        return  # nothing to train
    differ = any(not torch.equal(a, b) for a, b in zip(*weights))
    assert differ == draws[0], "random initial weights must follow the run's seed; deterministic ones must not draw"


#: the iterative methods with something to train (an iterative model-based method has nothing to train layer by layer).
TRAINED_ITERATIVE = ("learned_optimizer", "unfolded", "dnn_aided")
ITERATIVE = {("doa", "unfolded"), *((t, m) for t in ("imaging", "ulm", "clutter") for m in TRAINED_ITERATIVE)}
MODEL_BASED_ITERATIVE = {(t, "model_based") for t in ("imaging", "ulm", "clutter")}
NON_ITERATIVE = [(t, m) for t, m in SPECTRUM if t != "sparse_recovery" and (t, m) not in ITERATIVE | MODEL_BASED_ITERATIVE] + [("sparse_recovery", "black_box")]


@pytest.mark.parametrize(("task_name", "method_name"), NON_ITERATIVE)
def test_layerwise_training_refuses_a_method_that_is_not_iterative(task_name, method_name):
    with pytest.raises(ConfigError, match="^regime: layerwise trains an iterative method"):
        build(compose_config(f"task={task_name}", f"method={method_name}", "regime=layerwise", *SETUP[task_name]))


@pytest.mark.parametrize(("task_name", "method_name"), [("sparse_recovery", "unfolded"), ("sparse_recovery", "dnn_aided"), *sorted(ITERATIVE)])
def test_layerwise_training_takes_every_iterative_method(task_name, method_name):
    """(A model-based iteration such as TV has nothing to train: layer-wise training refuses it, tested in test_reliability.)"""
    _, method, _, _ = build(compose_config(f"task={task_name}", f"method={method_name}", "regime=layerwise", *SETUP[task_name]))
    assert isinstance(method, IterativeMethod)


def test_cli_layerwise_black_box_stops_with_one_line_before_work(outputs):
    done = run_cli("regime=layerwise", "method=black_box", outputs=outputs)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines()[-1].startswith("error: regime: layerwise trains an iterative method layer by layer; MLPSolver is not iterative")
    assert "phase 1" not in done.stdout and not list(outputs.rglob("metrics.csv"))


@pytest.mark.parametrize("task_name", sorted({t for t, _ in SPECTRUM}))
def test_every_task_declares_its_metrics_and_the_snr_axis(task_name):
    cfg = compose_config(f"task={task_name}", "method=model_based", *SETUP[task_name], "task.snr_db=15")
    task, _, data, _ = build(cfg)
    assert task.primary_metric in task.metrics and all(isinstance(m, Metric) for m in task.metrics.values())
    test = data.split("test")
    assert set(task.evaluate(0.9 * test["s"], test)) == set(task.metrics), "evaluate returns exactly the declared metrics"
    assert set(task.references(test)) <= set(task.metrics)


def test_the_snr_axis_sets_each_tasks_noise():
    """``task.snr_db`` in each task's own definition: sparse per-sample std(Hs)/σ, DoA per-source power, tracking and
    linear_gaussian 1/σ²."""
    tracking, _, _, _ = build(compose_config("task=tracking", "method=model_based", "task.snr_db=20"))
    assert tracking.model.R[0, 0].item() == pytest.approx(0.01)
    kinematics, _, _, _ = build(compose_config("task=tracking", "task/model=kinematics_1d", "method=model_based", "task.snr_db=0"))
    assert kinematics.model.R[0, 0].item() == pytest.approx(1.0)
    doa, _, _, _ = build(compose_config("task=doa", "method=model_based", "task.snr_db=20"))
    assert doa.source_power == pytest.approx(100.0) and doa.assumed.snr_db == 20.0
    gaussian, _, _, _ = build(compose_config("task=linear_gaussian", "method=model_based", "task.snr_db=20"))
    assert gaussian.model.noise_var == pytest.approx(0.01) and gaussian.assumed.noise_var == pytest.approx(0.01)


def test_optimizer_and_schedule_come_from_config():
    _, _, _, module = build(compose_config(*SETUP["sparse_recovery"], "method=unfolded", "optim@method.optim.optimizer=sgd", "method.optim.lr=0.05"))
    optimizers = module.configure_optimizers()
    optimizer, schedule = optimizers["optimizer"], optimizers["lr_scheduler"]
    assert isinstance(optimizer, torch.optim.SGD) and optimizer.defaults["momentum"] == 0.9 and optimizer.defaults["lr"] == 0.05
    assert isinstance(schedule, torch.optim.lr_scheduler.CosineAnnealingLR) and schedule.T_max == 50
    _, _, _, constant = build(compose_config(*SETUP["sparse_recovery"], "method=unfolded", "method.optim.scheduler=null"))
    assert isinstance(constant.configure_optimizers(), torch.optim.Adam)
    assert "optim" not in compose_config("method=model_based").method, "a method with nothing to train carries no optim block"
