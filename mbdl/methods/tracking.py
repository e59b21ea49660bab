"""Tracking on the spectrum: KF/EKF, GRU/LSTM, learned-noise KF, unfolded KF, KalmanNet.

Every method filters the measurements ``x`` ``(b, T, m)`` into ``(b, T, n)`` with the model the task
tells it (``task.assumed``, a :class:`~mbdl.tasks.state_space.GaussianStateSpace`); the filters reuse
:mod:`mbdl.algorithms.kalman`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mbdl.algorithms.kalman import CholeskyCovariance, extended_kalman_filter, gain_filter, linear, riccati_gains
from mbdl.algorithms.parameters import IterationParameter, Mode
from mbdl.algorithms.state_space_fit import fit_em, fit_labelled
from mbdl.config import check_positive, require
from mbdl.methods.base import ClosedForm, Method
from mbdl.nets.recurrent import KalmanGainNet, RecurrentNet, seeded
from mbdl.tasks.state_space import GaussianStateSpace, LinearGaussian


class KalmanFilter(Method):
    """The KF (linear model) or EKF (Lorenz; closed-form Jacobians) with the assumed model; nothing is trained."""

    def forward(self, x: Tensor) -> Tensor:
        return self.assumed.filter(x).s


class RecurrentEstimator(Method):
    """Black box: a GRU/LSTM over the measurements, ``ŝ_t = W [h_t; x_t] + c`` (the model only simulates the data).

    Args:
        assumed: the assumed state-space model (gives the sizes only).
        cell: ``"gru"`` or ``"lstm"``.
        hidden_size, layers: width and depth of the recurrent network.
        init_seed: seed of the weight initialisation; ``None``: the run's seed.
    """

    def __init__(self, assumed: GaussianStateSpace, cell: str = "gru", hidden_size: int = 64, layers: int = 2, init_seed: int | None = None) -> None:
        super().__init__(assumed)
        self.net = seeded(init_seed, lambda: RecurrentNet(assumed.m, assumed.n, hidden_size, layers, cell))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class LearnedNoiseKF(Method):
    r"""Learned optimizer (book Ex. 5.2): the (E)KF whose ``Q``, ``R`` (and optionally ``F``) are trained
    by back-propagation through the filter; ``Q``, ``R`` are Cholesky-parametrised (positive definite
    by construction) and initialised at the assumed model.

    Under ``regime=generative`` (linear models) the same unknowns are fitted by maximum likelihood instead
    (:meth:`fit_model`): from labelled trajectories by the sample covariances of the process and
    measurement residuals (:func:`~mbdl.algorithms.state_space_fit.fit_labelled`), or from the
    measurements alone by EM with the RTS smoother (:func:`~mbdl.algorithms.state_space_fit.fit_em`,
    started at the assumed model).

    Args:
        assumed: the assumed state-space model.
        learn_Q, learn_R: train (fit) ``Q`` / ``R`` (otherwise the assumed ones are kept).
        learn_F: also train (fit) ``F`` (linear models only), initialised at the assumed ``F``.
        em_iterations: EM iterations of the fit without labels.
        em_acceleration: EM's over-relaxation factor :math:`\eta > 1` (``None``: plain EM, slow on Ex. 5.2).
    """

    def __init__(
        self,
        assumed: GaussianStateSpace,
        learn_Q: bool = True,
        learn_R: bool = True,
        learn_F: bool = False,
        em_iterations: int = 100,
        em_acceleration: float | None = 1.5,
    ) -> None:
        super().__init__(assumed)
        model = assumed
        require(not learn_F or isinstance(model, LinearGaussian), "method.learn_F", "needs a linear model (F is a matrix)")
        require(learn_Q or learn_R or learn_F, "method.learn_Q", "nothing to learn: set learn_Q, learn_R or learn_F")
        check_positive(em_iterations, "method.em_iterations", integer=True)
        require(em_acceleration is None or em_acceleration > 1, "method.em_acceleration", f"must be > 1 or null (plain EM), got {em_acceleration!r}")
        self.learn = {"Q": learn_Q, "R": learn_R, "F": learn_F}
        self.em_iterations, self.em_acceleration = em_iterations, em_acceleration
        self.Q = CholeskyCovariance(model.Q, trainable=learn_Q)
        self.R = CholeskyCovariance(model.R, trainable=learn_R)
        self.F = torch.nn.Parameter(model.F.clone()) if learn_F else None

    @property
    def closed_form(self) -> ClosedForm | None:
        """Generative fits from labelled trajectories or (EM) from measurements, for a linear model."""
        return ClosedForm("generative", ("supervised", "unsupervised")) if isinstance(self.assumed, LinearGaussian) else None

    def fit_model(self, x: Tensor, s: Tensor | None) -> int:
        """The ML ``Q``, ``R`` (and ``F``) of the ``learn_*`` options from trajectories ``x`` ``(b, T, m)`` and, when
        labelled, states ``s`` ``(b, T, n)`` (in float64); the others stay as assumed. Returns the fitted scalar count."""
        model = self.assumed.to(torch.zeros((), dtype=torch.float64, device=x.device))
        x = x.double()
        if s is not None:
            known_start = not bool(model.P0.any())  # P0 = 0: the transition from s0 is observed
            fit = fit_labelled(s.double(), x, model.F, model.H, model.s0 if known_start else None, fit_F=self.learn["F"])
        else:
            fit = fit_em(
                x, model.F, model.H, model.Q, model.R, model.s0, model.P0, self.em_iterations,
                fit_F=self.learn["F"], fit_Q=self.learn["Q"], fit_R=self.learn["R"], acceleration=self.em_acceleration,
            )
        count = 0
        for name, fitted in (("Q", fit.Q), ("R", fit.R)):
            if self.learn[name]:
                getattr(self, name).set(fitted)
                count += len(fitted) * (len(fitted) + 1) // 2
        if self.F is not None:
            with torch.no_grad():
                self.F.copy_(fit.F)
            count += self.F.numel()
        return count

    def forward(self, x: Tensor) -> Tensor:
        model = self.assumed.to(x)
        f, jacobian_f = linear(self.F) if self.F is not None else (model.f, model.jacobian_f)
        Q, R = self.Q().to(x), self.R().to(x)
        return extended_kalman_filter(x, f, model.h, jacobian_f, model.jacobian_h, Q, R, model.s0, model.P0).s


def nominal_riccati_gains(assumed: GaussianStateSpace, steps: int) -> Tensor:
    """Riccati gains ``(steps, n, m)`` of the assumed model, linearised along the noise-free trajectory from ``s0``
    (for a linear model: exactly the KF's gains)."""
    model = assumed.to(torch.zeros((), dtype=torch.float64))
    s, jacobians = model.s0[None], []
    for _ in range(steps):
        jacobians.append(model.jacobian_f(s).expand(1, model.n, model.n)[0])
        s = model.f(s)
    return riccati_gains(torch.stack(jacobians), model.H, model.Q, model.R, model.P0, steps).to(torch.get_default_dtype())


class UnfoldedKF(Method):
    """The KF recursion unfolded over time, ``ŝ_t = f(ŝ_{t-1}) + K_t (x_t - h(f(ŝ_{t-1})))``, with trained gains.

    The gains are initialised from the Riccati recursion of the assumed model (for Lorenz, linearised
    along the noise-free trajectory from ``s0``), so that the untrained network is the (linearised) KF.
    Steps beyond ``iterations`` reuse the last gain (the steady-state gain of a linear model).

    Args:
        assumed: the assumed state-space model.
        iterations: number of unfolded steps with their own gain (the config's default: the task's ``steps``).
        mode: ``"per_iteration"`` (one gain per step) or ``"shared"`` (one gain, initialised at the last Riccati gain).
    """

    def __init__(self, assumed: GaussianStateSpace, iterations: int = 100, mode: Mode = "per_iteration") -> None:
        super().__init__(assumed)
        check_positive(iterations, "method.iterations", integer=True)
        self.iterations = iterations
        gains = nominal_riccati_gains(assumed, iterations)
        self.gain = IterationParameter(gains[-1], self.iterations, mode, "method.mode")
        if mode == "per_iteration":
            with torch.no_grad():
                for t, K in enumerate(gains):
                    self.gain[t].copy_(K)

    def forward(self, x: Tensor) -> Tensor:
        model = self.assumed.to(x)
        last = self.iterations - 1
        return gain_filter(x, model.f, model.h, lambda t, *_: self.gain[min(t, last)], model.s0)


class KalmanNet(Method):
    """KalmanNet (Revach et al., 2022): the KF structure with the assumed ``f``, ``h`` and the gain from
    :class:`~mbdl.nets.recurrent.KalmanGainNet` fed with the features F1-F4.

    Args:
        assumed: the assumed state-space model.
        in_mult, out_mult: width multipliers of the gain network (KalmanNet: 5 and 40).
        grad_clip: each parameter's gradient is rescaled to at most this L2 norm during training
            (KalmanNet's users report exploding gradients); ``null`` disables it.
        init_seed: seed of the weight initialisation; ``None``: the run's seed.
    """

    def __init__(self, assumed: GaussianStateSpace, in_mult: int = 5, out_mult: int = 40, grad_clip: float | None = 1.0, init_seed: int | None = None) -> None:
        super().__init__(assumed)
        self.net = seeded(init_seed, lambda: KalmanGainNet(assumed.n, assumed.m, in_mult, out_mult))
        if grad_clip is not None:
            check_positive(grad_clip, "method.grad_clip")
            for parameter in self.net.parameters():
                parameter.register_hook(lambda g: g * (grad_clip / (g.norm() + 1e-12)).clamp(max=1.0))

    def forward(self, x: Tensor) -> Tensor:
        model = self.assumed.to(x)
        b = x.shape[0]
        self.net.reset(b, x)
        start = model.s0.expand(b, -1)
        memory = {"x": model.h(start), "s": start, "s_prior": start}  # x_{t-1}, ŝ_{t-2}, ŝ_{t-1|t-2}

        def gain(t: int, s_previous: Tensor, s_prior: Tensor, x_t: Tensor, innovation: Tensor) -> Tensor:
            K = self.net(x_t - memory["x"], innovation, s_previous - memory["s"], s_previous - memory["s_prior"])
            memory.update(x=x_t, s=s_previous, s_prior=s_prior)
            return K

        return gain_filter(x, model.f, model.h, gain, model.s0)
