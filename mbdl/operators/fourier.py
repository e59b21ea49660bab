r"""Operators diagonal in Fourier: convolution (1-D, 2-D) and the masked Fourier transform of MRI."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torch.nn import functional

from mbdl.config import check_choice, require
from mbdl.operators.base import LinearOperator, float64, like

BOUNDARIES = ("circular", "zero")


def fft_grid(kernel_shape: Sequence[int], signal: Sequence[int], boundary: str) -> tuple[int, ...]:
    """The FFT grid of a convolution: the signal (circular), or large enough that the linear convolution does not wrap (zero)."""
    return tuple(signal) if boundary == "circular" else tuple(n + k - 1 for n, k in zip(signal, kernel_shape))


def transfer_function(kernel: Tensor, grid: Sequence[int]) -> Tensor:
    r"""The DFT :math:`\hat h` on ``grid`` of ``kernel`` (one or two axes) placed with its centre
    :math:`\lfloor (k-1)/2 \rfloor` at index 0, complex, in ``kernel``'s precision; differentiable in ``kernel``."""
    dims = tuple(range(-kernel.dim(), 0))
    padded = functional.pad(kernel, [p for n, k in zip(reversed(grid), reversed(kernel.shape)) for p in (0, n - k)])
    return torch.fft.fftn(torch.roll(padded, shifts=[-((k - 1) // 2) for k in kernel.shape], dims=dims), dim=dims)


def fourier_filter(s: Tensor, response: Tensor, grid: Sequence[int], signal: Sequence[int], real: bool = True) -> Tensor:
    """Multiply ``s`` ``(..., *signal)`` by ``response`` (complex, on ``grid``) in Fourier and crop back to ``signal``.

    ``real``: the response is that of a real kernel, so a real ``s`` stays real (half-spectrum FFTs)."""
    grid, signal = tuple(grid), tuple(signal)
    dims = tuple(range(-len(grid), 0))
    response = like(response, s)
    if s.is_complex() or not real:
        out = torch.fft.ifftn(torch.fft.fftn(s, s=grid, dim=dims) * response, dim=dims)
    else:
        half = response[..., : grid[-1] // 2 + 1]
        out = torch.fft.irfftn(torch.fft.rfftn(s, s=grid, dim=dims) * half, s=grid, dim=dims)
    return out if grid == signal else out[(..., *(slice(0, n) for n in signal))]


def convolve(s: Tensor, kernel: Tensor, boundary: str = "zero") -> Tensor:
    """``Convolution(kernel, s.shape, boundary)(s)``, differentiable in ``kernel`` too (a learned kernel): the same
    convention (scipy's ``mode="same"``) and the same FFT route, the transfer function recomputed on every call.

    Example:
        >>> import torch
        >>> s, kernel = torch.rand(2, 8, 8), torch.rand(3, 3)
        >>> torch.allclose(convolve(s, kernel), Convolution(kernel, (8, 8), "zero")(s), atol=1e-6)
        True
    """
    signal = tuple(s.shape[-kernel.dim() :])
    grid = fft_grid(kernel.shape, signal, boundary)
    return fourier_filter(s, transfer_function(kernel, grid), grid, signal, real=not kernel.is_complex())


class Convolution(LinearOperator):
    r"""Convolution with a kernel :math:`h` over the last one or two axes, by FFT, real or complex.

    :math:`(A s)[i] = \sum_l h[l]\, s[i - l + c]` with the kernel's centre :math:`c = \lfloor (k-1)/2 \rfloor`
    per axis (scipy's ``convolve(..., mode="same")``); the output has the input's size. Boundary
    ``"circular"``: :math:`s` is periodic, :math:`A = F^{-1}\,\mathrm{diag}(\hat h)\,F`, so
    :math:`A^H A` is one FFT pair, :math:`\|A\|^2 = \max|\hat h|^2` and
    :math:`(A^H A + \rho I)^{-1}` is a division in Fourier. ``"zero"``: :math:`s` is zero outside
    the signal (linear convolution cropped to the input size, computed on a padded grid);
    :math:`\|A\|^2` by Lanczos, the inverse by conjugate gradient.

    Args:
        kernel: :math:`h`, ``(k,)`` for 1-D or ``(k_h, k_w)`` for 2-D convolution.
        shape: trailing signal shape: ``(n,)`` / ``(h, w)``, or with leading axes (e.g. ``(c, h, w)``)
            that share the kernel.
        boundary: ``"circular"`` or ``"zero"``.

    Example:
        >>> import torch
        >>> A = Convolution(torch.ones(3, 3) / 9, shape=(1, 32, 32), boundary="circular")
        >>> x = A(torch.rand(16, 1, 32, 32))
        >>> x.shape, round(A.norm2(), 6)
        (torch.Size([16, 1, 32, 32]), 1.0)
    """

    def __init__(self, kernel: Tensor, shape: Sequence[int], boundary: str = "circular") -> None:
        check_choice(boundary, "boundary", BOUNDARIES)
        shape, dims = tuple(shape), kernel.dim()
        require(dims in (1, 2) and len(shape) >= dims, "operator", f"convolution needs a 1-D or 2-D kernel and a signal of at least that many axes, got kernel {tuple(kernel.shape)} and shape {shape}")
        signal = shape[-dims:]
        circular = boundary == "circular"
        require(not circular or all(k <= n for k, n in zip(kernel.shape, signal)), "operator", f"a circular kernel {tuple(kernel.shape)} must fit in the signal {signal}")
        super().__init__(shape, shape)
        self.boundary, self.signal = boundary, signal
        #: the FFT grid: the signal (circular), or large enough that the linear convolution does not wrap (zero)
        self.grid = fft_grid(kernel.shape, signal, boundary)
        self.register_buffer("kernel", kernel)
        # the transfer function, real and imaginary parts stacked: a real buffer, so that .to(dtype) casts it
        self.register_buffer("spectrum", torch.view_as_real(transfer_function(float64(kernel), self.grid)).to(kernel.real.dtype), persistent=False)

    @property
    def transfer(self) -> Tensor:
        r"""The transfer function :math:`\hat h` on :attr:`grid`, complex."""
        return torch.view_as_complex(self.spectrum)

    def _filter(self, s: Tensor, response: Tensor) -> Tensor:
        return fourier_filter(s, response, self.grid, self.signal, real=not self.kernel.is_complex())

    def forward(self, s: Tensor) -> Tensor:
        return self._filter(s, self.transfer)

    def adjoint(self, x: Tensor) -> Tensor:
        return self._filter(x, self.transfer.conj())

    def gram(self, s: Tensor) -> Tensor:
        if self.boundary == "zero":
            return super().gram(s)
        return self._filter(s, self.transfer.abs().square())

    def compute_norm2(self) -> float:
        if self.boundary == "zero":
            return super().compute_norm2()
        return self.transfer.abs().square().max().item()

    def solve(self, rho: Tensor | float, rhs: Tensor) -> Tensor:
        if self.boundary == "zero":
            return super().solve(rho, rhs)
        return self._filter(rhs, 1.0 / (self.transfer.abs().square() + rho))


def _reflect(weights: Tensor) -> Tensor:
    """``w[-k]`` over the last two axes (indices modulo the size)."""
    return torch.roll(torch.flip(weights, dims=(-2, -1)), shifts=(1, 1), dims=(-2, -1))


class MaskedFourier(LinearOperator):
    r"""MRI: the orthonormal 2-D DFT over the last two axes, then a k-space mask :math:`M`: :math:`A s = M \odot F s`.

    :math:`A^H x = F^H(\bar M \odot x)`, :math:`A^H A = F^H |M|^2 F`, so :math:`\|A\|^2 = \max |M|^2`
    and :math:`(A^H A + \rho I)^{-1} = F^H (|M|^2 + \rho)^{-1} F`. The output is complex.

    With ``real=True`` the images are real: :math:`A` maps real images to complex k-space and its
    adjoint for the real inner product :math:`\mathrm{Re}\langle\cdot,\cdot\rangle` is
    :math:`\mathrm{Re}\,F^H(\bar M \odot x)` (the zero-filled image ``real(ifft2(mask · y))`` of
    ISTA-Net). Then :math:`A^H A = F^H D F` with the symmetrised :math:`D_k = (|M_k|^2 + |M_{-k}|^2)/2`,
    still diagonal in Fourier.

    Args:
        mask: :math:`M`, ``(h, w)`` (or ``(c, h, w)``), usually 0/1, DC at ``[0, 0]`` (no fftshift).
        real: the signals are real images.

    Example:
        >>> import torch
        >>> mask = torch.zeros(8, 8); mask[:, :3] = 1.0
        >>> A = MaskedFourier(mask, real=True)
        >>> y = A(torch.rand(4, 8, 8))
        >>> y.dtype, A.adjoint(y).dtype, A.norm2()
        (torch.complex64, torch.float32, 1.0)
    """

    def __init__(self, mask: Tensor, real: bool = False) -> None:
        require(mask.dim() >= 2, "operator", f"a k-space mask needs two axes (h, w), got shape {tuple(mask.shape)}")
        super().__init__(mask.shape, mask.shape)
        self.real = real
        self.register_buffer("mask", mask)
        power = mask.abs().square()
        self.register_buffer("power", 0.5 * (power + _reflect(power)) if real else power, persistent=False)  # the diagonal of F A^H A F^H

    def forward(self, s: Tensor) -> Tensor:
        return torch.fft.fft2(s, norm="ortho") * like(self.mask, s)

    def adjoint(self, x: Tensor) -> Tensor:
        s = torch.fft.ifft2(x * like(self.mask, x).conj(), norm="ortho")
        return s.real if self.real else s

    def gram(self, s: Tensor) -> Tensor:
        return self._diagonal(s, self.power)

    def compute_norm2(self) -> float:
        return self.power.max().item()

    def solve(self, rho: Tensor | float, rhs: Tensor) -> Tensor:
        return self._diagonal(rhs, 1.0 / (self.power + rho))

    def _diagonal(self, s: Tensor, weights: Tensor) -> Tensor:
        """:math:`F^H \\mathrm{diag}(w) F s` (its real part for real images)."""
        out = torch.fft.ifft2(torch.fft.fft2(s, norm="ortho") * like(weights, s.real), norm="ortho")
        return out.real if self.real else out
