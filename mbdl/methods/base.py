"""The interface every method implements, and the one base of every iterative method.

A method is built from the task's assumed model alone (``Method(assumed, **options)``) and maps
measurements ``x`` to an estimate of ``s``. It never sees the task, the true model or oracle
quantities; in training it gets an :class:`Objective`: the task's loss of an estimate, and the
labels only when the regime is supervised. A method may instead learn in closed form from the whole
training set (:attr:`Method.closed_form`, :meth:`Method.fit_model`): generatively (``regime=generative``,
the unknown parts of its assumed model by maximum likelihood) or, discriminatively, by the exact
minimiser of the supervised loss.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from itertools import islice
from typing import Any

from torch import Tensor, nn

from mbdl.algorithms.iterative import Iterative
from mbdl.algorithms.parameters import inherit_at, parameters_at
from mbdl.config import check_choice, check_positive, require

LOSSES = ("supervised", "unsupervised")
#: how a regime learns (``regime.learning``). ``discriminative``: the decision rule is fitted for the task's loss
#: (by gradient steps through the method, or by the closed-form minimiser a method has); ``generative``: the unknown
#: parts of the assumed model are fitted to the data (maximum likelihood) and the model-based rule runs with them.
LEARNING = ("discriminative", "generative")


@dataclass(frozen=True)
class ClosedForm:
    """A method's fit from the whole training set in closed form (:meth:`Method.fit_model`), in place of gradient steps.

    ``learning``: one of :data:`LEARNING` (``generative``: an ML fit of the assumed model's unknown parts;
    ``discriminative``: the exact minimiser of the supervised loss); ``losses``: the regime losses it learns
    under (``supervised``: it needs the labels; ``unsupervised``: it also fits from the measurements alone).
    """

    learning: str
    losses: tuple[str, ...] = ("supervised",)


@dataclass(frozen=True)
class Objective:
    """What one training step minimises: ``loss(estimate)``, the task's supervised or unsupervised loss.

    ``s`` holds the labels when ``kind == "supervised"`` and is ``None`` otherwise, so a method
    with a loss of its own (a grid spectrum, a LASSO objective) can use labels only when the regime
    has them.
    """

    kind: str
    loss: Callable[[Tensor], Tensor]
    s: Tensor | None = None

    def __call__(self, estimate: Tensor) -> Tensor:
        return self.loss(estimate)


@dataclass(frozen=True)
class Phase:
    """One fit: train ``parameters`` at ``lr_scale`` times the base learning rate, with an iterative method
    run to ``depth`` iterations (``None``: all), after calling ``warm_start`` (if given)."""

    parameters: list[nn.Parameter]
    depth: int | None = None
    lr_scale: float = 1.0
    warm_start: Callable[[], None] | None = None


class Method(nn.Module, ABC):
    """A point on the model-based / data-driven spectrum.

    Args:
        assumed: the task's assumed model (``task.assumed``): an operator and noise level, a
            state-space model, an array, whatever the task declares.
    """

    #: how :meth:`fit_model` learns, or ``None``: the method has no closed-form fit (a subclass may make it a property).
    closed_form: ClosedForm | None = None

    def __init__(self, assumed: Any) -> None:
        super().__init__()
        self.assumed = assumed
        #: scalars :meth:`fit_model` fitted (set by the runner), ``None`` before any closed-form fit.
        self.fitted_parameters: int | None = None

    @abstractmethod
    def forward(self, x: Tensor) -> Tensor:
        """The estimate of ``s`` from the measurements ``x``."""

    def fit_model(self, x: Tensor, s: Tensor | None) -> int:
        """Fit the method in closed form (:attr:`closed_form`) to the whole training set: measurements ``x`` and, under
        a supervised regime, the labels ``s`` (``None`` otherwise). Returns the number of scalars fitted."""
        raise NotImplementedError(f"{type(self).__name__} has no closed-form fit")

    def iterates(self, x: Tensor) -> Iterator[Tensor] | None:
        """The estimate after each iteration (layer), or ``None`` for a non-iterative method."""
        return None

    def loss(self, x: Tensor, objective: Objective) -> Tensor:
        """Training loss of a batch: the objective of the estimate."""
        return objective(self(x))

    @property
    def trainable_parameters(self) -> int:
        """Number of trained scalars."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    @property
    def learned_parameters(self) -> int:
        """Scalars learned from data: those :meth:`fit_model` fitted, after a closed-form fit; else the trainable ones."""
        return self.trainable_parameters if self.fitted_parameters is None else self.fitted_parameters


class IterativeMethod(Method):
    """A method that runs an iteration ``self.algorithm`` (:class:`~mbdl.algorithms.iterative.Iterative`).

    Subclasses set :attr:`algorithm` and may override :meth:`algorithm_input` (what the iteration is
    run on, e.g. the entries of a covariance) and :meth:`readout` (the estimate from an iterate, e.g.
    the peaks of a spectrum). :attr:`depth` truncates the iteration (layer-wise training); the run
    records the metric after every iteration from :meth:`iterates`.
    """

    algorithm: Iterative

    def __init__(self, assumed: Any) -> None:
        super().__init__(assumed)
        #: iterations the method runs; ``None``: all ``algorithm.iterations`` (layer-wise training truncates it).
        self.depth: int | None = None

    def algorithm_input(self, x: Tensor) -> Tensor:
        """What the iteration runs on (default: the measurements)."""
        return x

    def readout(self, iterate: Tensor) -> Tensor:
        """The estimate of ``s`` from one iterate (default: the iterate itself)."""
        return iterate

    def algorithm_iterates(self, x: Tensor) -> Iterator[Tensor]:
        """The first :attr:`depth` iterates of the algorithm."""
        return islice(self.algorithm.iterates(self.algorithm_input(x)), self.depth)

    def final_iterate(self, x: Tensor) -> Tensor:
        """The last iterate of :meth:`algorithm_iterates`."""
        for iterate in self.algorithm_iterates(x):
            pass
        return iterate

    def iterates(self, x: Tensor) -> Iterator[Tensor]:
        return map(self.readout, self.algorithm_iterates(x))

    def forward(self, x: Tensor) -> Tensor:
        return self.readout(self.final_iterate(x))

    def layerwise_phases(self, lr_decay: Sequence[float], warm_start: bool) -> list[Phase]:
        """Layer-wise training (LISTA-CPSS): for layer ``t`` its new parameters at the base rate on the first ``t``
        iterations, then every parameter of layers ``1..t`` at each decayed rate ``d`` of ``lr_decay``; with
        ``warm_start`` layer ``t`` starts from layer ``t - 1``'s trained values."""
        phases, trained = [], []
        for t in range(self.algorithm.iterations):
            new = parameters_at(self.algorithm, t)
            trained = trained + new
            if new:
                phases.append(Phase(new, t + 1, 1.0, partial(inherit_at, self.algorithm, t) if warm_start else None))
            phases += [Phase(trained, t + 1, d) for d in lr_decay if trained]
        return phases


def fits_in_closed_form(method: Method, learning: str, loss: str, fresh_data: bool) -> bool:
    """Whether the regime (``regime.learning``, ``regime.loss``, ``regime.fresh_data``) fits ``method`` by
    :meth:`Method.fit_model` instead of gradient steps; a pair without meaning is refused with a one-line error
    (generative learning of a method with no model to fit, a fit from labels under an unsupervised regime)."""
    check_choice(learning, "regime.learning", LEARNING)
    fit = method.closed_form
    if fit is None or fit.learning != learning:
        require(
            learning != "generative",
            "regime",
            "generative learning fits the unknown parts of the assumed model to the training data, then runs the model-based "
            f"rule; {type(method).__name__} has no such fit here (docs/generative.md lists the methods that have one)",
        )
        return False
    require(loss in fit.losses, "regime.loss", f"{type(method).__name__}'s {learning} fit learns from {' or '.join(fit.losses)} data, got {loss}")
    require(not fresh_data, "regime.fresh_data", "a closed-form fit uses the fixed training set of regime.n_train samples: set it to false")
    return True


def training_phases(method: Method, lr_decay: Sequence[float] | None = None, warm_start: bool = False) -> list[Phase]:
    """The fits that train ``method``: one fit of every trained parameter, or (``lr_decay`` given, ``regime=layerwise``)
    the layer-wise phases of an iterative method; any other method is refused with a one-line error."""
    if lr_decay is None:
        return [Phase([p for p in method.parameters() if p.requires_grad])]
    require(
        isinstance(method, IterativeMethod),
        "regime",
        f"layerwise trains an iterative method layer by layer; {type(method).__name__} is not iterative "
        "(use regime=supervised or regime=unsupervised)",
    )
    require(method.trainable_parameters > 0, "regime", f"layerwise trains an iterative method layer by layer; this {type(method).__name__} has no trainable parameters (use regime=supervised, or method=unfolded)")
    for d in lr_decay:
        check_positive(d, "regime.lr_decay")
    return method.layerwise_phases(lr_decay, warm_start)
