r"""Geometric self-ensembles of an image-to-image network over the dihedral group :math:`D_4` of the square.

The eight elements :math:`g_k` (``k = 0..7``) are the four rotations by :math:`90°\cdot(k \bmod 4)`, each after a
left-right flip when :math:`k \ge 4`. A network :math:`f` trained on images that are as likely in every orientation
(flipped and transposed training crops) should be equivariant, :math:`f(g v) = g f(v)`; a trained one only roughly
is, and averaging over the group removes the rest (Timofte et al. 2016, "x8" self-ensemble):

.. math:: \bar f(v) = \frac18 \sum_k g_k^{-1} f(g_k v),

which is exactly equivariant and costs eight calls. DPIR's periodic geometric self-ensemble (Zhang et al. 2021)
spends none: iteration :math:`t` of a plug-and-play loop denoises as :math:`g_k^{-1} f(g_k v)` with
:math:`k = t \bmod 8`, so eight iterations average over the group.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

#: ``method.ensemble`` choices: no ensemble, DPIR's periodic one, the full eight-fold one.
ENSEMBLES = ("none", "periodic", "full")
#: the order of :math:`D_4`.
ORDER = 8


def transform(v: Tensor, k: int) -> Tensor:
    r""":math:`g_k v` for ``v`` of shape ``(..., h, w)`` (``(..., w, h)`` for an odd number of rotations)."""
    flipped = v.flip(-1) if k >= 4 else v
    return torch.rot90(flipped, k % 4, dims=(-2, -1))


def inverse(v: Tensor, k: int) -> Tensor:
    r""":math:`g_k^{-1} v`: :func:`transform`'s steps undone in reverse order."""
    rotated = torch.rot90(v, -(k % 4), dims=(-2, -1))
    return rotated.flip(-1) if k >= 4 else rotated


def conjugated(f: Callable[[Tensor], Tensor], v: Tensor, k: int) -> Tensor:
    r""":math:`g_k^{-1} f(g_k v)`."""
    return inverse(f(transform(v, k)), k)


def ensemble(f: Callable[[Tensor], Tensor], v: Tensor) -> Tensor:
    r"""The full self-ensemble :math:`\bar f(v) = \frac18\sum_k g_k^{-1} f(g_k v)`."""
    return sum(conjugated(f, v, k) for k in range(ORDER)) / ORDER
