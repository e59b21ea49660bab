r"""Sparse recovery (compressed sensing, super-resolution): :math:`x = H s + w`.

:math:`s \in \mathbb{R}^m` has exactly ``k`` non-zero entries ("spikes"), or each entry is non-zero
with probability ``p``; the spikes are Gaussian, uniform or random signs with std :math:`\sigma_s`.
:math:`H \in \mathbb{R}^{n \times m}` is Gaussian with unit-norm columns, or a super-resolution
operator (a Gaussian point-spread function sampled on a grid ``m/n`` times coarser, as in
localisation microscopy). :math:`w \sim \mathcal{N}(0, \sigma_i^2 I_n)` with a fixed
:math:`\sigma_i = \sigma` or :math:`\sigma_i = \mathrm{std}(Hs_i)\,10^{-\mathrm{SNR}/20}` (LISTA-CPSS).
The methods are given :math:`\tilde H = H + \epsilon E`, :math:`E_{ij} \sim \mathcal{N}(0, 1/n)`
(``mismatch`` :math:`\epsilon`: the relative perturbation of each unit-norm column). This is the
running example of Shlezinger & Eldar, *Model-Based Deep Learning* (2023), Ex. 5.4-5.6.

The methods are told :class:`~mbdl.tasks.inverse_problem.LinearInverseProblem` (the operator :math:`\tilde H`
and, with a fixed noise level, :math:`\sigma`).

Metric: NMSE in dB, :math:`10\log_{10}\big(\sum_i\|\hat s_i - s_i\|^2 / \sum_i \|s_i\|^2\big)`,
and support-recovery F1. Bound: least squares with an oracle that knows the support
:math:`S_i` of each sample, whose error is :math:`\sigma^2\,\mathrm{tr}((H_S^\top H_S)^{-1})`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from mbdl.config import check_choice, check_positive, require
from mbdl.operators import Convolution, Decimation, Diagonal, LinearOperator, Matrix
from mbdl.tasks.base import Batch, Metric, Reference, Task, decibels
from mbdl.tasks.inverse_problem import UNSUPERVISED_LOSSES, LinearInverseProblem

if TYPE_CHECKING:
    from matplotlib.figure import Figure

OPERATORS = ("gaussian", "convolution")
SPARSITY = ("exact", "bernoulli")
SPIKES = ("gaussian", "uniform", "sign")


def unit_columns(H: Tensor) -> Tensor:
    """``H`` with every column scaled to unit norm, in the default dtype."""
    return (H / H.norm(dim=0, keepdim=True)).to(torch.get_default_dtype())


def gaussian_operator(n: int, m: int, generator: torch.Generator) -> Tensor:
    """An ``(n, m)`` matrix with i.i.d. Gaussian entries and unit-norm columns (default dtype)."""
    return unit_columns(torch.randn(n, m, generator=generator, dtype=torch.float64))


def point_spread(offset: Tensor, psf_width: float) -> Tensor:
    r"""The Gaussian PSF :math:`\exp(-d^2 / (2w^2))` at fine-grid offsets ``d``."""
    return torch.exp(-0.5 * (offset / psf_width).square())


def convolution_operator(n: int, m: int, psf_width: float) -> Tensor:
    r"""Blur by a Gaussian PSF of std ``psf_width`` (fine-grid samples), then keep ``n`` of ``m`` positions.

    :math:`H_{ij} \propto \exp(-(c_i - j)^2 / (2w^2))` with the ``i``-th coarse sample at
    :math:`c_i = (i + \tfrac12)\,m/n - \tfrac12` on the fine grid; unit-norm columns.
    """
    centres = (torch.arange(n, dtype=torch.float64) + 0.5) * (m / n) - 0.5
    return unit_columns(point_spread(centres[:, None] - torch.arange(m, dtype=torch.float64)[None, :], psf_width))


def sparse_convolution_operator(n: int, m: int, psf_width: float) -> LinearOperator:
    r""":func:`convolution_operator` matrix-free, for ``m = q n``: :math:`H = D\,C\,\mathrm{diag}(1/\|h_j\|)`.

    With :math:`c_i = i q + (q-1)/2 = i q + o + \delta` (:math:`o` its integer part, :math:`\delta \in \{0, \tfrac12\}`),
    :math:`C` convolves the fine grid with the PSF sampled at offsets :math:`d + \delta` (zero boundary,
    the whole support :math:`|d| < m`, so nothing is truncated), :math:`D` keeps every ``q``-th sample from
    :math:`o`, and the diagonal scales every column to unit norm, :math:`\|h_j\|^2 = (C_{h^2}^H D^H 1)_j`.
    In the default dtype, like :func:`convolution_operator`.
    """
    require(m % n == 0, "task.m", f"must be a multiple of task.n={n} for the matrix-free convolution operator, got {m}")
    q = m // n
    offset, shift = divmod((q - 1) / 2, 1.0)
    kernel = point_spread(torch.arange(-(m - 1), m, dtype=torch.float64) + shift, psf_width)
    decimation = Decimation((m,), q, int(offset))
    column_norm2 = Convolution(kernel.square(), (m,), "zero").adjoint(decimation.adjoint(torch.ones(n, dtype=torch.float64)))
    dtype = torch.get_default_dtype()
    return decimation @ Convolution(kernel.to(dtype), (m,), "zero") @ Diagonal(column_norm2.rsqrt().to(dtype))


def draw_spikes(shape: tuple[int, int], kind: str, std: float, generator: torch.Generator, dtype: torch.dtype) -> Tensor:
    """Spike amplitudes of std ``std``: ``gaussian`` N(0, std²), ``uniform`` on ±√3·std, ``sign`` ±std."""
    if kind == "gaussian":
        return std * torch.randn(shape, generator=generator, dtype=dtype)
    if kind == "uniform":
        return std * math.sqrt(3.0) * (2.0 * torch.rand(shape, generator=generator, dtype=dtype) - 1.0)
    return std * (2.0 * torch.randint(0, 2, shape, generator=generator, dtype=dtype) - 1.0)


def nmse_db(estimate: Tensor, truth: Tensor) -> float:
    r""":math:`10\log_{10}(\sum\|\hat s - s\|^2 / \sum\|s\|^2)` over all samples, in dB."""
    err = (estimate - truth).double().square().sum()
    return decibels(err.item() / truth.double().square().sum().item())


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
    """Recover a sparse ``s`` from ``x = H s + w``.

    Args:
        n: number of measurements (rows of ``H``).
        m: signal length (columns of ``H``).
        sparsity: ``"exact"`` (``k`` spikes per signal) or ``"bernoulli"`` (each entry non-zero with probability ``p``).
        k: non-zero entries per signal, ``1 <= k <= m`` (``exact``).
        p: probability of a non-zero entry, in ``(0, 1]`` (``bernoulli``).
        spikes: distribution of the non-zero entries, one of :data:`SPIKES`.
        spike_std: their standard deviation.
        noise_std: standard deviation of the measurement noise ``w`` (``>= 0``), unless ``snr_db`` is set.
        snr_db: per-sample SNR in dB, ``20 log10(std(H s_i)/σ_i)``: noise std ``std(H s_i)·10^(-snr_db/20)``
            (``None``: use ``noise_std``). The sweep axis ``task.snr_db`` of every task.
        operator: how ``H`` is made; one of :data:`OPERATORS`.
        matrix_free: ``convolution`` only: the methods are told ``H`` as decimation ∘ convolution ∘ column
            scaling (:func:`sparse_convolution_operator`, ``m`` a multiple of ``n``, no mismatch) instead of
            the dense matrix; the same operator, so the estimates agree to rounding.
        psf_width: std of the point-spread function in fine-grid samples (``convolution``).
        mismatch: ``ε``, relative perturbation of the ``H`` the methods are given (0: the true one).
        model_seed: seed of the draws of ``H`` and of the mismatch (fixed across train/val/test).
        support_threshold: magnitude above which an estimated entry counts as in the support.
        unsupervised_loss: ``"consistency"`` (``‖x - H̃ŝ‖²/n``) or ``"lasso"`` (``½‖x - H̃ŝ‖² + λ‖ŝ‖₁``).
        lasso_lam: ``λ`` of the ``lasso`` loss.
        n_train, n_val, n_test: default data-set sizes.
    """

    metrics = {"nmse_db": Metric("NMSE", "dB"), "support_f1": Metric("support F1", higher_is_better=True)}
    primary_metric = "nmse_db"

    def __init__(
        self,
        n: int = 150,
        m: int = 200,
        sparsity: str = "exact",
        k: int = 4,
        p: float = 0.1,
        spikes: str = "gaussian",
        spike_std: float = 0.5,
        noise_std: float = 0.01,
        snr_db: float | None = None,
        operator: str = "gaussian",
        matrix_free: bool = False,
        psf_width: float = 2.0,
        mismatch: float = 0.0,
        model_seed: int = 0,
        support_threshold: float = 1e-3,
        unsupervised_loss: str = "consistency",
        lasso_lam: float = 0.01,
        n_train: int = 1000,
        n_val: int = 1000,
        n_test: int = 1000,
    ) -> None:
        for option, value in (("n", n), ("m", m), ("k", k)):
            check_positive(value, f"task.{option}", integer=True)
        check_choice(sparsity, "task.sparsity", SPARSITY)
        require(k <= m, "task.k", f"must be at most task.m={m}, got {k}")
        require(isinstance(p, (int, float)) and 0 < p <= 1, "task.p", f"must be in (0, 1], got {p!r}")
        check_choice(spikes, "task.spikes", SPIKES)
        check_positive(spike_std, "task.spike_std")
        check_positive(noise_std, "task.noise_std", strict=False)
        require(snr_db is None or isinstance(snr_db, (int, float)), "task.snr_db", f"must be a number or null, got {snr_db!r}")
        check_choice(operator, "task.operator", OPERATORS)
        check_positive(psf_width, "task.psf_width")
        check_positive(mismatch, "task.mismatch", strict=False)
        require(isinstance(matrix_free, bool), "task.matrix_free", f"must be true or false, got {matrix_free!r}")
        require(not matrix_free or operator == "convolution", "task.matrix_free", f"applies to task.operator=convolution only, got {operator}")
        require(not matrix_free or mismatch == 0, "task.matrix_free", "needs task.mismatch=0 (the mismatch perturbs a dense matrix)")
        check_positive(support_threshold, "task.support_threshold", strict=False)
        check_choice(unsupervised_loss, "task.unsupervised_loss", UNSUPERVISED_LOSSES)
        check_positive(lasso_lam, "task.lasso_lam", strict=False)
        self.n, self.m, self.k, self.p, self.sparsity = n, m, k, p, sparsity
        self.spikes, self.spike_std = spikes, spike_std
        self.noise_std, self.snr_db = noise_std, snr_db
        self.support_threshold = support_threshold
        self.unsupervised_kind, self.lasso_lam = unsupervised_loss, lasso_lam
        self.set_sizes(n_train, n_val, n_test)
        generator = torch.Generator().manual_seed(model_seed)
        self.H = gaussian_operator(n, m, generator) if operator == "gaussian" else convolution_operator(n, m, psf_width)
        perturbation = torch.randn(n, m, generator=generator, dtype=torch.float64) / math.sqrt(n)
        if matrix_free:
            told: LinearOperator = sparse_convolution_operator(n, m, psf_width)
        else:
            told = Matrix((self.H.double() + mismatch * perturbation).to(self.H.dtype))
        #: the methods are told the true ``H`` plus ``mismatch`` times a random perturbation, and a fixed noise std.
        self.assumed = LinearInverseProblem(told, None if snr_db is not None else float(noise_std))

    def simulate(self, n: int, generator: torch.Generator) -> Batch:
        """``n`` samples: ``x`` ``(n, self.n)``, ``s`` ``(n, m)``, ``noise_std`` ``(n,)``."""
        dtype = self.H.dtype
        if self.sparsity == "exact":
            support = torch.zeros(n, self.m, dtype=torch.bool)
            support.scatter_(1, torch.rand(n, self.m, generator=generator).argsort(dim=1)[:, : self.k], True)
        else:
            support = torch.rand(n, self.m, generator=generator) < self.p
        s = draw_spikes((n, self.m), self.spikes, self.spike_std, generator, dtype) * support
        clean = s @ self.H.T
        if self.snr_db is None:
            noise_std = torch.full((n,), float(self.noise_std), dtype=dtype)
        else:
            noise_std = clean.std(dim=1, correction=0) * 10.0 ** (-self.snr_db / 20.0)
        x = clean + noise_std[:, None] * torch.randn(n, self.n, generator=generator, dtype=dtype)
        return {"x": x, "s": s, "noise_std": noise_std}

    def evaluate(self, estimate: Tensor, data: Batch) -> dict[str, float]:
        """``nmse_db`` and ``support_f1`` of ``estimate`` ``(batch, m)``."""
        s = data["s"]
        return {
            "nmse_db": nmse_db(estimate, s),
            "support_f1": support_f1(estimate, s, self.support_threshold),
        }

    def references(self, data: Batch) -> dict[str, Reference]:
        """NMSE (dB) of oracle least squares on the true support with the true ``H``: a bound."""
        s = data["s"]
        error = oracle_ls_error(self.H, s != 0, data["noise_std"].square()).sum().item()
        nmse = decibels(error / s.double().square().sum().item())
        return {"nmse_db": Reference(nmse, "oracle least squares on the true support", is_bound=True)}

    def unsupervised_loss(self, estimate: Tensor, x: Tensor) -> Tensor:
        """``task.unsupervised_loss`` (consistency or LASSO, see :meth:`LinearInverseProblem.unsupervised_loss`) with the assumed ``H``."""
        return self.assumed.unsupervised_loss(estimate, x, self.unsupervised_kind, self.lasso_lam)

    def figure(self, estimate: Tensor, data: Batch) -> Figure:
        """Estimate against truth for the first three test samples."""
        from matplotlib.figure import Figure

        figure = Figure(figsize=(9, 6), layout="constrained")
        axes = figure.subplots(3, 1, sharex=True)
        index = torch.arange(self.m)
        for i, ax in enumerate(axes):
            ax.stem(index, data["s"][i].cpu(), linefmt="C0-", markerfmt="C0o", basefmt=" ", label="truth s")
            ax.plot(index, estimate[i].detach().cpu(), "C1.-", lw=0.8, ms=3, label="estimate ŝ")
            ax.set_ylabel(f"test sample {i}")
        axes[0].legend(loc="upper right")
        axes[-1].set_xlabel("entry of s")
        return figure
