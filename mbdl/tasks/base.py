"""The interface every task implements.

A task owns what every method on the spectrum shares:

* a **simulator** of the *true* model, drawing a data set of ``n`` samples from a seeded
  :class:`torch.Generator` (so train, validation and test sets depend only on the seed);
* the **assumed** model (:attr:`Task.assumed`): the one object a method is given, equal to the
  true model unless a mismatch is configured. Methods never see the task, the true model or
  any oracle quantity: only ``task.assumed``, the measurements and (when supervised) the labels;
* its **metrics**, declared with their units and direction (:class:`Metric`), computed on a whole
  test set, and for each metric a **bound** or a **reference** (:class:`Reference`);
* the losses a regime may train with (supervised: against the labels; unsupervised: from the
  assumed model and the measurements only).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor

from mbdl.config import check_positive

if TYPE_CHECKING:
    from matplotlib.figure import Figure

Batch = dict[str, Tensor]
"""A batch of samples: tensors whose first dimension is the sample index.

Every task puts the measurements under ``"x"`` (what a method sees) and the ground truth
under ``"s"`` (what it estimates); further keys (e.g. a per-sample noise level) are for the
task's metrics and references only and never reach a method."""


def decibels(power_ratio: float) -> float:
    r""":math:`10\log_{10}` of a power ratio; ``-inf`` for an exact zero (a perfect estimate), never a math error."""
    return 10.0 * math.log10(power_ratio) if power_ratio > 0 else -math.inf


@dataclass(frozen=True)
class Metric:
    """How a metric reads: its name in tables, its unit, and which direction is better.

    Records carry this declaration (``metric_info``), so that the sweeper's direction, the ranking
    in ``mbdl compare`` and the dashboard's axes follow it: a PSNR is reported as it is, not negated.
    """

    label: str
    unit: str = ""
    higher_is_better: bool = False

    @property
    def direction(self) -> str:
        """``"maximize"`` or ``"minimize"`` (Optuna's words)."""
        return "maximize" if self.higher_is_better else "minimize"

    def axis_label(self) -> str:
        """``"NMSE (dB), lower is better"``."""
        unit = f" ({self.unit})" if self.unit else ""
        return f"{self.label}{unit}, {'higher' if self.higher_is_better else 'lower'} is better"


@dataclass(frozen=True)
class Reference:
    """A number to read a metric against, and what it is.

    ``is_bound``: a bound in the strict sense, which no estimator beats in expectation under the
    task's conditions (oracle least squares, the true-model Kalman filter, the CRB where it holds);
    otherwise a reference (a Wiener/LMMSE filter, an EKF, a CRB outside its validity). Records
    put bounds under ``bound/<metric>`` and references under ``reference/<metric>``.
    """

    value: float
    name: str
    is_bound: bool

    @property
    def prefix(self) -> str:
        return "bound" if self.is_bound else "reference"


class Task(ABC):
    """A task: simulator, assumed model, declared metrics, their bounds or references, and the losses.

    Subclasses validate their options in ``__init__`` (raising :class:`mbdl.config.ConfigError`)
    so that a bad configuration stops before any data are simulated, and set :attr:`assumed`.
    """

    #: the metrics :meth:`evaluate` returns, by name.
    metrics: ClassVar[dict[str, Metric]]
    #: the metric that summarises a run (the sweeper's objective, on the validation set).
    primary_metric: ClassVar[str]
    #: the model the methods are told (the only object a method receives).
    assumed: Any
    #: default data-set sizes ``(train, val, test)``.
    n_train: int
    n_val: int
    n_test: int

    def set_sizes(self, n_train: int, n_val: int, n_test: int) -> None:
        """Validate and set the default data-set sizes (``task.n_train``, ``task.n_val``, ``task.n_test``)."""
        for option, value in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
            check_positive(value, f"task.{option}", integer=True)
        self.n_train, self.n_val, self.n_test = n_train, n_val, n_test

    @classmethod
    def metric_info(cls) -> dict[str, dict[str, Any]]:
        """The metric declarations as plain data, for the run record."""
        return {name: asdict(metric) for name, metric in cls.metrics.items()}

    @abstractmethod
    def simulate(self, n: int, generator: torch.Generator) -> Batch:
        """Draw ``n`` independent samples from the true model."""

    def data(self, split: str, n: int, generator: torch.Generator) -> Batch:
        """The data set of ``split`` (``"train"``, ``"val"`` or ``"test"``): by default ``n`` samples of :meth:`simulate`.
        A task whose test set is fixed data (real images) returns it for ``"test"``."""
        return self.simulate(n, generator)

    @abstractmethod
    def evaluate(self, estimate: Tensor, data: Batch) -> dict[str, float]:
        """The metrics of :attr:`metrics` for ``estimate`` against the ground truth of ``data`` (a whole set)."""

    @abstractmethod
    def references(self, data: Batch) -> dict[str, Reference]:
        """For some of the metrics, the bound or reference on ``data``."""

    def calibrate(self, estimate: Tensor, data: Batch) -> dict[str, float]:
        """Choose the metrics' own settings (e.g. a detection threshold) on the validation set's estimates; called
        before :meth:`evaluate` of the validation set, the choice then stands for the test set. Returns the chosen
        values for the record (``calibration/<name>``); by default nothing is chosen."""
        return {}

    def supervised_loss(self, estimate: Tensor, s: Tensor) -> Tensor:
        """Mean squared error to the labels ``s``."""
        return (estimate - s).abs().square().mean()

    @abstractmethod
    def unsupervised_loss(self, estimate: Tensor, x: Tensor) -> Tensor:
        """A loss of ``estimate`` that needs no labels: built from :attr:`assumed` and the measurements ``x``."""

    def figure(self, estimate: Tensor, data: Batch) -> Figure | None:
        """A picture of a few test samples, estimate against truth (``None``: the task draws none)."""
        return None
