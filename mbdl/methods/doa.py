r"""Direction of arrival on the spectrum, every method returning the angles ``(batch, M)`` in radians.

* model-based: :class:`SubspaceEstimator` — MUSIC, Root-MUSIC or ESPRIT on the sample covariance
  (optionally spatially smoothed / forward-backward averaged), with the nominal ULA;
* learned optimizer: the same with a learned array calibration (``calibration``), trained
  through differentiable Root-MUSIC or ESPRIT;
* black box: :class:`DeepCNN` — a CNN from the covariance to a grid spectrum (Papageorgiou et al. 2021);
* unfolded: :class:`CovarianceLISTA` — LISTA on the steering-vector dictionary of the covariance;
* DNN-aided: :class:`SubspaceNet` (Shmuel et al. 2023) — a CNN maps lagged autocorrelations to a
  covariance that the subspace methods decompose, trained through them.
"""

from __future__ import annotations

import math
from abc import abstractmethod

import torch
from torch import Tensor, nn

from mbdl.algorithms.calibration import calibrate_gain_phase
from mbdl.algorithms.data_fidelity import LeastSquares
from mbdl.algorithms.ista import LISTA
from mbdl.algorithms.parameters import Mode
from mbdl.algorithms.subspace import (
    ALGORITHMS,
    estimate,
    forward_backward,
    sample_covariance,
    spatial_smoothing,
    spectrum_peaks,
)
from mbdl.config import ConfigError, check_choice, check_positive, require
from mbdl.methods.base import ClosedForm, IterativeMethod, Method, Objective
from mbdl.nets.cnn import CovarianceCNN, SubspaceNetCNN
from mbdl.operators import Matrix
from mbdl.tasks.doa import ArrayModel

SMOOTHING = ("none", "forward_backward", "spatial", "spatial_fb")
CALIBRATION = ("none", "phase", "gain_phase")
DIFFERENTIABLE = ("root_music", "esprit")


def angle_grid(step_deg: float) -> Tensor:
    """Uniform grid ``(G,)`` over one period ``[-90°, 90°)`` (``±90°`` coincide on a half-wavelength ULA), in radians."""
    count = round(180.0 / step_deg)
    return torch.arange(count, dtype=torch.float64).mul(math.pi / count).sub(math.pi / 2).to(torch.get_default_dtype())


def grid_labels(theta: Tensor, grid: Tensor, width: float | None = None) -> Tensor:
    r"""Multi-label targets ``(batch, G)`` on the circular ``grid`` for the DoAs ``theta`` ``(batch, M)``.

    ``width=None``: 1 at the grid point nearest each DoA. Otherwise a Gaussian bump of standard
    deviation ``width`` grid steps around each (off-grid) DoA, :math:`\max_m e^{-d_{gm}^2/2w^2}`
    with :math:`d_{gm}` the wrapped distance in steps, which keeps the sub-grid position.
    """
    step = grid[1] - grid[0]
    if width is None:
        index = torch.round((theta.to(grid) - grid[0]) / step).long() % len(grid)
        return torch.zeros(len(theta), len(grid), dtype=grid.dtype, device=grid.device).scatter_(1, index, 1.0)
    distance = torch.remainder(grid - theta.to(grid)[..., None] + math.pi / 2, math.pi) - math.pi / 2  # (batch, M, G)
    return torch.exp(-0.5 * (distance / (width * step)).square()).amax(dim=1)


def normalised_covariance(x: Tensor) -> Tensor:
    r""":math:`\hat R / (\mathrm{tr}\hat R / N)`, ``(batch, N, N)``: the sample covariance at unit mean sensor power."""
    R = sample_covariance(x)
    power = R.diagonal(dim1=-2, dim2=-1).real.mean(-1)
    return R / power[:, None, None]


class _AngleMethod(Method):
    """Common parts: the assumed number of sources, a search grid (buffer) and the subspace estimators.

    Args:
        assumed: the assumed array model.
        algorithm: subspace estimator used at test time (``music``, ``root_music``, ``esprit``).
        grid_deg: MUSIC / spectrum grid step in degrees.
    """

    def __init__(self, assumed: ArrayModel, algorithm: str = "music", grid_deg: float = 0.1) -> None:
        super().__init__(assumed)
        check_choice(algorithm, "method.algorithm", ALGORITHMS)
        check_positive(grid_deg, "method.grid_deg")
        self.algorithm, self.sources, self.sensors = algorithm, assumed.sources, assumed.sensors
        self.register_buffer("grid", angle_grid(grid_deg), persistent=False)

    def angles(self, R: Tensor, algorithm: str | None = None) -> Tensor:
        """DoAs ``(batch, M)`` of covariances ``R`` with ``algorithm`` (default: the test-time one)."""
        return estimate(algorithm or self.algorithm, R, self.sources, self.grid.to(R.real.dtype)).to(self.grid.dtype)


class _CovarianceMethod(_AngleMethod):
    """A method that builds a covariance ``covariance(x)`` and decomposes it with a subspace estimator.

    Tested with ``algorithm``; trained (when it has parameters) through the differentiable
    ``train_algorithm`` with the task's supervised or unsupervised loss on its angles.
    """

    train_algorithm: str

    @abstractmethod
    def covariance(self, x: Tensor) -> Tensor:
        """The covariance ``(batch, K, K)`` the subspace estimator decomposes, from snapshots ``x`` ``(batch, N, T)``."""

    def forward(self, x: Tensor) -> Tensor:
        return self.angles(self.covariance(x))

    def loss(self, x: Tensor, objective: Objective) -> Tensor:
        """The objective of the angles of ``train_algorithm`` (Root-MUSIC or ESPRIT, differentiable)."""
        return objective(self.angles(self.covariance(x), self.train_algorithm))


class SubspaceEstimator(_CovarianceMethod):
    r"""MUSIC / Root-MUSIC / ESPRIT on the (preprocessed, optionally calibrated) sample covariance.

    With ``calibration``, the sensors' unknown complex responses :math:`c_n = g_n e^{j\phi_n}`
    are learned (shared by all inputs, the learned-optimizer point): the covariance is
    corrected to :math:`\mathrm{diag}(c)^{-1}\hat R\,\mathrm{diag}(c)^{-H}`, which undoes gain and
    phase errors exactly (position errors only to first order at each angle). Training runs
    through ``train_algorithm`` (differentiable Root-MUSIC or ESPRIT); under ``regime=generative``
    the calibration is fitted instead by covariance matching on the labelled samples (:meth:`fit_model`).

    Args:
        assumed: the assumed array model.
        algorithm: test-time estimator.
        smoothing: ``none``, ``forward_backward``, ``spatial`` (``subarray`` sensors) or ``spatial_fb``.
        subarray: spatial-smoothing subarray size ``K`` (``M < K <= N``); ``None``: ``max(N - M + 1, M + 1)``
            (``N - K + 1 = M`` subarrays, the fewest that restore rank ``M``).
        grid_deg: MUSIC grid step.
        calibration: ``none`` (model-based), ``phase`` or ``gain_phase`` (learned).
        train_algorithm: differentiable estimator the calibration is trained through.
    """

    def __init__(
        self,
        assumed: ArrayModel,
        algorithm: str = "music",
        smoothing: str = "none",
        subarray: int | None = None,
        grid_deg: float = 0.1,
        calibration: str = "none",
        train_algorithm: str = "esprit",
    ) -> None:
        super().__init__(assumed, algorithm, grid_deg)
        check_choice(smoothing, "method.smoothing", SMOOTHING)
        check_choice(calibration, "method.calibration", CALIBRATION)
        check_choice(train_algorithm, "method.train_algorithm", DIFFERENTIABLE)
        n, m = assumed.sensors, assumed.sources
        self.subarray = subarray if subarray is not None else max(n - m + 1, m + 1)
        if smoothing.startswith("spatial"):
            check_positive(self.subarray, "method.subarray", integer=True)
            require(m < self.subarray <= n, "method.subarray", f"must be in ({m}, {n}], got {self.subarray}")
        self.smoothing, self.calibration, self.train_algorithm = smoothing, calibration, train_algorithm
        if calibration != "none":
            self.log_gain = nn.Parameter(torch.zeros(n), requires_grad=calibration == "gain_phase")
            self.phase = nn.Parameter(torch.zeros(n))

    @property
    def closed_form(self) -> ClosedForm | None:
        """A calibrated estimator fits its calibration from labelled samples (regime=generative)."""
        return ClosedForm("generative", ("supervised",)) if self.calibration != "none" else None

    def fit_model(self, x: Tensor, s: Tensor | None) -> int:
        r"""Gain/phase (``calibration=phase``: phase only) by covariance matching of the samples' covariances to the
        model :math:`D_c A(\theta) P A(\theta)^H D_c^H + I` at their labelled DoAs ``s`` ``(b, M)``, ``A`` the
        assumed (nominal) array, ``P`` the told source covariance (:func:`~mbdl.algorithms.calibration.calibrate_gain_phase`).
        Returns the fitted count, ``2(N - 1)`` (``N - 1`` phase only)."""
        m, power = self.assumed.sources, self.assumed.source_power
        P = power * (torch.ones(m, m, dtype=torch.float64) if self.assumed.coherent else torch.eye(m, dtype=torch.float64))
        R = sample_covariance(x.to(torch.complex128))
        steering = self.assumed.array.steering(s.double().cpu()).to(R.device)
        fit = calibrate_gain_phase(R, steering, P.to(R.device), 1.0, gains=self.calibration == "gain_phase")
        with torch.no_grad():
            self.log_gain.copy_(fit.log_gain)
            self.phase.copy_(fit.phase)
        return (2 if self.calibration == "gain_phase" else 1) * (self.sensors - 1)

    def covariance(self, x: Tensor) -> Tensor:
        """The calibrated, smoothed sample covariance ``(batch, K, K)``."""
        R = sample_covariance(x)
        if self.calibration != "none":
            inverse = torch.polar(torch.exp(-self.log_gain), -self.phase).to(R)
            R = inverse[:, None] * R * inverse.conj()
        if self.smoothing.startswith("spatial"):
            R = spatial_smoothing(R, self.subarray)
        if self.smoothing.endswith(("fb", "backward")):
            R = forward_backward(R)
        return R


class DeepCNN(_AngleMethod):
    """Black box: a CNN from the covariance (real, imaginary, phase channels) to a grid spectrum.

    Trained with the multi-label binary cross-entropy against :func:`grid_labels`
    (Papageorgiou, Sellathurai & Eldar 2021); the DoAs are the ``M`` highest peaks of its
    sigmoid output. It needs labels (``regime.loss=supervised``).

    Args:
        assumed: the assumed array model.
        grid_deg: output grid step in degrees.
        channels, layers, hidden, dropout: see :class:`mbdl.nets.cnn.CovarianceCNN`.
        label_width: ``None`` for one-hot labels at the nearest grid points (the paper's), or the
            width in grid steps of Gaussian soft labels (see :func:`grid_labels`).
    """

    def __init__(
        self,
        assumed: ArrayModel,
        grid_deg: float = 1.0,
        channels: int = 32,
        layers: int = 4,
        hidden: tuple[int, ...] = (256, 256),
        dropout: float = 0.3,
        label_width: float | None = None,
    ) -> None:
        super().__init__(assumed, "music", grid_deg)
        for option, value in (("channels", channels), ("layers", layers)):
            check_positive(value, f"method.{option}", integer=True)
        if label_width is not None:
            check_positive(label_width, "method.label_width")
        self.label_width = label_width
        self.net = CovarianceCNN(3, assumed.sensors, len(self.grid), channels, layers, tuple(hidden), dropout)

    def logits(self, x: Tensor) -> Tensor:
        """``(batch, G)`` grid logits."""
        R = normalised_covariance(x)
        image = torch.stack([R.real, R.imag, torch.angle(R)], dim=1)
        return self.net(image.to(self.grid.dtype))

    def forward(self, x: Tensor) -> Tensor:
        return spectrum_peaks(torch.sigmoid(self.logits(x)), self.sources, self.grid, refine=False, circular=True)

    def loss(self, x: Tensor, objective: Objective) -> Tensor:
        """Multi-label binary cross-entropy of the grid logits against the labels."""
        if objective.s is None:
            raise ConfigError(f"regime.loss: the CNN's grid spectrum is trained from labels, got {objective.kind!r} (valid: supervised)")
        return nn.functional.binary_cross_entropy_with_logits(self.logits(x), grid_labels(objective.s, self.grid, self.label_width))


class CovarianceLISTA(IterativeMethod):
    r"""Unfolded: LISTA on the steering-vector dictionary of the covariance (on-grid sparse DoA).

    The off-diagonal entries of the normalised covariance (:func:`normalised_covariance`, upper
    triangle, real and imaginary parts stacked, which removes the noise :math:`\sigma^2 I`) are
    :math:`r = \Phi p` with :math:`\Phi_{:,g}` those entries of :math:`a(\theta_g)a(\theta_g)^H` (the
    assumed array) and :math:`p \ge 0` the source powers on the grid (for non-coherent sources). LISTA
    (:class:`mbdl.algorithms.ista.LISTA`, per-layer :math:`W_t, S_t, \theta_t`) is initialised from
    ISTA on :math:`\tfrac12\|r - \Phi p\|^2 + \lambda\|p\|_1`; the DoAs are the ``M`` largest peaks
    of :math:`\hat p`. Supervised loss: squared error to the normalised powers
    :math:`\sigma_s^2 / (M\sigma_s^2 + 1)` of the assumed SNR, spread as Gaussian bumps of ``label_width``
    grid steps around the true DoAs (:func:`grid_labels`; spikes at the nearest grid points first drove
    the network to an all-zero output); unsupervised: the LASSO objective.

    Args:
        assumed: the assumed array model.
        iterations: LISTA layers.
        lam: LASSO weight ``λ`` of the initial ISTA.
        grid_deg: dictionary grid step in degrees.
        mode: ``per_iteration`` (LISTA) or ``shared`` (tied layers).
        label_width: width of the target bumps in grid steps.
    """

    def __init__(self, assumed: ArrayModel, iterations: int = 10, lam: float = 0.05, grid_deg: float = 1.0, mode: Mode = "per_iteration", label_width: float = 1.0) -> None:
        super().__init__(assumed)
        check_positive(iterations, "method.iterations", integer=True)
        check_positive(lam, "method.lam", strict=False)
        check_positive(grid_deg, "method.grid_deg")
        check_positive(label_width, "method.label_width")
        self.sources, self.lam, self.label_width = assumed.sources, lam, label_width
        self.register_buffer("grid", angle_grid(grid_deg), persistent=False)
        rows, cols = torch.triu_indices(assumed.sensors, assumed.sensors, offset=1)
        self.register_buffer("rows", rows, persistent=False)
        self.register_buffer("cols", cols, persistent=False)
        a = assumed.array.steering(self.grid.double()).T  # (G, N)
        dictionary = self.offdiagonal(a[:, :, None] * a[:, None, :].conj()).T  # (2 N(N-1)/2, G)
        scale = torch.linalg.matrix_norm(dictionary, ord=2).item()  # Φ/‖Φ‖: unit ISTA step, O(1) LISTA weights
        self.dictionary = Matrix((dictionary / scale).to(self.grid.dtype))
        self.algorithm = LISTA(self.dictionary, iterations, lam, step=1.0, mode=mode)
        self.target_power = scale * assumed.source_power / (assumed.sources * assumed.source_power + 1.0)

    def offdiagonal(self, R: Tensor) -> Tensor:
        """Real and imaginary parts of the upper off-diagonal entries: ``(batch, N, N)`` -> ``(batch, 2 N(N-1)/2)``."""
        entries = R[..., self.rows, self.cols]
        return torch.cat([entries.real, entries.imag], dim=-1)

    def algorithm_input(self, x: Tensor) -> Tensor:
        """``r`` ``(batch, 2 N(N-1)/2)``."""
        return self.offdiagonal(normalised_covariance(x)).to(self.grid.dtype)

    def readout(self, p: Tensor) -> Tensor:
        """The DoAs: the ``M`` highest peaks of the grid powers ``p̂`` ``(batch, G)``."""
        return spectrum_peaks(p, self.sources, self.grid, refine=False, circular=True)

    def loss(self, x: Tensor, objective: Objective) -> Tensor:
        """Squared error to the grid powers (supervised) or the LASSO objective on ``r`` (unsupervised)."""
        p = self.final_iterate(x)
        if objective.s is not None:
            target = self.target_power * grid_labels(objective.s, self.grid, self.label_width)
            return (p - target).square().sum(-1).mean()
        return (LeastSquares(self.dictionary, self.algorithm_input(x))(p) + self.lam * p.abs().sum(-1)).mean()


def lagged_autocorrelations(x: Tensor, lags: int) -> Tensor:
    r""":math:`R_x(\tau) = \frac{1}{T-\tau}\sum_{t} x_{t+\tau} x_t^H` for :math:`\tau = 0..\text{lags}-1`: ``(batch, lags, N, N)``."""
    snapshots = x.shape[-1]
    return torch.stack([x[..., tau:] @ x[..., : snapshots - tau].mH / (snapshots - tau) for tau in range(lags)], dim=1)


class SubspaceNet(_CovarianceMethod):
    r"""DNN-aided: SubspaceNet (Shmuel, Lee, Shlezinger & Eldar 2023).

    The real and imaginary parts of ``lags`` lagged autocorrelations (scaled by the mean sensor
    power) feed :class:`mbdl.nets.cnn.SubspaceNetCNN`, whose two output channels form
    :math:`K \in \mathbb{C}^{N\times N}`; the surrogate covariance
    :math:`\tilde R = K K^H + \varepsilon I` is Hermitian positive definite, and its subspaces
    give the DoAs. Trained end to end through ``train_algorithm`` (differentiable Root-MUSIC or
    ESPRIT); tested with ``algorithm`` (MUSIC, Root-MUSIC or ESPRIT).

    Args:
        assumed: the assumed array model.
        lags: ``τ``, the number of autocorrelation lags (``< T``).
        algorithm: test-time estimator.
        train_algorithm: differentiable estimator it is trained through.
        epsilon: :math:`\varepsilon`.
        width, dropout: see :class:`mbdl.nets.cnn.SubspaceNetCNN`.
        grid_deg: MUSIC grid step.
    """

    def __init__(
        self,
        assumed: ArrayModel,
        lags: int = 8,
        algorithm: str = "esprit",
        train_algorithm: str = "esprit",
        epsilon: float = 1.0,
        width: int = 16,
        dropout: float = 0.2,
        grid_deg: float = 0.1,
    ) -> None:
        super().__init__(assumed, algorithm, grid_deg)
        check_positive(lags, "method.lags", integer=True)
        require(lags < assumed.snapshots, "method.lags", f"must be below task.snapshots={assumed.snapshots}, got {lags}")
        check_choice(train_algorithm, "method.train_algorithm", DIFFERENTIABLE)
        check_positive(epsilon, "method.epsilon", strict=False)
        require(assumed.sensors >= 4, "task.sensors", f"SubspaceNet's 2x2 convolutions need at least 4 sensors, got {assumed.sensors}")
        self.lags, self.train_algorithm, self.epsilon = lags, train_algorithm, epsilon
        self.net = SubspaceNetCNN(2 * lags, 2, width, dropout)

    def covariance(self, x: Tensor) -> Tensor:
        r""":math:`\tilde R = K K^H + \varepsilon I`, ``(batch, N, N)`` complex."""
        power = x.abs().square().mean(dim=(-2, -1))
        autocorrelations = lagged_autocorrelations(x, self.lags) / power[:, None, None, None]
        image = torch.cat([autocorrelations.real, autocorrelations.imag], dim=1).to(self.grid.dtype)
        out = self.net(image)
        K = torch.complex(out[:, 0], out[:, 1])
        return K @ K.mH + self.epsilon * torch.eye(K.shape[-1], dtype=K.dtype, device=K.device)
