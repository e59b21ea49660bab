"""How an iterative algorithm holds one of its parameters (or sub-networks).

The spectrum of model-based deep learning is largely a parameterisation of the same iteration:

* ``"fixed"``: hand-set, not trained (model-based);
* ``"shared"``: trained, one value for all iterations (learned optimizer);
* ``"per_iteration"``: trained, one value per iteration (deep unfolding).

Each iteration's values are separate tensors, so that layer-wise training can hand the
optimizer exactly the parameters of one layer (:func:`parameters_at`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor, nn

from mbdl.config import check_choice

Mode = Literal["fixed", "shared", "per_iteration"]
MODES: tuple[Mode, ...] = ("fixed", "shared", "per_iteration")


class IterationParameter(nn.Module):
    """A parameter of an iteration with ``iterations`` steps, held in one of :data:`MODES`.

    Args:
        init: initial value (any shape), used for every iteration.
        iterations: number of iterations ``T`` the algorithm runs.
        mode: ``"fixed"`` (a buffer), ``"shared"`` (one trained value) or ``"per_iteration"``
            (``T`` trained values, each initialised to ``init``).
        option: config option named in the error for an invalid ``mode``.

    ``param[t]`` is the value used at iteration ``t`` (``0 <= t < T``).
    """

    def __init__(self, init: Tensor | float, iterations: int, mode: Mode = "fixed", option: str = "mode") -> None:
        super().__init__()
        check_choice(mode, option, MODES)
        self.mode = mode
        value = torch.as_tensor(init, dtype=torch.get_default_dtype()).clone()
        if mode == "fixed":
            self.register_buffer("value", value)
        else:
            copies = iterations if mode == "per_iteration" else 1
            self.values = nn.ParameterList(nn.Parameter(value.clone()) for _ in range(copies))

    def __getitem__(self, t: int) -> Tensor:
        if self.mode == "fixed":
            return self.value
        return self.values[t if self.mode == "per_iteration" else 0]

    def parameters_at(self, t: int) -> list[nn.Parameter]:
        """The trained tensors first used at iteration ``t`` (shared ones belong to ``t = 0``)."""
        if self.mode == "per_iteration":
            return [self.values[t]]
        return list(self.values) if self.mode == "shared" and t == 0 else []

    @torch.no_grad()
    def inherit(self, t: int) -> None:
        """Set iteration ``t``'s value to iteration ``t - 1``'s (per-iteration values only)."""
        if self.mode == "per_iteration" and t > 0:
            self.values[t].copy_(self.values[t - 1])


class IterationModules(nn.Module):
    """A sub-network of an iteration, tied (one network for all iterations) or untied (one per iteration).

    Args:
        build: makes one network.
        iterations: number of iterations ``T``.
        tied: share one network over the iterations.

    ``modules[t]`` is the network used at iteration ``t``.
    """

    def __init__(self, build: Callable[[], nn.Module], iterations: int, tied: bool) -> None:
        super().__init__()
        self.tied = tied
        self.nets = nn.ModuleList(build() for _ in range(1 if tied else iterations))

    def __getitem__(self, t: int) -> nn.Module:
        return self.nets[0 if self.tied else t]

    def parameters_at(self, t: int) -> list[nn.Parameter]:
        """The trained tensors first used at iteration ``t``."""
        if self.tied:
            return list(self.nets[0].parameters()) if t == 0 else []
        return list(self.nets[t].parameters())

    def inherit(self, t: int) -> None:
        """Set network ``t``'s weights to network ``t - 1``'s (untied networks only)."""
        if not self.tied and t > 0:
            self.nets[t].load_state_dict(self.nets[t - 1].state_dict())


def _iteration_children(module: nn.Module) -> list[IterationParameter | IterationModules]:
    return [child for child in module.modules() if isinstance(child, (IterationParameter, IterationModules))]


def parameters_at(module: nn.Module, t: int) -> list[nn.Parameter]:
    """Every trained tensor of ``module`` first used at iteration ``t`` (for layer-wise training)."""
    return [p for child in _iteration_children(module) for p in child.parameters_at(t) if p.requires_grad]


def inherit_at(module: nn.Module, t: int) -> None:
    """Warm start of layer-wise training: every per-iteration value of ``module`` at ``t`` takes the value at ``t - 1``."""
    for child in _iteration_children(module):
        child.inherit(t)
