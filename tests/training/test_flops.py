"""FLOPs per sample by torch's counter: checked against the closed form 2 m n k of a product; what it cannot count is listed."""

from __future__ import annotations

import torch

from mbdl.training.flops import count_flops
from tests.helpers import run_config


def test_a_matrix_product_counts_2_m_n_k_per_sample_and_elementwise_work_nothing():
    weight = torch.randn(30, 20)
    count = count_flops(lambda x: torch.relu(x @ weight.T).sign() * 2.0, torch.randn(8, 20))
    assert count.per_sample == 2 * 20 * 30 and count.uncounted == ()


def test_decompositions_and_solves_are_listed_not_counted():
    def forward(x: torch.Tensor) -> torch.Tensor:
        covariance = x.mT @ x  # counted: 2 * 5 * 4 * 4 per sample
        values, vectors = torch.linalg.eigh(covariance)
        return torch.linalg.solve(covariance + torch.eye(4), vectors)

    count = count_flops(forward, torch.randn(3, 5, 4))
    assert count.per_sample == 2 * 5 * 4 * 4
    assert "linalg_eigh" in count.uncounted and any(name.startswith("linalg_solve") for name in count.uncounted), count.uncounted


def test_every_record_has_flops_per_sample_and_what_was_not_counted(tmp_path):
    sparse = run_config(tmp_path / "ista", "method=model_based", "method.iterations=3", "task.n=20", "task.m=30", "task.n_val=16", "task.n_test=40")
    assert sparse["flops_per_sample"] > 0 and sparse["flops_uncounted"] == []
    music = run_config(tmp_path / "music", "task=doa", "method=model_based", "task.n_val=16", "task.n_test=40")
    assert music["flops_per_sample"] > 0 and "linalg_eigh" in music["flops_uncounted"], "MUSIC's eigendecomposition: a lower bound"
