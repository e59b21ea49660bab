r"""Sparse recovery (compressed sensing): :math:`x = H s + w`.

:math:`s \in \mathbb{R}^m` has exactly ``k`` non-zero entries ("spikes") drawn from
:math:`\mathcal{N}(0, \sigma_s^2)`; :math:`H \in \mathbb{R}^{n \times m}` is Gaussian with
unit-norm columns; :math:`w \sim \mathcal{N}(0, \sigma^2 I_n)`. This is the running example of
Shlezinger & Eldar, *Model-Based Deep Learning* (2023), Ex. 5.4-5.6.

Metric: NMSE in dB, :math:`10\log_{10}\big(\sum_i\|\hat s_i - s_i\|^2 / \sum_i \|s_i\|^2\big)`,
and support-recovery F1. Bound: least squares with an oracle that knows the support
:math:`S_i` of each sample, whose error is :math:`\sigma^2\,\mathrm{tr}((H_S^\top H_S)^{-1})`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from mbdl.config import check_choice, check_positive, require
from mbdl.tasks.base import Batch, Task

OPERATORS = ("gaussian",)


def gaussian_operator(n: int, m: int, generator: torch.Generator) -> Tensor:
    """An ``(n, m)`` matrix with i.i.d. Gaussian entries and unit-norm columns (default dtype)."""
    H = torch.randn(n, m, generator=generator, dtype=torch.float64)
    return (H / H.norm(dim=0, keepdim=True)).to(torch.get_default_dtype())


def nmse_db(estimate: Tensor, truth: Tensor) -> float:
    r""":math:`10\log_{10}(\sum\|\hat s - s\|^2 / \sum\|s\|^2)` over all samples, in dB."""
    err = (estimate - truth).double().square().sum()
    return 10.0 * math.log10(err.item() / truth.double().square().sum().item())


def support_f1(estimate: Tensor, truth: Tensor, threshold: float) -> float:
    """F1 score of the recovered support ``|ŝ| > threshold`` against the true one, pooled over samples."""
    found, true = estimate.abs() > threshold, truth != 0
    tp = (found & true).sum().item()
    denominator = found.sum().item() + true.sum().item()
    return 2.0 * tp / denominator if denominator else 1.0


def oracle_ls_error(H: Tensor, support: Tensor, noise_var: Tensor) -> Tensor:
    r"""Per-sample error of oracle least squares, :math:`\sigma_i^2\,\mathrm{tr}((H_{S_i}^\top H_{S_i})^{-1})`.

    Args:
        H: ``(n, m)`` true operator.
        support: ``(batch, m)`` boolean support of each sample (sizes may differ).
        noise_var: ``(batch,)`` noise variance of each sample.

    Returns:
        ``(batch,)`` expected squared error of the oracle estimate.
    """
    size = support.sum(dim=1)
    k_max = max(int(size.max()), 1)
    # indices of the support first (stable sort), padded to k_max; padded slots get identity rows
    order = torch.argsort((~support).to(torch.int8), dim=1, stable=True)[:, :k_max]
    valid = torch.arange(k_max, device=H.device) < size[:, None]  # (batch, k_max)
    H_S = H.double().T[order] * valid[..., None]  # (batch, k_max, n)
    gram = H_S @ H_S.transpose(1, 2)
    gram = gram + torch.diag_embed((~valid).double())
    trace = torch.linalg.inv(gram).diagonal(dim1=1, dim2=2).mul(valid).sum(dim=1)
    return noise_var.double() * trace


class SparseRecovery(Task):
    """Recover a ``k``-sparse ``s`` from ``x = H s + w``.

    Args:
        n: number of measurements (rows of ``H``).
        m: signal length (columns of ``H``).
        k: non-zero entries per signal, ``1 <= k <= m``.
        spike_std: standard deviation of the non-zero entries.
        noise_std: standard deviation of the measurement noise ``w`` (``>= 0``).
        operator: how ``H`` is drawn; one of :data:`OPERATORS`.
        model_seed: seed of the draw of ``H`` (fixed across train/val/test).
        support_threshold: magnitude above which an estimated entry counts as in the support.
        n_train, n_val, n_test: default data-set sizes.
    """

    primary_metric = "nmse_db"

    def __init__(
        self,
        n: int = 150,
        m: int = 200,
        k: int = 4,
        spike_std: float = 0.5,
        noise_std: float = 0.01,
        operator: str = "gaussian",
        model_seed: int = 0,
        support_threshold: float = 1e-3,
        n_train: int = 1000,
        n_val: int = 1000,
        n_test: int = 1000,
    ) -> None:
        for option, value in (("n", n), ("m", m), ("k", k)):
            check_positive(value, f"task.{option}", integer=True)
        require(k <= m, "task.k", f"must be at most task.m={m}, got {k}")
        check_positive(spike_std, "task.spike_std")
        check_positive(noise_std, "task.noise_std", strict=False)
        check_choice(operator, "task.operator", OPERATORS)
        check_positive(support_threshold, "task.support_threshold", strict=False)
        for option, value in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
            check_positive(value, f"task.{option}", integer=True)
        self.n, self.m, self.k = n, m, k
        self.spike_std, self.noise_std = spike_std, noise_std
        self.support_threshold = support_threshold
        self.n_train, self.n_val, self.n_test = n_train, n_val, n_test
        self.H = gaussian_operator(n, m, torch.Generator().manual_seed(model_seed))
        #: the operator the methods are told (no mismatch: the true one).
        self.H_assumed = self.H.clone()

    def simulate(self, n: int, generator: torch.Generator) -> Batch:
        """``n`` samples: ``x`` ``(n, self.n)``, ``s`` ``(n, m)``, ``noise_std`` ``(n,)``."""
        dtype = self.H.dtype
        support_idx = torch.rand(n, self.m, generator=generator).argsort(dim=1)[:, : self.k]
        s = torch.zeros(n, self.m, dtype=dtype)
        s.scatter_(1, support_idx, self.spike_std * torch.randn(n, self.k, generator=generator, dtype=dtype))
        noise_std = torch.full((n,), float(self.noise_std), dtype=dtype)
        x = s @ self.H.T + noise_std[:, None] * torch.randn(n, self.n, generator=generator, dtype=dtype)
        return {"x": x, "s": s, "noise_std": noise_std}

    def evaluate(self, estimate: Tensor, data: Batch) -> dict[str, float]:
        """``nmse_db`` and ``support_f1`` of ``estimate`` ``(batch, m)``."""
        s = data["s"]
        return {
            "nmse_db": nmse_db(estimate, s),
            "support_f1": support_f1(estimate, s, self.support_threshold),
        }

    def bound(self, data: Batch) -> dict[str, float]:
        """NMSE (dB) of oracle least squares on the true support with the true ``H``."""
        s = data["s"]
        error = oracle_ls_error(self.H, s != 0, data["noise_std"].square()).sum().item()
        if error == 0.0:
            return {"nmse_db": -math.inf}
        return {"nmse_db": 10.0 * math.log10(error / s.double().square().sum().item())}

    def unsupervised_loss(self, estimate: Tensor, data: Batch) -> Tensor:
        r"""Measurement consistency :math:`\frac{1}{n}\|x - H\hat s\|^2` with the assumed ``H``."""
        residual = data["x"] - estimate @ self.H_assumed.T.to(estimate)
        return residual.square().mean()
