r"""The linear-Gaussian task on the spectrum (MBDL book §5.1, Ex. 5.1): the MMSE rule and an affine/MLP black box.

* model-based: :class:`GaussianMMSE` — the MMSE rule with the told model,
  :math:`\hat s = \mu_s + C_{ss}\tilde H^\top(\tilde H C_{ss}\tilde H^\top + \sigma^2 I)^{-1}(x - \tilde H\mu_s - \tilde\mu_w)`;
  under ``regime=generative`` :math:`\tilde H, \tilde\mu_w` are replaced by their ML fit to the labelled pairs
  (generative learning: the rule inherits the told prior, right or wrong);
* learned optimizer: the same rule with :math:`\tilde H, \tilde\mu_w` trained through it for the MSE
  (``learn_H``; discriminative learning of the model's unknown part);
* black box: :class:`AffineNetwork` — a linear layer (or an MLP) ``x -> s``. The linear layer's closed-form fit
  (``fit=least_squares``) is the book's discriminative learning, the exact minimiser of the training MSE,
  :math:`\hat s = \hat C_{sx}\hat C_{xx}^{-1}(x - \bar x) + \bar s`; with ``fit=gradient`` the trainer fits it.

Everything runs in float64 (the task's data): the rule's solve at :math:`\sigma = 0.01` is ill-conditioned.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from mbdl.algorithms.linear_gaussian import LinearGaussianModel, fit_affine, fit_observation, mmse_estimator
from mbdl.config import check_choice, check_positive, require
from mbdl.methods.base import ClosedForm, Method
from mbdl.nets.mlp import MLP

#: how the black box learns: the closed-form least squares (a linear layer only), or gradient steps.
FITS = ("least_squares", "gradient")


class GaussianMMSE(Method):
    r"""The MMSE rule of the told linear-Gaussian model (:func:`~mbdl.algorithms.linear_gaussian.mmse_estimator`).

    :math:`\mu_s, C_{ss}, \sigma^2` are the told ones; :math:`H, \mu_w` start at the told guess and are trained
    through the rule (``learn_H``) or fitted by maximum likelihood (``regime=generative``, :meth:`fit_model`).

    Args:
        assumed: the told model.
        learn_H: train ``H`` and ``μ_w`` by gradient steps (the learned-optimizer point); ``False``: fixed.
        ridge: ``λ`` of the generative fit of ``H`` (:func:`~mbdl.algorithms.linear_gaussian.fit_observation`),
            0 for plain least squares (needs more pairs than entries of ``s``).
    """

    closed_form = ClosedForm("generative", ("supervised",))

    def __init__(self, assumed: LinearGaussianModel, learn_H: bool = False, ridge: float = 0.0) -> None:
        super().__init__(assumed)
        check_positive(ridge, "method.ridge", strict=False)
        self.ridge = ridge
        d = torch.float64
        for name in ("prior_mean", "prior_covariance"):
            self.register_buffer(name, getattr(assumed, name).to(d).clone())
        self.noise_var = assumed.noise_var
        H, noise_mean = assumed.H.to(d).clone(), assumed.noise_mean.to(d).clone()
        if learn_H:
            self.H, self.noise_mean = nn.Parameter(H), nn.Parameter(noise_mean)
        else:
            self.register_buffer("H", H)
            self.register_buffer("noise_mean", noise_mean)

    def forward(self, x: Tensor) -> Tensor:
        """Estimates ``(b, n)`` of ``x`` ``(b, m)``, in float64."""
        rule = mmse_estimator(self.H, self.prior_mean, self.prior_covariance, self.noise_var, self.noise_mean)
        return rule(x.to(self.H.dtype))

    def fit_model(self, x: Tensor, s: Tensor | None) -> int:
        r"""Generative learning: :math:`\hat H = \hat C_{xs}\hat C_{ss}^{-1}`, :math:`\hat\mu_w = \bar x - \hat H\bar s` from the
        pairs ``s`` ``(b, n)``, ``x`` ``(b, m)`` (the ML estimate, :func:`~mbdl.algorithms.linear_gaussian.fit_observation`).
        Returns the ``m (n + 1)`` fitted entries."""
        H, noise_mean = fit_observation(s.to(self.H), x.to(self.H), self.ridge)
        with torch.no_grad():
            self.H.copy_(H)
            self.noise_mean.copy_(noise_mean)
        return H.numel() + noise_mean.numel()


class AffineNetwork(Method):
    r"""Black box: an MLP ``x -> s`` (no hidden layer: the affine map :math:`\hat s = Wx + b`), in float64.

    With ``fit=least_squares`` (a linear layer only) it is fitted in closed form, the exact minimiser of the
    training MSE (:meth:`fit_model`, the book's discriminative learning); with ``fit=gradient`` the trainer fits it.

    Args:
        assumed: the told model (gives the sizes only).
        hidden: widths of the hidden layers (empty: a linear layer).
        activation: ``relu``, ``gelu`` or ``tanh``.
        fit: one of :data:`FITS`.
    """

    def __init__(self, assumed: LinearGaussianModel, hidden: Sequence[int] = (), activation: str = "relu", fit: str = "least_squares") -> None:
        super().__init__(assumed)
        check_choice(fit, "method.fit", FITS)
        require(fit == "gradient" or not hidden, "method.fit", f"least_squares fits a linear layer; with hidden layers {list(hidden)} use gradient")
        self.fit = fit
        self.net = MLP(assumed.m, assumed.n, hidden, activation).double()

    @property
    def closed_form(self) -> ClosedForm | None:
        """The linear layer's least squares, from labelled pairs."""
        return ClosedForm("discriminative", ("supervised",)) if self.fit == "least_squares" else None

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.double())

    def fit_model(self, x: Tensor, s: Tensor | None) -> int:
        r"""Least squares of ``s`` ``(b, n)`` on ``x`` ``(b, m)`` with an intercept (:func:`~mbdl.algorithms.linear_gaussian.fit_affine`):
        :math:`W = \hat C_{sx}\hat C_{xx}^{-1}`, :math:`b = \bar s - W\bar x`. Returns the ``n (m + 1)`` fitted scalars."""
        (layer,) = self.net.net
        W, b = fit_affine(x.double(), s.double())
        with torch.no_grad():
            layer.weight.copy_(W)
            layer.bias.copy_(b)
        return W.numel() + b.numel()
