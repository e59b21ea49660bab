r"""Linear estimation in the linear-Gaussian model: the MMSE rule, and learning it generatively or discriminatively.

The model (MBDL book §5.1, Ex. 5.1):

.. math::  s \sim \mathcal N(\mu_s, C_{ss}),\qquad x = H s + w,\quad w \sim \mathcal N(\mu_w, \sigma^2 I),

with :math:`s \in \mathbb R^n`, :math:`x \in \mathbb R^m`. Every estimator here is affine,
:math:`\hat s = W x + b` (:class:`AffineEstimator`), and its MSE under the model is a closed form
(:meth:`AffineEstimator.mse`).

* **MMSE** (the bound, or the model-based rule with an assumed model; :func:`mmse_estimator`):

  .. math::  \hat s = \mu_s + C_{ss} H^\top (H C_{ss} H^\top + \sigma^2 I)^{-1} (x - H\mu_s - \mu_w),
             \qquad \mathrm{MSE} = \mathrm{tr}\big(C_{ss} - C_{ss}H^\top (H C_{ss} H^\top + \sigma^2 I)^{-1} H C_{ss}\big).

* **Generative learning** (:func:`generative_estimator`): the unknown parts of the model, :math:`H`
  and :math:`\mu_w`, by maximum likelihood from training pairs :math:`(s_i, x_i)` — least squares
  of :math:`x` on :math:`s` with an intercept, :math:`\hat H = \hat C_{xs}\hat C_{ss}^{-1}`,
  :math:`\hat\mu_w = \bar x - \hat H \bar s` (:func:`fit_observation`) — then the MMSE rule with the
  prior :math:`(\mu_s, C_{ss})` and :math:`\sigma^2` the method is told. A wrong told prior is inherited.
* **Discriminative learning** (:func:`discriminative_estimator`): the affine rule fitted for the
  squared loss directly, least squares of :math:`s` on :math:`x`:
  :math:`\hat s = \hat C_{sx}\hat C_{xx}^{-1}(x - \bar x) + \bar s`. It uses no prior at all.

Shapes: one model has ``H`` ``(m, n)``; data are ``s`` ``(..., n_t, n)``, ``x`` ``(..., n_t, m)``,
and the fits broadcast over the leading ``...`` (independent training sets, e.g. seeds), giving
``weight`` ``(..., n, m)`` and ``bias`` ``(..., n)``. Estimate in float64: the sample covariances at
``n_t`` close to ``n`` are ill-conditioned.

Example::

    >>> model = book_ex51(noise_std=0.3, generator=torch.Generator().manual_seed(0))
    >>> s, x = model.simulate(100, torch.Generator().manual_seed(1))
    >>> generative = generative_estimator(s, x, model.prior_mean, model.prior_covariance, model.noise_var)
    >>> bool(generative.mse(model) > model.mmse())
    True
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import Tensor


def _apply(A: Tensor, v: Tensor) -> Tensor:
    """``A v`` for ``A`` ``(..., k, l)`` and ``v`` ``(..., l)``."""
    return (A @ v.unsqueeze(-1)).squeeze(-1)


@dataclass(frozen=True)
class LinearGaussianModel:
    r""":math:`s \sim \mathcal N(\mu_s, C_{ss})`, :math:`x = H s + w`, :math:`w \sim \mathcal N(\mu_w, \sigma^2 I)`.

    Attributes:
        H: ``(m, n)`` observation matrix.
        prior_mean: :math:`\mu_s` ``(n,)``.
        prior_covariance: :math:`C_{ss}` ``(n, n)``.
        noise_var: :math:`\sigma^2`.
        noise_mean: :math:`\mu_w` ``(m,)`` (the measurement mean of Ex. 5.1, unknown to the methods).
    """

    H: Tensor
    prior_mean: Tensor
    prior_covariance: Tensor
    noise_var: float
    noise_mean: Tensor

    @property
    def n(self) -> int:
        return self.H.shape[-1]

    @property
    def m(self) -> int:
        return self.H.shape[-2]

    def replace(self, **changes: Tensor | float) -> LinearGaussianModel:
        """A copy with some fields changed (the model a method is told, e.g. ``prior_covariance=I``)."""
        return dataclasses.replace(self, **changes)

    def simulate(self, count: int, generator: torch.Generator, batch: tuple[int, ...] = ()) -> tuple[Tensor, Tensor]:
        """``count`` i.i.d. pairs per training set, float64: ``s`` ``(*batch, count, n)``, ``x`` ``(*batch, count, m)``."""
        d = torch.float64
        L = torch.linalg.cholesky(self.prior_covariance.to(d))
        s = self.prior_mean.to(d) + torch.randn(*batch, count, self.n, generator=generator, dtype=d) @ L.T
        w = self.noise_mean.to(d) + self.noise_var**0.5 * torch.randn(*batch, count, self.m, generator=generator, dtype=d)
        return s, s @ self.H.to(d).T + w

    def mmse_estimator(self) -> AffineEstimator:
        """The MMSE estimator with this model (:func:`mmse_estimator`)."""
        return mmse_estimator(self.H, self.prior_mean, self.prior_covariance, self.noise_var, self.noise_mean)

    def mmse_error_covariance(self) -> Tensor:
        """:math:`C_{ss} - C_{ss}H^\\top (H C_{ss} H^\\top + \\sigma^2 I)^{-1} H C_{ss}`, ``(n, n)``."""
        return mmse_error_covariance(self.H, self.prior_covariance, self.noise_var)

    def mmse(self) -> Tensor:
        """The minimum MSE :math:`E\\|s - \\hat s\\|^2` (summed over the ``n`` entries), a scalar tensor."""
        return self.mmse_error_covariance().diagonal(dim1=-2, dim2=-1).sum(-1)


@dataclass(frozen=True)
class AffineEstimator:
    r"""An affine estimator :math:`\hat s = W x + b`.

    Attributes:
        weight: :math:`W` ``(..., n, m)``.
        bias: :math:`b` ``(..., n)``.
    """

    weight: Tensor
    bias: Tensor

    def __call__(self, x: Tensor) -> Tensor:
        """Estimates ``(..., b, n)`` of measurements ``x`` ``(..., b, m)``."""
        return x @ self.weight.to(x).mT + self.bias.to(x).unsqueeze(-2)

    def error_moments(self, model: LinearGaussianModel) -> tuple[Tensor, Tensor]:
        r"""Mean ``(..., n)`` and covariance ``(..., n, n)`` of its error :math:`e = s - Wx - b` under ``model``.

        :math:`e = (I - WH)s - Ww - b` is Gaussian with mean :math:`(I - WH)\mu_s - W\mu_w - b` and
        covariance :math:`(I - WH)C_{ss}(I - WH)^\top + \sigma^2 W W^\top`.
        """
        W, b = self.weight, self.bias
        A = torch.eye(W.shape[-2], dtype=W.dtype, device=W.device) - W @ model.H.to(W)
        mean = _apply(A, model.prior_mean.to(W)) - _apply(W, model.noise_mean.to(W)) - b
        return mean, A @ model.prior_covariance.to(W) @ A.mT + model.noise_var * W @ W.mT

    def mse(self, model: LinearGaussianModel) -> Tensor:
        r"""Its MSE :math:`E\|s - Wx - b\|^2` under ``model`` in closed form, ``(...)``: the trace of the error
        covariance plus the squared norm of the error mean (:meth:`error_moments`)."""
        mean, covariance = self.error_moments(model)
        return covariance.diagonal(dim1=-2, dim2=-1).sum(-1) + mean.square().sum(-1)

    def squared_error_variance(self, model: LinearGaussianModel) -> Tensor:
        r""":math:`\mathrm{Var}\,\|e\|^2 = 2\,\mathrm{tr}(\Sigma^2) + 4\mu^\top\Sigma\mu` of the Gaussian error :math:`e \sim \mathcal N(\mu, \Sigma)`, ``(...)``.

        A Monte-Carlo MSE over ``k`` test samples has the standard deviation :math:`\sqrt{\cdot / k}`.
        """
        mean, covariance = self.error_moments(model)
        return 2 * covariance.square().sum((-2, -1)) + 4 * (mean * _apply(covariance, mean)).sum(-1)


def mmse_estimator(H: Tensor, prior_mean: Tensor, prior_covariance: Tensor, noise_var: float | Tensor, noise_mean: Tensor | None = None) -> AffineEstimator:
    r"""The MMSE (= LMMSE) estimator of the linear-Gaussian model with the given (assumed or fitted) parameters.

    .. math::  W = C_{ss} H^\top S^{-1},\quad S = H C_{ss} H^\top + \sigma^2 I,\qquad
               b = \mu_s - W (H \mu_s + \mu_w),

    by a linear solve with the symmetric :math:`S` (no inverse is formed).

    Args:
        H: ``(..., m, n)``; prior_mean: ``(n,)``; prior_covariance: ``(n, n)``; noise_var: :math:`\sigma^2`
            (a float or a tensor broadcasting to ``(...)``); noise_mean: ``(..., m)`` (default 0).

    Returns:
        :class:`AffineEstimator` with ``weight`` ``(..., n, m)``, ``bias`` ``(..., n)``.
    """
    C = prior_covariance.to(H)
    eye = torch.eye(H.shape[-2], dtype=H.dtype, device=H.device)
    noise_var = torch.as_tensor(noise_var, dtype=H.dtype, device=H.device)[..., None, None]
    S = H @ C @ H.mT + noise_var * eye
    W = torch.linalg.solve(0.5 * (S + S.mT), H @ C).mT
    mean_x = _apply(H, prior_mean.to(H))
    if noise_mean is not None:
        mean_x = mean_x + noise_mean.to(H)
    return AffineEstimator(W, prior_mean.to(H) - _apply(W, mean_x))


def mmse_error_covariance(H: Tensor, prior_covariance: Tensor, noise_var: float | Tensor) -> Tensor:
    r"""Posterior covariance :math:`C_{ss} - W H C_{ss}` of the MMSE estimator (:func:`mmse_estimator`'s ``W``), ``(..., n, n)``."""
    W = mmse_estimator(H, torch.zeros(H.shape[-1], dtype=H.dtype, device=H.device), prior_covariance, noise_var).weight
    C = prior_covariance.to(H)
    E = C - W @ H @ C
    return 0.5 * (E + E.mT)


def fit_affine(inputs: Tensor, targets: Tensor, ridge: float = 0.0, intercept: bool = True) -> tuple[Tensor, Tensor]:
    r"""Least squares :math:`\min_{A, c} \sum_i \|y_i - A u_i - c\|^2 + \lambda \|A\|_F^2` over the samples ``i``.

    With the intercept the data are centred, :math:`\tilde u_i = u_i - \bar u`, :math:`\tilde y_i = y_i - \bar y`, and

    .. math::  \hat A = \tilde Y^\top \tilde U (\tilde U^\top \tilde U + \lambda I)^{-1},\qquad \hat c = \bar y - \hat A \bar u

    (the intercept is not penalised); without it, :math:`c = 0` and nothing is centred. Solved by
    :func:`torch.linalg.lstsq` on :math:`\tilde U` stacked over :math:`\sqrt\lambda I` (the normal
    equations are never formed); ``ridge = 0`` needs more samples than inputs (plus one with the intercept).

    Args:
        inputs: :math:`u_i`, ``(..., n_t, k)``.
        targets: :math:`y_i`, ``(..., n_t, l)``.
        ridge: :math:`\lambda \ge 0`.
        intercept: fit :math:`c`.

    Returns:
        ``A`` ``(..., l, k)`` and ``c`` ``(..., l)`` (zeros without the intercept).
    """
    if ridge < 0:
        raise ValueError(f"ridge must be >= 0, got {ridge}")
    if intercept:
        u_mean, y_mean = inputs.mean(-2), targets.mean(-2)
        U, Y = inputs - u_mean.unsqueeze(-2), targets - y_mean.unsqueeze(-2)
    else:
        U, Y = inputs, targets
    k = U.shape[-1]
    if ridge > 0:
        penalty = ridge**0.5 * torch.eye(k, dtype=U.dtype, device=U.device).expand(*U.shape[:-2], k, k)
        U = torch.cat([U, penalty], dim=-2)
        Y = torch.cat([Y, Y.new_zeros(*Y.shape[:-2], k, Y.shape[-1])], dim=-2)
    A = torch.linalg.lstsq(U, Y).solution.mT
    c = y_mean - _apply(A, u_mean) if intercept else A.new_zeros(A.shape[:-1])
    return A, c


def fit_observation(s: Tensor, x: Tensor, ridge: float = 0.0, intercept: bool = True) -> tuple[Tensor, Tensor]:
    r"""Maximum-likelihood :math:`\hat H` (and measurement mean :math:`\hat\mu_w`) from pairs :math:`(s_i, x_i)`.

    Under :math:`x = Hs + w`, :math:`w \sim \mathcal N(\mu_w, \sigma^2 I)` the likelihood is maximised by
    least squares of :math:`x` on :math:`s` (:func:`fit_affine`):
    :math:`\hat H = \hat C_{xs}\hat C_{ss}^{-1}`, :math:`\hat\mu_w = \bar x - \hat H\bar s`. ``ridge`` > 0 is the
    MAP estimate under i.i.d. :math:`\mathcal N(0, \sigma^2/\lambda)` entries of :math:`H` (needed when
    ``n_t <= n``, as in sparse recovery with few pairs); ``intercept=False`` for a model without a
    measurement mean (sparse recovery).

    Args:
        s: ``(..., n_t, n)`` signals; x: ``(..., n_t, m)`` measurements.

    Returns:
        ``H`` ``(..., m, n)`` and ``noise_mean`` ``(..., m)``.
    """
    return fit_affine(s, x, ridge, intercept)


def discriminative_estimator(s: Tensor, x: Tensor, ridge: float = 0.0) -> AffineEstimator:
    r"""The affine rule learned for the squared loss: :math:`\hat s = \hat C_{sx}\hat C_{xx}^{-1}(x - \bar x) + \bar s`.

    Least squares of :math:`s` on :math:`x` with an intercept (:func:`fit_affine`), from
    ``s`` ``(..., n_t, n)``, ``x`` ``(..., n_t, m)``; no model knowledge is used.
    """
    return AffineEstimator(*fit_affine(x, s, ridge, intercept=True))


def generative_estimator(
    s: Tensor, x: Tensor, prior_mean: Tensor, prior_covariance: Tensor, noise_var: float | Tensor, ridge: float = 0.0
) -> AffineEstimator:
    r"""Generative learning: :math:`\hat H, \hat\mu_w` by :func:`fit_observation`, then the MMSE rule with the told prior.

    .. math::  \hat s = \mu_s + C_{ss}\hat H^\top(\hat H C_{ss}\hat H^\top + \sigma^2 I)^{-1}(x - \hat H\mu_s - \hat\mu_w),

    with :math:`\mu_s, C_{ss}, \sigma^2` as the method is told them (a wrong :math:`C_{ss}` is
    inherited). Equals the book's :math:`\mu_s + (\hat C_{ss}^{-1}\hat C_{sx}\hat C_{xs}\hat C_{ss}^{-1} +
    \sigma^2 C_{ss}^{-1})^{-1}\hat C_{ss}^{-1}\hat C_{sx}(x - \bar x - \hat C_{xs}\hat C_{ss}^{-1}(\mu_s - \bar s))`.

    Args:
        s: ``(..., n_t, n)``; x: ``(..., n_t, m)``; prior_mean ``(n,)``; prior_covariance ``(n, n)``.
    """
    H, noise_mean = fit_observation(s, x, ridge)
    return mmse_estimator(H, prior_mean, prior_covariance, noise_var, noise_mean)


def exponential_toeplitz(n: int, scale: float = 0.2, rate: float = 1.0) -> Tensor:
    r"""The Toeplitz covariance :math:`[C]_{ij} = \text{scale}\cdot e^{-\text{rate}\,|i-j|}`, ``(n, n)`` float64."""
    k = torch.arange(n, dtype=torch.float64)
    return scale * torch.exp(-rate * (k[:, None] - k[None, :]).abs())


def book_ex51(noise_std: float = 0.3, H: Tensor | None = None, n: int = 30, generator: torch.Generator | None = None) -> LinearGaussianModel:
    r"""MBDL book Ex. 5.1: ``n = m = 30``, :math:`\mu_s = 0`, :math:`C_{ss} = \mathrm{toeplitz}(0.2 e^{-k})`,
    :math:`\mu_w = 0`, :math:`\sigma` = ``noise_std``; ``H`` given, or drawn with i.i.d. :math:`\mathcal N(0, 1)` entries."""
    if H is None:
        H = torch.randn(n, n, generator=generator, dtype=torch.float64)
    m, n = H.shape
    return LinearGaussianModel(H.to(torch.float64), torch.zeros(n, dtype=torch.float64), exponential_toeplitz(n), noise_std**2, torch.zeros(m, dtype=torch.float64))


def book_ex51_H() -> Tensor:
    """The H of the book's Ex. 5.1 notebook, ``(30, 30)`` float64: ``np.random.seed(12)``, then ``np.random.randn(30, 30)`` (no draw before it)."""
    import numpy as np

    return torch.from_numpy(np.random.RandomState(12).randn(30, 30))


#: MSE (summed over the 30 entries) of the book's Ex. 5.1 notebook, its own code run once (seed 12, 10 000 test
#: draws, :func:`book_ex51_H`): ``(n_t, σ) -> (discriminative, generative, MMSE, generative with the prior told as I)``.
BOOK_EX51_PUBLISHED: dict[tuple[int, float], tuple[float, float, float, float]] = {
    (42, 0.3): (1.464, 1.132, 0.492, 2.247),
    (97, 0.3): (0.723, 0.604, 0.499, 1.058),
    (1777, 0.3): (0.502, 0.498, 0.493, 0.776),
    (100, 1.0): (2.378, 1.977, 1.631, 3.173),
    (100, 0.01): (0.0021, 0.0021, 0.0014, 0.0020),
}
