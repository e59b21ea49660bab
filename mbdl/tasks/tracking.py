r"""Tracking: filter the states :math:`s_{1..T}` of a Gaussian state-space model from its measurements :math:`x_{1..T}`.

The model (:mod:`mbdl.tasks.state_space`) is a preset chosen with ``task/model=<preset>``
(``kinematics_1d``, ``canonical_2x2``, ``lorenz``); the methods are told
``model.mismatched(**mismatch)`` (rotated ``F`` or ``H``, scaled or identity ``Q``, scaled ``R``,
lower Taylor order for Lorenz).

Data: ``x`` ``(b, T, m)`` measurements, ``s`` ``(b, T, n)`` states :math:`s_1, \dots, s_T` (``s_0`` is
the model's known start). Metrics: MSE in dB over all trajectories, steps and state entries
(``mse_db``, as KalmanNet reports it), over the position entries (``position_mse_db``) and the
position MSE in linear units (``position_mse``, as the MBDL book reports it). Bound: the same
metrics of the KF with the *true* model (the MMSE for linear-Gaussian models); for the nonlinear
Lorenz model the EKF with the true model, a reference that is not a bound. The sweep axis
``task.snr_db`` is :math:`10\log_{10}(1/r^2)` (KalmanNet's convention) for every preset.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from mbdl.config import check_positive
from mbdl.tasks.base import Batch, Metric, Reference, Task, decibels
from mbdl.tasks.state_space import GaussianStateSpace, LinearGaussian

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def mse_db(estimate: Tensor, truth: Tensor) -> float:
    """:math:`10\\log_{10}` of the mean squared error over every entry."""
    return decibels((estimate.double() - truth.double()).square().mean().item())


class Tracking(Task):
    r"""Filtering on a state-space model, with a configurable mismatch of the assumed model.

    Args:
        model: the true model's factory (a preset, ``configs/task/model/<preset>.yaml``), called with ``snr_db``.
        snr_db: the measurement SNR :math:`10\log_{10}(1/r^2)` in dB with :math:`R = r^2 I` (KalmanNet's "1/r²"; the
            sweep axis ``task.snr_db`` of every task); ``None``: the preset's own noise (``kinematics_1d``: ``sigma_w``).
        steps: trajectory length ``T``.
        mismatch: keyword arguments of :meth:`GaussianStateSpace.mismatched` (``F_rotation_deg``,
            ``H_rotation_deg``, ``Q_scale``, ``R_scale``, ``Q_identity``, ``taylor_order``).
        n_train, n_val, n_test: default numbers of trajectories.
    """

    metrics = {"mse_db": Metric("MSE", "dB"), "position_mse_db": Metric("position MSE", "dB"), "position_mse": Metric("position MSE")}
    primary_metric = "mse_db"

    def __init__(
        self,
        model: Callable[..., GaussianStateSpace],
        snr_db: float | None = None,
        steps: int = 100,
        mismatch: Mapping[str, Any] | None = None,
        n_train: int = 1000,
        n_val: int = 100,
        n_test: int = 200,
    ) -> None:
        check_positive(steps, "task.steps", integer=True)
        #: the true model.
        self.model = model() if snr_db is None else model(snr_db=snr_db)
        self.steps = steps
        self.set_sizes(n_train, n_val, n_test)
        #: the model the methods are told.
        self.assumed = self.model.mismatched(**dict(mismatch or {}))

    def simulate(self, n: int, generator: torch.Generator) -> Batch:
        """``n`` trajectories: ``x`` ``(n, T, m)``, ``s`` ``(n, T, n_state)`` in the default dtype."""
        s, x = self.model.simulate(n, self.steps, generator)
        dtype = torch.get_default_dtype()
        return {"x": x.to(dtype), "s": s.to(dtype)}

    def evaluate(self, estimate: Tensor, data: Batch) -> dict[str, float]:
        """``mse_db`` (full state), ``position_mse_db`` and ``position_mse`` of ``estimate`` ``(b, T, n)``."""
        s, position = data["s"], list(self.model.position)
        position_mse = (estimate[..., position].double() - s[..., position].double()).square().mean().item()
        return {"mse_db": mse_db(estimate, s), "position_mse_db": decibels(position_mse), "position_mse": position_mse}

    def references(self, data: Batch) -> dict[str, Reference]:
        """The metrics of the KF with the true model, in float64: the MMSE, a bound, for a linear-Gaussian model;
        for a nonlinear one (Lorenz) the EKF with the true model, a reference."""
        linear = isinstance(self.model, LinearGaussian)
        name = "Kalman filter with the true model (MMSE)" if linear else "extended Kalman filter with the true model"
        metrics = self.evaluate(self.model.filter(data["x"].double()).s, data)
        return {key: Reference(value, name, is_bound=linear) for key, value in metrics.items()}

    def unsupervised_loss(self, estimate: Tensor, x: Tensor) -> Tensor:
        r"""Observation prediction :math:`\frac{1}{TM}\sum_t \|x_t - h(f(\hat s_{t-1}))\|^2` with the assumed model
        (:math:`\hat s_0 = s_0`): KalmanNet's unsupervised loss, which needs no state labels."""
        model = self.assumed.to(estimate)
        b, T, n = estimate.shape
        previous = torch.cat([model.s0.expand(b, 1, n), estimate[:, :-1]], dim=1).reshape(b * T, n)
        predicted = model.h(model.f(previous)).reshape(b, T, -1)
        return (x.to(estimate) - predicted).square().mean()

    def figure(self, estimate: Tensor, data: Batch) -> Figure:
        """Each state entry of the first test trajectory against time: truth, estimate, true-model KF."""
        import matplotlib.pyplot as plt

        s, reference = data["s"][0], self.model.filter(data["x"][:1].double()).s[0]
        figure, axes = plt.subplots(s.shape[1], 1, figsize=(8, 2.2 * s.shape[1]), sharex=True, squeeze=False)
        for i, axis in enumerate(axes[:, 0]):
            axis.plot(s[:, i], color="black", label="true state")
            axis.plot(reference[:, i], color="tab:green", linestyle="--", label="KF, true model")
            axis.plot(estimate[0, :, i].detach().cpu(), color="tab:red", label="estimate")
            axis.set_ylabel(f"$s_{i + 1}$")
        axes[0, 0].legend(loc="best", fontsize="small")
        axes[-1, 0].set_xlabel("time step t")
        figure.tight_layout()
        return figure
