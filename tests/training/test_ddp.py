"""Data-parallel training for real: Lightning's DDP starts a second process (gloo on the CPU), the test set is split
over the ranks and gathered back, rank 0 alone writes the run's files, and the result matches one process."""

from __future__ import annotations

import json
import statistics

import torch
from torch.utils.data import DistributedSampler

from mbdl.training.data import INDEX_KEY, BatchDataset
from mbdl.training.distributed import in_split_order
from tests.helpers import run_cli, run_config

#: a small sparse-recovery run; 301 test samples do not split evenly over 2 ranks (the sampler pads one).
TINY = ("task=sparse_recovery", "task.n=20", "task.m=40", "task.k=2", "task.n_train=200", "task.n_val=101", "task.n_test=301")
#: the learned optimizer (ISTA with a trained step and threshold), 5 epochs of 50-sample steps.
METHOD = ("method=learned_optimizer", "method.iterations=10", "method.optim.epochs=5", "~early_stopping")
BATCH = 50


def test_shares_of_a_distributed_sampler_are_put_back_in_split_order_each_sample_once():
    data = {"x": torch.randn(11, 3), "s": torch.randn(11, 2)}
    dataset = BatchDataset(data, with_index=True)
    shares = [dataset.__getitems__(list(DistributedSampler(dataset, num_replicas=3, rank=r, shuffle=False))) for r in range(3)]
    assert [len(share[INDEX_KEY]) for share in shares] == [4, 4, 4], "11 samples padded to 3 equal shares"
    rows = in_split_order(torch.cat([s[INDEX_KEY] for s in shares]), torch.cat([s["x"] for s in shares]), 11)
    assert torch.equal(rows, data["x"])


def test_ddp_on_two_cpu_processes_splits_the_test_set_and_matches_one_process(outputs, tmp_path):
    # each rank takes BATCH / 2 samples per step: a step averages the gradients of the same BATCH samples as one process
    done = run_cli(*TINY, *METHOD, f"method.optim.batch_size={BATCH // 2}", "trainer=ddp", "threads=1", "trainer.enable_progress_bar=false", outputs=outputs, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in done.stderr, "Lightning started the second process"
    (record_path,) = outputs.rglob("metrics.json")
    run_dir = record_path.parent
    record = json.loads(record_path.read_text())
    assert record["status"] == "ok" and record["processes"] == 2
    assert record["test_samples_per_process"] == [151, 151], "301 test samples split over 2 ranks (one padded), not duplicated"
    assert done.stdout.count("run directory:") == 1, "only rank 0 prints the result"
    assert (run_dir / "figure.png").is_file() and (run_dir / "train_ddp_process_1.log").is_file()
    assert sorted(p.name for p in run_dir.glob("*.json")) == ["metrics.json"]

    single = [run_config(tmp_path / str(seed), *TINY, *METHOD, f"method.optim.batch_size={BATCH}", f"seed={seed}") for seed in range(3)]
    values = [r["test/nmse_db"] for r in single]
    assert [r["processes"] for r in single] == [1, 1, 1] and single[0]["test_samples_per_process"] == [301]
    mean, spread = statistics.fmean(values), statistics.stdev(values)
    assert abs(record["test/nmse_db"] - mean) <= 3 * spread, (record["test/nmse_db"], values)
    assert abs(record["test/nmse_db"] - values[0]) < spread, "same seed, same data and steps: closer to seed 0 than the seeds are to each other"
    assert record["bound/nmse_db"] == single[0]["bound/nmse_db"], "the bound over the same (whole) test set as seed 0's"
