"""The learned imaging methods learn: briefly trained on drawn block-CS crops, each ends above the linear start it
starts from and above the task's linear reference (Qinit), on validation crops (docs/imaging.md, the Qinit plateau)."""

from __future__ import annotations

import math

import pytest
import torch

from mbdl.algorithms.data_fidelity import LeastSquares
from mbdl.run import build, fit
from mbdl.tasks.imaging import block_lmmse
from tests.helpers import compose_config

#: block CS 25 % with a drawn Φ on 66×66 crops (4 blocks each) of scikit-image's images, 200 steps of 16 crops.
TASK = ("task=imaging", "task/operator=cs", "task.operator.ratio=25", "task.crop=66", "task.n_val=32", "task.test_size=33", "task.n_test=1")
TRAINING = ("regime.fresh_data=true", "task.n_train=1600", "method.optim.epochs=2", "method.optim.batch_size=16", "~early_stopping")
METHODS = {
    "dncnn": ("method=black_box", "method.channels=8", "method.layers=5"),
    # the same network in mixed precision: bfloat16 convolutions, the operator and Qinit in float32 (operators.exact)
    "dncnn_bf16_mixed": ("method=black_box", "method.channels=8", "method.layers=5", "trainer.precision=bf16-mixed"),
    # measured (seed 0): DnCNN −28.44 dB against its start −28.17 and Qinit −28.28; MoDL −28.54 (slower: -m slow)
    "modl": pytest.param(("method=unfolded", "method.algorithm=modl", "method.iterations=2", "method.channels=8", "method.layers=4"), marks=pytest.mark.slow),
}


def mse_db(estimate: torch.Tensor, s: torch.Tensor) -> float:
    """10 log10 of the mean squared error over all validation pixels."""
    return 10 * math.log10((estimate.clamp(0, 1) - s).square().mean().item())


@pytest.mark.parametrize("method", list(METHODS.values()), ids=list(METHODS))
def test_a_briefly_trained_network_beats_the_linear_start_it_starts_from(tmp_path, method):
    cfg = compose_config("~logger", "trainer.enable_progress_bar=false", "threads=1", "seed=0", *TASK, *TRAINING, *method)
    task, net, data, module = build(cfg)
    fit(cfg, module, data, str(tmp_path))
    val = data.split("val")
    net.eval()
    with torch.no_grad():
        estimate = net(val["x"])
        start = net.start(LeastSquares(net.start.operator, val["x"]))
        # the task's reference (Qinit on task.reference_samples training blocks), on the validation crops' operator
        Q = block_lmmse(task.train_images, task.spec.phi, task.spec.block, task.reference_samples, torch.Generator().manual_seed(0))
        reference = net.start.operator.member_for(val["x"], "out").image(val["x"] @ Q.T)
    # before the fix (biases that switched the residual branch off, a network trained on Φ⁺y) the network stayed the
    # identity: its output was its start to 0.01 dB
    assert mse_db(estimate, val["s"]) < mse_db(start, val["s"]) - 0.1
    assert mse_db(estimate, val["s"]) < mse_db(reference, val["s"]) - 0.05  # the task's Qinit, fitted on 20 000 blocks
    assert net.start.ready  # Q was fitted on enough blocks before the network trained


def test_learned_tv_starts_at_the_tv_iteration_and_ends_no_worse_on_validation(tmp_path):
    from mbdl.training.module import regime_objective

    learned = compose_config("~logger", "trainer.enable_progress_bar=false", "threads=1", "seed=0", *TASK, "task.crop=33", "method=learned_optimizer",
                             "regime.fresh_data=true", "task.n_train=320", "method.optim.epochs=2", "~early_stopping")
    model_based = compose_config(*TASK, "method=model_based")
    for key in ("algorithm", "iterations", "lam", "step", "box", "start"):  # the untrained learned TV is the model-based row
        assert learned.method[key] == model_based.method[key], key
    task, method, data, module = build(learned)
    val = data.split("val")

    def val_loss() -> float:
        with torch.no_grad():
            return method.loss(val["x"], regime_objective(task, val, "supervised")).item()

    before = val_loss()
    fit(learned, module, data, str(tmp_path))
    method.eval()
    assert val_loss() <= before
