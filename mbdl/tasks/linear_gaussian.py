r"""Estimation in the linear-Gaussian model (MBDL book §5.1, Ex. 5.1): generative versus discriminative learning.

.. math::  s \sim \mathcal N(\mu_s, C_{ss}),\qquad x = H s + w,\quad w \sim \mathcal N(0, \sigma^2 I),

:math:`s \in \mathbb R^n`, :math:`x \in \mathbb R^m`. The book's setup (the defaults): ``n = m = 30``,
:math:`\mu_s = 0`, :math:`C_{ss} = \mathrm{toeplitz}(0.2\,e^{-k})`, ``H`` the notebook's draw with
:math:`\mathcal N(0, 1)` entries (:func:`~mbdl.algorithms.linear_gaussian.book_ex51_H`; other draws give
another MMSE), :math:`\sigma = 0.3`, 10 000 test samples.

The methods are told (:attr:`LinearGaussianEstimation.assumed`, a :class:`~mbdl.algorithms.linear_gaussian.LinearGaussianModel`)
what the notebook gives them: :math:`\mu_s`, :math:`C_{ss}` (or, with ``mismatch.prior_identity``, the wrong
:math:`I`) and :math:`\sigma`; the true ``H`` and the measurement mean they are not told: the model holds a
guess :math:`\tilde H = H + \epsilon E`, :math:`E_{ij} \sim \mathcal N(0, 1)` (``mismatch.H`` :math:`= \epsilon`,
relative to the unit-variance entries of ``H``) and a zero measurement mean, for the model-based rule.

Noise axis: ``snr_db`` :math:`= 10\log_{10}(1/\sigma^2)`, i.e. :math:`\sigma = 10^{-\mathrm{SNR}/20}` (the noise
against a unit-power reference, as tracking's :math:`1/r^2`); the book's :math:`\sigma \in [10^{-2}, 1]` is
SNR 40 … 0 dB, its :math:`\sigma = 0.3` is 10.46 dB. The per-measurement SNR of the signal,
:math:`\mathrm{tr}(H C_{ss} H^\top) / (m\sigma^2)`, is 8.0 dB above it for the notebook's ``H``
(:meth:`LinearGaussianEstimation.signal_to_noise_db`).

Metric: the MSE summed over the ``n`` entries, :math:`\frac1N\sum_i \|\hat s_i - s_i\|^2` (the book's).
Bound: the MMSE with the true model, in closed form,
:math:`\mathrm{tr}\big(C_{ss} - C_{ss}H^\top(HC_{ss}H^\top + \sigma^2 I)^{-1}HC_{ss}\big)`: no estimator has a lower
expected MSE (a finite test set's MSE of any estimator scatters around its own expectation).

Data are float64: at :math:`\sigma = 0.01` the rule inverts a matrix of condition number ~1e5.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from mbdl.algorithms.linear_gaussian import LinearGaussianModel, book_ex51_H, exponential_toeplitz
from mbdl.config import check_choice, check_positive, require
from mbdl.tasks.base import Batch, Metric, Reference, Task, decibels

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: how the true ``H`` is made: the notebook's draw (30 x 30), or a fresh N(0, 1) draw from ``model_seed``.
OBSERVATIONS = ("notebook", "gaussian")


class LinearGaussianEstimation(Task):
    """Estimate ``s`` from ``x = H s + w`` in the linear-Gaussian model, with a configurable told model.

    Args:
        n: signal size; m: measurement size (the notebook's ``H`` needs ``n = m = 30``).
        observation: ``notebook`` (the book's ``H``) or ``gaussian`` (i.i.d. N(0, 1) entries from ``model_seed``).
        prior_scale, prior_rate: :math:`C_{ss} = \\text{scale}\\, e^{-\\text{rate}|i - j|}`.
        noise_std: :math:`\\sigma` (the book's knob), unless ``snr_db`` is set.
        snr_db: :math:`10\\log_{10}(1/\\sigma^2)`; ``None``: use ``noise_std``.
        mismatch: the told model: ``prior_identity`` (:math:`C_{ss}` told as :math:`I`, the notebook's mismatch)
            and ``H`` (:math:`\\epsilon` of the told :math:`\\tilde H = H + \\epsilon E`).
        model_seed: seed of the draws of ``H`` (``gaussian``) and of :math:`E`.
        n_train, n_val, n_test: default data-set sizes.
    """

    metrics = {"mse": Metric("MSE (sum over the entries)")}
    primary_metric = "mse"

    def __init__(
        self,
        n: int = 30,
        m: int = 30,
        observation: str = "notebook",
        prior_scale: float = 0.2,
        prior_rate: float = 1.0,
        noise_std: float = 0.3,
        snr_db: float | None = None,
        mismatch: Mapping[str, Any] | None = None,
        model_seed: int = 0,
        n_train: int = 100,
        n_val: int = 1000,
        n_test: int = 10000,
    ) -> None:
        check_positive(n, "task.n", integer=True)
        check_positive(m, "task.m", integer=True)
        check_choice(observation, "task.observation", OBSERVATIONS)
        require(observation != "notebook" or (n, m) == (30, 30), "task.observation", f"the notebook's H is 30 x 30, got n={n}, m={m} (use gaussian)")
        check_positive(prior_scale, "task.prior_scale")
        check_positive(prior_rate, "task.prior_rate", strict=False)
        check_positive(noise_std, "task.noise_std")
        require(snr_db is None or isinstance(snr_db, (int, float)), "task.snr_db", f"must be a number or null, got {snr_db!r}")
        mismatch = dict(mismatch or {})
        unknown = set(mismatch) - {"prior_identity", "H"}
        require(not unknown, "task.mismatch", f"unknown keys {sorted(unknown)}; valid: prior_identity, H")
        prior_identity, epsilon = mismatch.get("prior_identity", False), mismatch.get("H", 0.0)
        require(isinstance(prior_identity, bool), "task.mismatch.prior_identity", f"must be true or false, got {prior_identity!r}")
        check_positive(epsilon, "task.mismatch.H", strict=False)
        self.set_sizes(n_train, n_val, n_test)
        generator = torch.Generator().manual_seed(model_seed)
        H = book_ex51_H() if observation == "notebook" else torch.randn(m, n, generator=generator, dtype=torch.float64)
        sigma = noise_std if snr_db is None else 10.0 ** (-snr_db / 20.0)
        d = torch.float64
        #: the true model (zero measurement mean).
        self.model = LinearGaussianModel(H, torch.zeros(n, dtype=d), exponential_toeplitz(n, prior_scale, prior_rate), sigma**2, torch.zeros(m, dtype=d))
        told_H = H + epsilon * torch.randn(m, n, generator=generator, dtype=d)
        told_prior = torch.eye(n, dtype=d) if prior_identity else self.model.prior_covariance.clone()
        #: what the methods are told: the prior (or I), sigma, a guess of H and a zero measurement mean.
        self.assumed = LinearGaussianModel(told_H, self.model.prior_mean.clone(), told_prior, sigma**2, torch.zeros(m, dtype=d))

    def signal_to_noise_db(self) -> float:
        """The per-measurement SNR of the true model, :math:`10\\log_{10}(\\mathrm{tr}(HC_{ss}H^\\top)/(m\\sigma^2))`."""
        H, C = self.model.H, self.model.prior_covariance
        return decibels((H @ C @ H.T).trace().item() / (self.model.m * self.model.noise_var))

    def simulate(self, n: int, generator: torch.Generator) -> Batch:
        """``n`` pairs in float64: ``x`` ``(n, m)``, ``s`` ``(n, n_signal)``."""
        s, x = self.model.simulate(n, generator)
        return {"x": x, "s": s}

    def evaluate(self, estimate: Tensor, data: Batch) -> dict[str, float]:
        """``mse``: the squared error summed over the entries, averaged over the samples."""
        return {"mse": (estimate.double() - data["s"].double()).square().sum(-1).mean().item()}

    def references(self, data: Batch) -> dict[str, Reference]:
        """The MMSE of the true model in closed form: a bound."""
        return {"mse": Reference(self.model.mmse().item(), "MMSE with the true model (closed form)", is_bound=True)}

    def unsupervised_loss(self, estimate: Tensor, x: Tensor) -> Tensor:
        r"""The negative log-posterior of the told model per measurement entry,
        :math:`\frac1m\big(\|x - \tilde H\hat s - \tilde\mu_w\|^2/\sigma^2 + (\hat s - \mu_s)^\top C_{ss}^{-1}(\hat s - \mu_s)\big)`
        (mean over the batch), minimised by the MMSE estimate of the told model; no labels needed."""
        told = self.assumed
        H, mean_w, mean_s = (t.to(estimate) for t in (told.H, told.noise_mean, told.prior_mean))
        residual = x.to(estimate) - estimate @ H.T - mean_w
        deviation = estimate - mean_s
        precision = torch.linalg.solve(told.prior_covariance.to(estimate), deviation.mT).mT
        return ((residual.square().sum(-1) / told.noise_var + (deviation * precision).sum(-1)) / told.m).mean()

    def figure(self, estimate: Tensor, data: Batch) -> Figure:
        """The entries of the first two test signals: truth, estimate, the MMSE estimate with the true model."""
        from matplotlib.figure import Figure

        mmse = self.model.mmse_estimator()(data["x"][:2].double())
        figure = Figure(figsize=(8, 4.5), layout="constrained")
        axes = figure.subplots(2, 1, sharex=True)
        index = range(self.model.n)
        for i, ax in enumerate(axes):
            ax.plot(index, data["s"][i].cpu(), "k.-", label="truth s")
            ax.plot(index, mmse[i], "C2--", label="MMSE, true model")
            ax.plot(index, estimate[i].detach().cpu(), "C3.-", label="estimate")
            ax.set_ylabel(f"test sample {i}")
        axes[0].legend(loc="upper right", fontsize="small")
        axes[-1].set_xlabel("entry of s")
        return figure
