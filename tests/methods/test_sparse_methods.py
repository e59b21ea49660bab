"""Every sparse-recovery method on the spectrum trains and improves its loss; layer-wise training; task options."""

from __future__ import annotations

import math

import pytest
import torch

from mbdl.config import ConfigError
from mbdl.methods.base import training_phases
from mbdl.run import build
from mbdl.tasks.sparse_recovery import SparseRecovery
from tests.helpers import TINY, batch_loss, compose_config, fit_steps, run_config


METHODS = [
    ("learned_optimizer", "method.algorithm=ista", "method.iterations=10"),
    ("learned_optimizer", "method.algorithm=fista", "method.iterations=10"),
    ("learned_optimizer", "method.algorithm=admm", "method.iterations=10"),
    ("unfolded", "method.algorithm=lista"),
    ("unfolded", "method.algorithm=lista_cp"),
    ("unfolded", "method.algorithm=lista_cpss", "method.support_step=5", "method.support_max=10"),
    ("unfolded", "method.algorithm=ista_ss"),
    ("unfolded", "method.algorithm=alista", "method.support_step=5", "method.support_max=10"),
    ("unfolded", "method.algorithm=admm"),
    ("black_box", "method.hidden=[32]"),
    ("dnn_aided",),
    ("dnn_aided", "method.tied=true", "method.kernel_size=1"),
]


@pytest.mark.parametrize("overrides", METHODS, ids=lambda o: "-".join(x.split("=")[-1] for x in o))
def test_every_method_improves_its_supervised_loss(overrides):
    method_name, *rest = overrides
    _, _, data, module = build(compose_config(*TINY, f"method={method_name}", *rest))
    torch.manual_seed(0)
    before, after = fit_steps(module, data.split("train"))
    assert after < 0.9 * before, (before, after)


@pytest.mark.parametrize("loss", ["lasso", "consistency"])
def test_unsupervised_losses_train_without_labels(loss):
    _, _, data, module = build(compose_config(*TINY, "method=learned_optimizer", "method.iterations=10", "regime=unsupervised", f"task.unsupervised_loss={loss}"))
    train = {k: v for k, v in data.split("train").items() if k != "s"}
    before, after = fit_steps(module, train)
    assert after < before


def test_lasso_loss_is_the_lasso_objective():
    task = SparseRecovery(n=10, m=20, k=2, unsupervised_loss="lasso", lasso_lam=0.3)
    data = task.simulate(5, torch.Generator().manual_seed(0))
    s_hat = torch.randn(5, 20)
    expected = (0.5 * (data["x"] - s_hat @ task.H.T).square().sum(1) + 0.3 * s_hat.abs().sum(1)).mean()
    torch.testing.assert_close(task.unsupervised_loss(s_hat, data["x"]), expected)


def test_layerwise_phases_follow_the_lista_cpss_schedule():
    _, method, _, _ = build(compose_config(*TINY, "method=unfolded", "method.iterations=3", "regime=layerwise"))
    phases = training_phases(method, [0.2, 0.02])
    assert [p.depth for p in phases] == [1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert [p.lr_scale for p in phases[:3]] == pytest.approx([1.0, 0.2, 0.02])
    assert [len(p.parameters) for p in phases[:4]] == [2, 2, 2, 2]  # W_1, theta_1; then W_2, theta_2
    assert len(phases[-1].parameters) == 6
    assert len(training_phases(method)) == 1


def test_warm_start_initialises_a_new_layer_from_the_trained_previous_one():
    _, method, _, _ = build(compose_config(*TINY, "method=unfolded", "method.algorithm=alista", "method.iterations=3", "regime=layerwise"))
    phases = training_phases(method, [0.2], warm_start=True)
    assert [p.warm_start is not None for p in phases] == [True, False] * 3
    step, theta = method.algorithm.step.values, method.algorithm.theta.values
    with torch.no_grad():
        step[0].fill_(0.3), theta[0].fill_(0.02)  # "trained" layer 1
    phases[2].warm_start()  # before layer 2's first phase
    assert (step[1].item(), theta[1].item()) == pytest.approx((0.3, 0.02))
    assert theta[2].item() != pytest.approx(0.02)  # layer 3 waits for its own stage
    assert all(p.warm_start is None for p in training_phases(method, [0.2]))
    _, untied, _, _ = build(compose_config(*TINY, "method=dnn_aided", "method.iterations=2"))
    training_phases(untied, [], warm_start=True)[1].warm_start()
    first, second = (list(net.parameters()) for net in untied.algorithm.prox.nets)
    assert all(torch.equal(a, b) for a, b in zip(first, second))


def test_a_phase_freezes_every_other_parameter_so_backpropagation_stops_at_them():
    _, method, data, module = build(compose_config(*TINY, "method=unfolded", "method.iterations=3", "regime=layerwise"))
    phases = training_phases(method, [0.2])
    module.enter(phases[2])  # the new parameters of layer 2 only
    batch_loss(module, data.split("train")).backward()
    trained = {id(p) for p in phases[2].parameters}
    assert all((p.grad is not None) == (id(p) in trained) for p in method.parameters())
    module.enter(None)
    assert all(p.requires_grad for p in method.parameters())


def test_layerwise_run_trains_and_restores_the_full_depth(tmp_path):
    overrides = (*TINY, "method=unfolded", "method.iterations=3", "method.optim.epochs=2", "regime=layerwise", "seed=3")
    trained = run_config(tmp_path / "a", *overrides)
    untrained = run_config(tmp_path / "b", *overrides, "method.optim.epochs=0")
    assert len(trained["curve/nmse_db"]) == 3
    assert trained["test/nmse_db"] < untrained["test/nmse_db"]
    assert (tmp_path / "a" / "figure.png").stat().st_size > 0


def test_bernoulli_sparsity_and_snr_noise():
    task = SparseRecovery(n=40, m=80, sparsity="bernoulli", p=0.1, spike_std=1.0, snr_db=20.0)
    data = task.simulate(2000, torch.Generator().manual_seed(0))
    assert (data["s"] != 0).double().mean().item() == pytest.approx(0.1, abs=0.005)
    clean = data["s"] @ task.H.T
    signal_std = clean.std(dim=1, correction=0)
    assert (data["noise_std"][signal_std == 0] == 0).all()  # an all-zero signal (Bernoulli) gets no noise
    ratio = data["noise_std"][signal_std > 0] / signal_std[signal_std > 0]
    torch.testing.assert_close(ratio, torch.full_like(ratio, 0.1))
    measured_snr = 10 * math.log10(clean.var(dim=1, correction=0).sum() / (data["x"] - clean).square().mean(dim=1).sum())
    assert measured_snr == pytest.approx(20.0, abs=0.3)


@pytest.mark.parametrize("spikes", ["gaussian", "uniform", "sign"])
def test_spike_distributions_have_the_configured_std(spikes):
    task = SparseRecovery(n=10, m=50, k=25, spikes=spikes, spike_std=0.5)
    s = task.simulate(2000, torch.Generator().manual_seed(0))["s"]
    assert s[s != 0].std().item() == pytest.approx(0.5, rel=0.02)


def test_convolution_operator_is_a_sampled_point_spread_function():
    task = SparseRecovery(n=25, m=100, operator="convolution", psf_width=3.0)
    H = task.H.double()
    torch.testing.assert_close(H.norm(dim=0), torch.ones(100, dtype=torch.float64))
    # column j peaks at the coarse sample nearest to fine position j: c_i = 4 i + 1.5
    assert H[:, 41].argmax().item() == 10 and H[:, 2].argmax().item() == 0
    ratio = H[10, 41] / H[10, 42]  # exp(-(0.5^2 - 0.5^2)/18) = 1 (symmetric about c_10 = 41.5)
    assert ratio.item() == pytest.approx(1.0)
    assert H[11, 41] / H[10, 41] == pytest.approx(math.exp(-(4.5**2 - 0.5**2) / 18))


def test_mismatch_perturbs_the_assumed_operator_only():
    exact, perturbed = SparseRecovery(mismatch=0.0), SparseRecovery(mismatch=0.2)
    torch.testing.assert_close(exact.H, perturbed.H)
    torch.testing.assert_close(exact.assumed.operator.dense(), exact.H)
    relative = (perturbed.assumed.operator.dense() - perturbed.H).norm(dim=0).mean().item()
    assert relative == pytest.approx(0.2, rel=0.05)


def test_figure_draws_three_test_samples():
    task = SparseRecovery(n=10, m=20, k=2)
    data = task.simulate(5, torch.Generator().manual_seed(0))
    figure = task.figure(data["s"] + 0.01, data)
    assert len(figure.axes) == 3


@pytest.mark.parametrize(
    ("kwargs", "option"),
    [({"sparsity": "poisson"}, "task.sparsity"), ({"p": 1.5}, "task.p"), ({"spikes": "laplace"}, "task.spikes"),
     ({"psf_width": 0}, "task.psf_width"), ({"mismatch": -1}, "task.mismatch"), ({"unsupervised_loss": "l0"}, "task.unsupervised_loss")],
)
def test_impossible_task_options_name_the_option(kwargs, option):
    with pytest.raises(ConfigError, match=option):
        SparseRecovery(**kwargs)


@pytest.mark.parametrize(("override", "option"), [("method.algorithm=omp", "method.algorithm"), ("method.rho=0", "method.rho"), ("method.kernel_size=2", "method.kernel_size")])
def test_impossible_method_options_name_the_option(override, option):
    method = "dnn_aided" if "kernel" in override else "model_based"
    with pytest.raises(Exception) as info:
        build(compose_config(*TINY, f"method={method}", override))
    error = info.value
    while not isinstance(error, ConfigError) and error.__cause__ is not None:
        error = error.__cause__
    assert isinstance(error, ConfigError) and str(error).startswith(option)
