"""How an iterative algorithm holds one of its parameters.

The spectrum of model-based deep learning is largely a parameterisation of the same iteration:

* ``"fixed"``: hand-set, not trained (model-based);
* ``"shared"``: trained, one value for all iterations (learned optimizer);
* ``"per_iteration"``: trained, one value per iteration (deep unfolding).
"""

from __future__ import annotations

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
        value = value.expand(iterations if mode == "per_iteration" else 1, *value.shape).clone()
        if mode == "fixed":
            self.register_buffer("value", value)
        else:
            self.value = nn.Parameter(value)

    def __getitem__(self, t: int) -> Tensor:
        return self.value[t if self.mode == "per_iteration" else 0]
