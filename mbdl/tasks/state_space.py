r"""Gaussian state-space models :math:`s_t = f(s_{t-1}) + v_t`, :math:`x_t = H s_t + w_t`.

:math:`v_t \sim \mathcal{N}(0, Q)`, :math:`w_t \sim \mathcal{N}(0, R)`, :math:`s_0 \sim \mathcal{N}(\hat s_0, P_0)`.
The observation is linear in every preset (identity or rotated, as in KalmanNet's benchmarks);
the evolution is linear (:class:`LinearGaussian`) or the Lorenz attractor (:class:`Lorenz`).

Presets (the factories named in ``configs/task/model/*.yaml``):

* :func:`kinematics_1d` — the MBDL book's running example (Ex. 5.2);
* :func:`canonical` — KalmanNet's canonical model, ``F`` ones on the first row above the identity;
* :func:`lorenz` — KalmanNet's Lorenz attractor, discretised by a Taylor expansion of order ``J``.

:meth:`GaussianStateSpace.mismatched` derives the model the methods are told from the true one.
"""

from __future__ import annotations

import dataclasses
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from mbdl.algorithms.kalman import FilterResult, autograd_jacobian, extended_kalman_filter
from mbdl.config import check_positive, require


def plane_rotation(k: int, degrees: float) -> Tensor:
    """``(k, k)`` rotation by ``degrees`` in the plane of the first two coordinates (float64)."""
    a = math.radians(degrees)
    rotation = torch.eye(k, dtype=torch.float64)
    if degrees == 0:
        return rotation
    rotation[:2, :2] = torch.tensor([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]], dtype=torch.float64)
    return rotation


def covariance_sqrt(C: Tensor) -> Tensor:
    """A square root ``L`` with ``L Lᵀ = C`` for a symmetric PSD ``C`` (also singular, e.g. ``P0 = 0``)."""
    eigenvalues, U = torch.linalg.eigh(C)
    return U * eigenvalues.clamp(min=0).sqrt()


@dataclass(frozen=True)
class GaussianStateSpace(ABC):
    """Common part of the models: linear observation ``H`` ``(m, n)``, ``Q`` ``(n, n)``, ``R`` ``(m, m)``,
    initial mean ``s0`` ``(n,)`` and covariance ``P0`` ``(n, n)``; ``position``: indices of the
    position coordinates in the state (for the position MSE)."""

    H: Tensor
    Q: Tensor
    R: Tensor
    s0: Tensor
    P0: Tensor
    position: tuple[int, ...]

    @property
    def n(self) -> int:
        return self.H.shape[1]

    @property
    def m(self) -> int:
        return self.H.shape[0]

    @abstractmethod
    def f(self, s: Tensor) -> Tensor:
        """State evolution, ``(b, n) -> (b, n)``."""

    @abstractmethod
    def mismatched_evolution(self, F_rotation_deg: float, taylor_order: int | None) -> dict[str, Any]:
        """The fields of the evolution the methods are told (validating the options)."""

    def jacobian_f(self, s: Tensor) -> Tensor:
        """Jacobian of :meth:`f`, ``(b, n) -> (b, n, n)`` (or a constant ``(n, n)``)."""
        return autograd_jacobian(self.f)(s)

    def h(self, s: Tensor) -> Tensor:
        """Observation ``H s``, ``(b, n) -> (b, m)``."""
        return s @ self.H.T

    def jacobian_h(self, s: Tensor) -> Tensor:
        return self.H

    def to(self, like: Tensor) -> GaussianStateSpace:
        """A copy whose tensors have the dtype and device of ``like``."""
        fields = {f.name: getattr(self, f.name).to(like) for f in dataclasses.fields(self) if isinstance(getattr(self, f.name), Tensor)}
        return dataclasses.replace(self, **fields)

    def filter(self, x: Tensor) -> FilterResult:
        """The KF (linear ``f``) or EKF (nonlinear ``f``) with this model on ``x`` ``(b, T, m)``."""
        model = self.to(x)
        return extended_kalman_filter(x, model.f, model.h, model.jacobian_f, model.jacobian_h, model.Q, model.R, model.s0, model.P0)

    def simulate(self, b: int, steps: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """``b`` trajectories in float64: states ``(b, T, n)`` and measurements ``(b, T, m)``."""
        model = self.to(torch.zeros((), dtype=torch.float64))
        L_Q, L_R, L_P0 = (covariance_sqrt(C) for C in (model.Q, model.R, model.P0))
        s = model.s0 + torch.randn(b, self.n, generator=generator, dtype=torch.float64) @ L_P0.T
        states, measurements = [], []
        for _ in range(steps):
            s = model.f(s) + torch.randn(b, self.n, generator=generator, dtype=torch.float64) @ L_Q.T
            states.append(s)
            measurements.append(model.h(s) + torch.randn(b, self.m, generator=generator, dtype=torch.float64) @ L_R.T)
        return torch.stack(states, 1), torch.stack(measurements, 1)

    def mismatched(
        self,
        F_rotation_deg: float = 0.0,
        H_rotation_deg: float = 0.0,
        Q_scale: float = 1.0,
        R_scale: float = 1.0,
        Q_identity: bool = False,
        taylor_order: int | None = None,
    ) -> GaussianStateSpace:
        """The model the methods are told: ``H <- Rot(α_H) H``, ``Q <- Q_scale·Q`` (or ``I``), ``R <- R_scale·R``,
        and :meth:`mismatched_evolution` (``F <- Rot(α_F) F`` or the Taylor order)."""
        evolution = self.mismatched_evolution(F_rotation_deg, taylor_order)
        require(H_rotation_deg == 0 or self.m >= 2, "task.mismatch.H_rotation_deg", f"needs at least 2 observations, the model has m={self.m}")
        check_positive(Q_scale, "task.mismatch.Q_scale")
        check_positive(R_scale, "task.mismatch.R_scale")
        Q = torch.eye(self.n, dtype=self.Q.dtype) if Q_identity else Q_scale * self.Q
        H = (plane_rotation(self.m, H_rotation_deg) @ self.H.double()).to(self.H.dtype)
        return dataclasses.replace(self, H=H, Q=Q, R=R_scale * self.R, **evolution)


@dataclass(frozen=True)
class LinearGaussian(GaussianStateSpace):
    """Linear evolution ``f(s) = F s`` with ``F`` ``(n, n)``."""

    F: Tensor

    def f(self, s: Tensor) -> Tensor:
        return s @ self.F.T

    def jacobian_f(self, s: Tensor) -> Tensor:
        return self.F

    def mismatched_evolution(self, F_rotation_deg: float, taylor_order: int | None) -> dict[str, Any]:
        """``F <- Rot(α_F) F`` (``n >= 2``)."""
        require(taylor_order is None, "task.mismatch.taylor_order", "applies to the lorenz model only (use null)")
        require(F_rotation_deg == 0 or self.n >= 2, "task.mismatch.F_rotation_deg", f"needs a state of dimension >= 2, got n={self.n}")
        return {"F": (plane_rotation(self.n, F_rotation_deg) @ self.F.double()).to(self.F.dtype)}


@dataclass(frozen=True)
class Lorenz(GaussianStateSpace):
    r"""The Lorenz attractor :math:`\dot s = A(s) s`, :math:`A(s) = \begin{pmatrix}-\sigma & \sigma & 0\\ \rho & -1 & -s_1\\ 0 & s_1 & -\beta\end{pmatrix}`,
    discretised as :math:`f(s) = \sum_{j=0}^{J} \frac{(A(s)\,\Delta t)^j}{j!}\, s` (KalmanNet's Taylor discretisation)."""

    dt: float = 0.02
    taylor_order: int = 5
    sigma: float = 10.0
    rho: float = 28.0
    beta: float = 8.0 / 3.0

    def dynamics(self, s: Tensor) -> Tensor:
        """:math:`A(s) = A_0 + s_1 E`, ``(b, 3, 3)`` (written out of place, so that ``vmap`` can differentiate it)."""
        A0 = torch.tensor([[-self.sigma, self.sigma, 0.0], [self.rho, -1.0, 0.0], [0.0, 0.0, -self.beta]], dtype=s.dtype, device=s.device)
        E = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]], dtype=s.dtype, device=s.device)
        return A0 + s[:, 0, None, None] * E

    def f(self, s: Tensor) -> Tensor:
        return self._taylor(s, jacobian=False)[0]

    def jacobian_f(self, s: Tensor) -> Tensor:
        r"""Closed form: with :math:`M = \Delta t A(s)`, :math:`u_j = M u_{j-1}/j` (:math:`u_0 = s`) and
        :math:`\partial M/\partial s = \Delta t\, E\, e_1^\top`, :math:`D_j = (M D_{j-1} + \Delta t\, E u_{j-1} e_1^\top)/j`,
        :math:`D_0 = I`; the Jacobian is :math:`\sum_j D_j` (checked against autograd in the tests)."""
        return self._taylor(s, jacobian=True)[1]

    def _taylor(self, s: Tensor, jacobian: bool) -> tuple[Tensor, Tensor | None]:
        M = self.dt * self.dynamics(s)
        E = torch.zeros(3, 3, dtype=s.dtype, device=s.device)
        E[1, 2], E[2, 1] = -1.0, 1.0
        term, out = s, s
        D = torch.eye(3, dtype=s.dtype, device=s.device).expand(len(s), 3, 3) if jacobian else None
        J = D
        for j in range(1, self.taylor_order + 1):
            if jacobian:
                dM = torch.zeros_like(D)
                dM[:, :, 0] = self.dt * term @ E.T
                D = (M @ D + dM) / j
                J = J + D
            term = (M @ term.unsqueeze(-1)).squeeze(-1) / j
            out = out + term
        return out, J

    def mismatched_evolution(self, F_rotation_deg: float, taylor_order: int | None) -> dict[str, Any]:
        """Taylor order ``J`` (e.g. 2 instead of 5); ``null`` keeps the true one."""
        require(F_rotation_deg == 0, "task.mismatch.F_rotation_deg", "applies to linear models only (use 0)")
        if taylor_order is None:
            return {}
        check_positive(taylor_order, "task.mismatch.taylor_order", integer=True)
        return {"taylor_order": taylor_order}


def _finite(value: float, option: str) -> float:
    """``value`` when it is a finite number, else a :class:`~mbdl.config.ConfigError` naming ``option``."""
    require(isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value), option, f"must be a finite number, got {value!r}")
    return float(value)


def _dtype() -> torch.dtype:
    return torch.get_default_dtype()


def _noise_variances(nu_db: float, snr_db: float) -> tuple[float, float]:
    """KalmanNet's parametrisation: ``1/r² = 10^(snr_db/10)``, ``q² = ν r²`` with ``ν = 10^(nu_db/10)``."""
    r2 = 10.0 ** (-snr_db / 10.0)
    return 10.0 ** (nu_db / 10.0) * r2, r2


def kinematics_1d(
    dt: float = 0.1, sigma_v: float = 0.5, sigma_w: float = 2.0, s0: tuple[float, float] = (0.0, 1.0), snr_db: float | None = None
) -> LinearGaussian:
    r"""Position and velocity under white acceleration (MBDL book Ex. 5.2): :math:`F = \begin{pmatrix}1 & \Delta t\\ 0 & 1\end{pmatrix}`,
    :math:`Q = \sigma_v^2 \begin{pmatrix}\Delta t^4/4 & \Delta t^3/2\\ \Delta t^3/2 & \Delta t^2\end{pmatrix}`, :math:`H = (1\ 0)`,
    :math:`R = \sigma_w^2`, known start ``s0`` (``P0 = 0``). ``snr_db`` (``task.snr_db``), when given, sets
    :math:`1/\sigma_w^2 = 10^{\mathrm{SNR}/10}` in place of ``sigma_w``."""
    if snr_db is not None:
        sigma_w = 10.0 ** (-_finite(snr_db, "task.snr_db") / 20.0)
    check_positive(dt, "task.model.dt")
    check_positive(sigma_v, "task.model.sigma_v", strict=False)
    check_positive(sigma_w, "task.model.sigma_w")
    require(len(s0) == 2, "task.model.s0", f"must have 2 entries (position, velocity), got {list(s0)}")
    d = _dtype()
    F = torch.tensor([[1.0, dt], [0.0, 1.0]], dtype=d)
    Q = sigma_v**2 * torch.tensor([[dt**4 / 4, dt**3 / 2], [dt**3 / 2, dt**2]], dtype=d)
    H = torch.tensor([[1.0, 0.0]], dtype=d)
    return LinearGaussian(H, Q, torch.tensor([[sigma_w**2]], dtype=d), torch.tensor(s0, dtype=d), torch.zeros(2, 2, dtype=d), (0,), F)


def canonical(n: int = 2, nu_db: float = -20.0, snr_db: float = 0.0) -> LinearGaussian:
    """KalmanNet's canonical model: ``F = I`` with a first row of ones, ``H = I``, ``Q = q² I``, ``R = r² I``,
    ``s0 = 0`` known (``P0 = 0``); ``ν = q²/r²`` in dB and ``snr_db`` = ``1/r²`` in dB (``task.snr_db``)."""
    check_positive(n, "task.model.n", integer=True)
    q2, r2 = _noise_variances(_finite(nu_db, "task.model.nu_db"), _finite(snr_db, "task.snr_db"))
    d = _dtype()
    F = torch.eye(n, dtype=d)
    F[0] = 1.0
    eye = torch.eye(n, dtype=d)
    return LinearGaussian(eye, q2 * eye, r2 * eye, torch.zeros(n, dtype=d), torch.zeros(n, n, dtype=d), (0,), F)


def lorenz(
    dt: float = 0.02,
    taylor_order: int = 5,
    nu_db: float = -20.0,
    snr_db: float = 0.0,
    observation_rotation_deg: float = 0.0,
    s0: tuple[float, float, float] = (1.0, 1.0, 1.0),
) -> Lorenz:
    """KalmanNet's Lorenz attractor: ``Q = q² I``, ``R = r² I`` (``ν = q²/r²`` and ``snr_db`` = ``1/r²`` in dB), ``H``
    the identity rotated by ``observation_rotation_deg`` in the (s_1, s_2) plane, known start ``s0``; position = the whole state."""
    check_positive(dt, "task.model.dt")
    check_positive(taylor_order, "task.model.taylor_order", integer=True)
    require(len(s0) == 3, "task.model.s0", f"must have 3 entries, got {list(s0)}")
    q2, r2 = _noise_variances(_finite(nu_db, "task.model.nu_db"), _finite(snr_db, "task.snr_db"))
    d = _dtype()
    eye = torch.eye(3, dtype=d)
    H = plane_rotation(3, observation_rotation_deg).to(d)
    return Lorenz(H, q2 * eye, r2 * eye, torch.tensor(s0, dtype=d), torch.zeros(3, 3, dtype=d), (0, 1, 2), dt, taylor_order)
