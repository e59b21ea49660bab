r"""The orthonormal Haar wavelet synthesis of images, through ptwt (PyTorch Wavelet Toolbox).

Wavelet-:math:`\ell_1` reconstruction solves :math:`\min_c \tfrac12\|x - A S c\|^2 + \lambda\|c\|_1` and returns
:math:`\hat s = S \hat c`: ISTA/FISTA on the composed operator :math:`A S` (:mod:`mbdl.algorithms`), written once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import ptwt
import torch
from torch import Tensor
from torch.nn import functional

from mbdl.config import check_positive, require
from mbdl.operators.base import LinearOperator


class WaveletSynthesis(LinearOperator):
    r"""The synthesis :math:`S = P^H W^H` of an ``levels``-level orthonormal Haar transform :math:`W`.

    :math:`P` zero-pads an image ``(..., h, w)`` right and bottom to multiples of :math:`2^L` (the
    coefficient grid, :attr:`in_shape`), :math:`W` is ptwt's ``wavedec2`` (``"haar"``, equal to PyWavelets'
    ``periodization`` on these even sizes), laid out as PyWavelets' ``coeffs_to_array`` (approximation at the
    top left, then each level's horizontal, vertical and diagonal details). :math:`W` is orthogonal, so
    :math:`S S^H = I`: :math:`S` is a Parseval frame, :math:`\|S\| = 1`, and :math:`S^H s = W P s` is the
    analysis of the padded image.

    Args:
        shape: trailing image shape ``(h, w)`` or ``(c, h, w)``.
        levels: :math:`L`.

    Example:
        >>> import torch
        >>> S = WaveletSynthesis((1, 30, 33), levels=2)
        >>> S.in_shape, S.out_shape
        ((1, 32, 36), (1, 30, 33))
        >>> s = torch.rand(4, 1, 30, 33)
        >>> bool(torch.allclose(S(S.adjoint(s)), s, atol=1e-6))
        True
    """

    def __init__(self, shape: Sequence[int], levels: int = 3) -> None:
        check_positive(levels, "method.levels", integer=True)
        shape = tuple(shape)
        require(len(shape) >= 2, "operator", f"a 2-D wavelet needs images (h, w), got shape {shape}")
        step = 2**levels
        grid = tuple(step * math.ceil(n / step) for n in shape[-2:])
        super().__init__((*shape[:-2], *grid), shape)
        self.levels = levels

    def _split(self, c: Tensor) -> list:
        """The coefficient array ``(..., H, W)`` as ptwt's ``[a, (h, v, d)_L, ..., (h, v, d)_1]``."""
        H, W = self.in_shape[-2:]
        h, w = H >> self.levels, W >> self.levels
        coefficients: list = [c[..., :h, :w]]
        for _ in range(self.levels):
            coefficients.append((c[..., h : 2 * h, :w], c[..., :h, w : 2 * w], c[..., h : 2 * h, w : 2 * w]))
            h, w = 2 * h, 2 * w
        return coefficients

    def forward(self, c: Tensor) -> Tensor:
        """:math:`S c`: ``(..., H, W)`` coefficients -> ``(..., h, w)`` image."""
        lead = c.shape[:-2]
        image = ptwt.waverec2(self._split(c.reshape(-1, *c.shape[-2:])), "haar")
        h, w = self.out_shape[-2:]
        return image.reshape(*lead, *image.shape[-2:])[..., :h, :w]

    def adjoint(self, s: Tensor) -> Tensor:
        """:math:`S^H s = W P s`: ``(..., h, w)`` image -> ``(..., H, W)`` coefficients."""
        (H, W), (h, w) = self.in_shape[-2:], self.out_shape[-2:]
        lead = s.shape[:-2]
        padded = functional.pad(s.reshape(-1, h, w), (0, W - w, 0, H - h))
        approximation, *details = ptwt.wavedec2(padded, "haar", level=self.levels, mode="zero")
        rows = approximation
        for horizontal, vertical, diagonal in details:
            rows = torch.cat([torch.cat([rows, vertical], dim=-1), torch.cat([horizontal, diagonal], dim=-1)], dim=-2)
        return rows.reshape(*lead, H, W)

    def compute_norm2(self) -> float:
        return 1.0
