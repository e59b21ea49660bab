"""The path config -> simulated data -> Lightning -> run record, in-process and from the command line."""

from __future__ import annotations

import json

import pytest
import torch

from mbdl.config import ConfigError
from mbdl.run import build
from tests.helpers import TINY, compose_config, run_cli, run_config

CONTRACT = {"task", "method", "regime", "seed", "status", "test/nmse_db", "bound/nmse_db", "params", "train_time_s", "infer_ms_per_sample"}


def test_cli_model_based_run_writes_a_complete_record(outputs):
    done = run_cli("method=model_based", *TINY, outputs=outputs)
    assert done.returncode == 0, done.stderr
    (record_path,) = outputs.rglob("metrics.json")
    record = json.loads(record_path.read_text())
    assert CONTRACT <= record.keys()
    assert record["status"] == "ok" and record["params"] == 0 and record["method"] == "model_based"
    assert record["torch_threads"] == 1, "the same thread count as a sweep's jobs (threads=1), recorded"
    assert record["test/nmse_db"] > record["bound/nmse_db"]
    assert (record_path.parent / ".hydra" / "config.yaml").exists()
    assert "run directory:" in done.stdout and "test/nmse_db" in done.stdout


def test_cli_unknown_method_lists_the_valid_ones(outputs):
    done = run_cli("method=nonsense", outputs=outputs)
    assert done.returncode != 0
    assert "Could not find 'method/nonsense'" in done.stderr
    assert "model_based" in done.stderr and "unfolded" in done.stderr


def test_cli_help_explains_the_groups(outputs):
    done = run_cli("--help", outputs=outputs)
    assert done.returncode == 0
    for word in ("task", "method", "regime", "model_based", "unfolded", "supervised", "--cfg job"):
        assert word in done.stdout


@pytest.mark.parametrize(
    ("override", "option"),
    [
        ("method.iterations=0", "method.iterations"),
        ("regime.n_train=0", "regime.n_train"),
        ("regime.loss=reinforce", "regime.loss"),
        ("method.mode=sometimes", "method.mode"),
        ("method.optim.lr=-1", "method.optim.lr"),
        ("method.optim.optimizer._target_=torch.optim.Nope", "method.optim.optimizer"),
        ("method.optim.lr=inf", "method.optim.lr"),
        ("seed=-1", "seed"),
        ("method.optim.epochs=-1", "method.optim.epochs"),
        ("weights=/nonexistent/weights.pt", "weights"),
    ],
)
def test_impossible_values_are_refused_before_any_work(override, option):
    with pytest.raises(Exception) as info:
        build(compose_config(*TINY, override))
    error = info.value
    while not isinstance(error, ConfigError) and error.__cause__ is not None:
        error = error.__cause__
    assert isinstance(error, ConfigError) and str(error).startswith(option)


def test_same_seed_gives_identical_test_metrics_and_training_improves(tmp_path):
    overrides = (*TINY, "method=unfolded", "method.optim.epochs=3", "seed=7")
    first, second = run_config(tmp_path / "a", *overrides), run_config(tmp_path / "b", *overrides)
    tests = {k: v for k, v in first.items() if k.startswith(("test/", "curve/"))}
    assert tests == {k: second[k] for k in tests}
    untrained = run_config(tmp_path / "c", *TINY, "method=unfolded", "method.optim.epochs=0", "seed=7")
    assert first["test/nmse_db"] < untrained["test/nmse_db"]
    assert len(first["curve/nmse_db"]) == 5 and first["curve/nmse_db"][-1] == pytest.approx(first["test/nmse_db"])


def test_a_runs_weights_evaluate_again_to_the_same_metrics_and_another_methods_are_refused(tmp_path):
    """A run that trains writes weights.pt; ``weights=`` that file with no epochs gives the trained run's test metrics."""
    overrides = (*TINY, "method=unfolded", "seed=7")
    trained = run_config(tmp_path / "a", *overrides, "method.optim.epochs=2")
    weights = tmp_path / "a" / "weights.pt"
    again = run_config(tmp_path / "b", *overrides, "method.optim.epochs=0", f"weights={weights}")
    assert again["test/nmse_db"] == trained["test/nmse_db"] and again["curve/nmse_db"] == trained["curve/nmse_db"]
    with pytest.raises(ConfigError, match=r"^weights: .* does not hold MLPSolver"):
        run_config(tmp_path / "c", *TINY, "method=black_box", "method.optim.epochs=0", f"weights={weights}")


def test_initial_weights_are_seeded_by_the_run_seed():
    """Randomly initialised networks (the MLP) start from the same weights for the same seed."""
    weights = [
        [p.detach().clone() for p in build(compose_config(*TINY, "method=black_box", f"seed={seed}"))[1].parameters()]
        for seed in (3, 3, 4)
    ]
    assert all(torch.equal(a, b) for a, b in zip(weights[0], weights[1]))
    assert not all(torch.equal(a, b) for a, b in zip(weights[0], weights[2]))


def test_settings_for_another_method_are_refused_by_name():
    """An experiment pins one method's settings; choosing another method names the foreign key."""
    with pytest.raises(ConfigError, match=r"^method\.algorithm: is not an option of .*MLPSolver; its options are hidden"):
        build(compose_config("experiment=book_lista", "method=black_box"))


def test_fresh_data_draws_new_training_batches_reproducibly_and_keeps_the_test_set():
    def two_epochs(fresh: bool) -> tuple[list[torch.Tensor], torch.Tensor]:
        data = build(compose_config(*TINY, "method.optim.batch_size=16", f"regime.fresh_data={fresh}", "seed=5"))[2]
        return [b["s"] for _ in range(2) for b in data.train_dataloader()], data.split("test")["s"]

    (first, test), (again, _), (_, fixed_test) = two_epochs(True), two_epochs(True), two_epochs(False)
    assert len(first) == 2 * 64 // 16 and all(b.shape[0] == 16 for b in first)
    assert all(torch.equal(a, b) for a, b in zip(first, again))  # seeded by the run seed
    rows = [tuple(row.tolist()) for b in first for row in b if row.any()]
    assert len(set(rows)) == len(rows)  # the second epoch is new data, not a reshuffle
    assert torch.equal(test, fixed_test)


def test_the_per_iteration_curve_keeps_at_most_curve_bytes_of_iterates_and_the_test_metrics_all_samples(tmp_path, monkeypatch):
    import mbdl.training.module as module

    overrides = (*TINY, "method=model_based", "method.iterations=5")
    full = run_config(tmp_path / "full", *overrides)
    iterate_bytes = 30 * torch.empty((), dtype=torch.get_default_dtype()).element_size() * 5  # m = 30 floats, 5 iterations
    monkeypatch.setattr(module, "CURVE_BYTES", 10 * iterate_bytes)
    capped = run_config(tmp_path / "capped", *overrides)
    assert "curve_samples" not in full and capped["curve_samples"] == 10
    assert capped["test/nmse_db"] == full["test/nmse_db"] and len(capped["curve/nmse_db"]) == 5
    assert capped["curve/nmse_db"] != full["curve/nmse_db"]
