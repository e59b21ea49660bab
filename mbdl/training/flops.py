"""Floating-point operations of one forward pass, counted by torch's own FLOP counter.

:class:`torch.utils.flop_counter.FlopCounterMode` counts the operations it has a formula for: matrix
products (``mm``, ``bmm``, ``addmm``, ``baddbmm``, ...), convolutions and attention, ``2 m n k`` for an
``(m, k) @ (k, n)`` product (fvcore's convention too). Elementwise operations (thresholds, activations,
additions) are not counted by design, and a complex product is counted like a real one. Operations that do
real arithmetic but have no formula there — eigen- and singular-value decompositions, solves, Cholesky and
QR factorisations, FFTs — are listed (``uncounted``) instead of guessed: where the list is not empty the
count is a lower bound.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

#: beginnings of the aten operation names that do more than elementwise arithmetic and that torch's counter has no
#: formula for: the linear-algebra decompositions and solves of ``torch.linalg``, and the FFTs ...
UNCOUNTED_PREFIXES = ("linalg_", "_linalg_", "_fft_", "fft_")
#: ... and the same operations under their older names.
UNCOUNTED_NAMES = frozenset({
    "cholesky", "cholesky_solve", "cholesky_inverse", "triangular_solve", "lu_solve", "lu_unpack", "_lu_with_info", "inverse",
    "det", "logdet", "slogdet", "svd", "_svd_helper", "qr", "geqrf", "ormqr", "orgqr", "symeig", "eig", "lstsq", "matrix_exp", "pinverse",
})


#: ``torch.linalg`` operations that only check their input, or do elementwise work and a sum (norms), which the counter
#: leaves out by convention like every elementwise operation.
NO_ARITHMETIC = frozenset({"_linalg_check_errors", "linalg_vector_norm"})


@dataclass(frozen=True)
class FlopCount:
    """``per_sample``: the counted FLOPs divided by the batch size; ``uncounted``: the operations with no formula that ran
    (sorted aten names without their leading underscores, e.g. ``linalg_eigh``; empty when the count is complete)."""

    per_sample: float
    uncounted: tuple[str, ...]


class _Operations(TorchDispatchMode):
    """Records the name of every aten operation that runs."""

    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        self.names.add(func.overloadpacket.__name__)
        return func(*args, **(kwargs or {}))


def count_flops(forward: Callable[[Tensor], Any], x: Tensor) -> FlopCount:
    """The FLOPs of ``forward(x)`` per sample of the batch ``x`` (first dimension), without gradients."""
    counter = FlopCounterMode(display=False)
    operations = _Operations()
    with torch.no_grad(), counter, operations:
        forward(x)
    counted = set(counter.flop_registry)
    heavy = (name for name in operations.names if (name.startswith(UNCOUNTED_PREFIXES) or name in UNCOUNTED_NAMES) and name not in NO_ARITHMETIC)
    uncounted = sorted({name.lstrip("_") for name in heavy if getattr(torch.ops.aten, name) not in counted})
    return FlopCount(counter.get_total_flops() / len(x), tuple(uncounted))
