r"""Operators held as arrays: a dense matrix, a diagonal, decimation, and block compressive sensing."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor
from torch.nn import functional

from mbdl.config import require
from mbdl.operators.base import LinearOperator, float64, like


class Matrix(LinearOperator):
    r"""A dense matrix :math:`H`, ``(n, m)``: :math:`s \mapsto H s` on ``(..., m) -> (..., n)``, real or complex.

    :math:`\|H\|_2^2` is computed exactly in float64. The regularised inverse uses the thin SVD
    :math:`H = U\Sigma V^H` (computed once, on first use):
    :math:`(H^H H + \rho I)^{-1} b = b/\rho + V\big((\Sigma^2 + \rho)^{-1} - \rho^{-1}\big) V^H b`,
    differentiable in :math:`\rho` (ADMM trains it).

    Example:
        >>> import torch
        >>> A = Matrix(torch.tensor([[1.0, 2.0], [0.0, 3.0], [1.0, 1.0]]))
        >>> A(torch.tensor([[1.0, -1.0]]))
        tensor([[-1., -3.,  0.]])
        >>> A.in_shape, A.out_shape
        ((2,), (3,))
    """

    def __init__(self, H: Tensor) -> None:
        require(H.dim() == 2, "operator", f"a Matrix needs a 2-D tensor (n, m), got shape {tuple(H.shape)}")
        super().__init__((H.shape[1],), (H.shape[0],))
        self.register_buffer("H", H)
        self.register_buffer("V", None, persistent=False)  # (m, r), right singular vectors, on first solve
        self.register_buffer("sigma2", None, persistent=False)  # (r,) squared singular values

    def forward(self, s: Tensor) -> Tensor:
        H = like(self.H, s)
        return s.to(H.dtype) @ H.T

    def adjoint(self, x: Tensor) -> Tensor:
        H = like(self.H, x)
        return x.to(H.dtype) @ H.conj()

    def compute_norm2(self) -> float:
        return torch.linalg.matrix_norm(float64(self.H), ord=2).item() ** 2

    def solve(self, rho: Tensor | float, rhs: Tensor) -> Tensor:
        if self.V is None:
            _, sigma, Vh = torch.linalg.svd(float64(self.H), full_matrices=False)
            self.V, self.sigma2 = Vh.mH.to(self.H.dtype), sigma.square().to(self.H.real.dtype)
        V = like(self.V, rhs)
        rhs = rhs.to(V.dtype)
        return rhs / rho + ((rhs @ V.conj()) * (1.0 / (like(self.sigma2, rhs.real) + rho) - 1.0 / rho)) @ V.T

    def dense(self) -> Tensor:
        return self.H


class Diagonal(LinearOperator):
    r"""Elementwise weights :math:`s \mapsto w \odot s` on ``(..., *w.shape)``; :math:`A^H x = \bar w \odot x`.

    Example:
        >>> import torch
        >>> Diagonal(torch.tensor([1.0, -2.0])).solve(1.0, torch.tensor([2.0, 5.0]))
        tensor([1., 1.])
    """

    def __init__(self, weights: Tensor) -> None:
        super().__init__(weights.shape, weights.shape)
        self.register_buffer("weights", weights)

    def forward(self, s: Tensor) -> Tensor:
        return s * like(self.weights, s)

    def adjoint(self, x: Tensor) -> Tensor:
        return x * like(self.weights, x).conj()

    def gram(self, s: Tensor) -> Tensor:
        return s * like(self.weights.abs().square(), s)

    def compute_norm2(self) -> float:
        return self.weights.abs().square().max().item()

    def solve(self, rho: Tensor | float, rhs: Tensor) -> Tensor:
        return rhs / (like(self.weights.abs().square(), rhs.real) + rho)


def _per_axis(value: int | Sequence[int], axes: int, name: str) -> tuple[int, ...]:
    values = (value,) * axes if isinstance(value, int) else tuple(value)
    require(len(values) == axes, "operator", f"{name} needs one value per axis ({axes}), got {value!r}")
    return values


class Decimation(LinearOperator):
    r"""Keep every ``factor``-th sample from ``offset`` on, along every axis of ``shape``:
    :math:`(Ds)_i = s_{\mathrm{offset} + i\,q}`; :math:`D^H` puts the samples back between zeros.

    Args:
        shape: trailing shape of the fine signal (1-D ``(m,)``, 2-D ``(h, w)``, ...).
        factor: :math:`q`, one for all axes or one per axis.
        offset: index of the first kept sample, one for all axes or one per axis.

    Example:
        >>> import torch
        >>> D = Decimation((6,), factor=3, offset=1)
        >>> D(torch.arange(6.0)), D.adjoint(torch.tensor([1.0, 2.0]))
        (tensor([1., 4.]), tensor([0., 1., 0., 0., 2., 0.]))
    """

    def __init__(self, shape: Sequence[int], factor: int | Sequence[int], offset: int | Sequence[int] = 0) -> None:
        shape = tuple(shape)
        factors, offsets = _per_axis(factor, len(shape), "factor"), _per_axis(offset, len(shape), "offset")
        require(all(q >= 1 and 0 <= o < n for n, q, o in zip(shape, factors, offsets)), "operator", f"decimation of {shape} by {factors} from {offsets} keeps nothing")
        self.index = (..., *(slice(o, None, q) for o, q in zip(offsets, factors)))
        super().__init__(shape, tuple(len(range(o, n, q)) for n, q, o in zip(shape, factors, offsets)))
        kept = torch.zeros(shape, dtype=torch.bool)
        kept[self.index] = True
        self.register_buffer("kept", kept, persistent=False)  # D^H D, the 0/1 mask of the kept samples

    def forward(self, s: Tensor) -> Tensor:
        return s[self.index]

    def adjoint(self, x: Tensor) -> Tensor:
        s = x.new_zeros(*x.shape[: x.dim() - len(self.out_shape)], *self.in_shape)
        s[self.index] = x
        return s

    def gram(self, s: Tensor) -> Tensor:
        return s * like(self.kept, s.real)

    def compute_norm2(self) -> float:
        return 1.0

    def solve(self, rho: Tensor | float, rhs: Tensor) -> Tensor:
        return rhs / (like(self.kept, rhs.real) + rho)


class BlockCompressiveSensing(LinearOperator):
    r"""Block compressive sensing: one :math:`\Phi` ``(m, B²)`` measures every ``B×B`` block of an image.

    The image ``(..., h, w)`` is zero-padded right and bottom to multiples of ``B``, cut into
    non-overlapping blocks in raster order, each flattened row-major, and :math:`y_k = \Phi x_k`:
    measurements ``(..., blocks, m)`` with ``blocks = ⌈h/B⌉·⌈w/B⌉`` (ISTA-Net's convention). The
    padded pixels are known zeros, not unknowns: the operator is :math:`A = \Phi_{\mathrm{blocks}} P`
    with :math:`P` the zero-padding, so the adjoint :math:`A^H = P^H \Phi^H_{\mathrm{blocks}}` crops
    the back-projected blocks to ``(h, w)``. :math:`\|A\|^2 = \|\Phi\|^2` when there is a whole
    block; the inverse is blockwise through :math:`\Phi`'s SVD when ``B`` divides ``h`` and ``w``,
    conjugate gradient otherwise.

    Args:
        phi: :math:`\Phi`, ``(m, B²)``.
        shape: trailing image shape ``(h, w)`` (or ``(c, h, w)``: every channel is measured alike).
        block: ``B``.

    Example:
        >>> import torch
        >>> A = BlockCompressiveSensing(torch.randn(10, 33 * 33), shape=(40, 70), block=33)
        >>> A(torch.randn(2, 40, 70)).shape, A.out_shape
        (torch.Size([2, 6, 10]), (6, 10))
    """

    def __init__(self, phi: Tensor, shape: Sequence[int], block: int = 33) -> None:
        require(phi.dim() == 2 and phi.shape[1] == block * block, "operator", f"Φ must be (m, {block * block}) for {block}×{block} blocks, got {tuple(phi.shape)}")
        shape = tuple(shape)
        require(len(shape) >= 2, "operator", f"block compressive sensing needs images (h, w), got shape {shape}")
        self.block = block
        self.rows, self.cols = math.ceil(shape[-2] / block), math.ceil(shape[-1] / block)
        super().__init__(shape, (*shape[:-2], self.rows * self.cols, phi.shape[0]))
        self.phi = Matrix(phi)

    def blocks(self, s: Tensor) -> Tensor:
        """``(..., h, w)`` -> ``(..., blocks, B²)``: pad, cut into blocks (raster order), flatten each row-major."""
        B, (h, w) = self.block, self.in_shape[-2:]
        padded = functional.pad(s, (0, self.cols * B - w, 0, self.rows * B - h))
        return padded.reshape(*s.shape[:-2], self.rows, B, self.cols, B).transpose(-3, -2).reshape(*s.shape[:-2], self.rows * self.cols, B * B)

    def image(self, blocks: Tensor) -> Tensor:
        """``(..., blocks, B²)`` -> ``(..., h, w)``: the inverse of :meth:`blocks` on the image (the padding cropped)."""
        B, (h, w) = self.block, self.in_shape[-2:]
        lead = blocks.shape[:-2]
        tiled = blocks.reshape(*lead, self.rows, self.cols, B, B).transpose(-3, -2).reshape(*lead, self.rows * B, self.cols * B)
        return tiled[..., :h, :w]

    def forward(self, s: Tensor) -> Tensor:
        return self.phi(self.blocks(s))

    def adjoint(self, x: Tensor) -> Tensor:
        return self.image(self.phi.adjoint(x))

    def compute_norm2(self) -> float:
        whole_block = min(self.in_shape[-2:]) >= self.block
        return self.phi.norm2() if whole_block else super().compute_norm2()

    def solve(self, rho: Tensor | float, rhs: Tensor) -> Tensor:
        if any(n % self.block for n in self.in_shape[-2:]):
            return super().solve(rho, rhs)
        return self.image(self.phi.solve(rho, self.blocks(rhs)))
