"""Networks of the ultrasound tasks: a sub-pixel CNN for localization (Deep-ULM style), complex convolutions, and
the complex 3-D residual CNN of CORONA's black-box baseline (Res3dC)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional

from mbdl.config import check_positive, require


def check_odd(kernel_size: int, option: str) -> None:
    require(isinstance(kernel_size, int) and kernel_size > 0 and kernel_size % 2 == 1, option, f"must be an odd positive integer, got {kernel_size!r}")


class SubPixelCNN(nn.Module):
    """Coarse image ``(batch, h, w)`` to a map ``(batch, q h, q w)`` (Deep-ULM style, van Sloun et al.).

    ``layers - 1`` blocks ``Conv(k × k) -> ReLU`` of ``channels`` filters on the coarse grid, then a convolution to
    ``q²`` channels rearranged to the fine grid (sub-pixel convolution, ``PixelShuffle``), all weights on the coarse
    grid.

    Args:
        factor: ``q``.
        channels: filters of the hidden convolutions.
        layers: convolutions (``>= 2``).
        kernel_size: odd kernel size.
    """

    def __init__(self, factor: int, channels: int = 64, layers: int = 6, kernel_size: int = 5) -> None:
        super().__init__()
        check_positive(channels, "method.channels", integer=True)
        require(isinstance(layers, int) and layers >= 2, "method.layers", f"must be an integer >= 2, got {layers!r}")
        check_odd(kernel_size, "method.kernel_size")
        widths = [1] + [channels] * (layers - 1)
        body: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:]):
            body += [nn.Conv2d(a, b, kernel_size, padding=kernel_size // 2), nn.ReLU()]
        body += [nn.Conv2d(channels, factor * factor, kernel_size, padding=kernel_size // 2), nn.PixelShuffle(factor)]
        self.body = nn.Sequential(*body)

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x.unsqueeze(1)).squeeze(1)


class ComplexConv(nn.Module):
    r"""A complex convolution :math:`y = W * x` over the last 2 or 3 axes, :math:`W = W_r + iW_i` held as two real weights.

    Computed as one real convolution of :math:`[\Re x, \Im x]` with the block weight
    :math:`\begin{bmatrix} W_r & -W_i \\ W_i & W_r \end{bmatrix}`; no bias (the signals are zero-mean). Shapes:
    ``(batch, in_channels, *spatial) -> (batch, out_channels, *spatial)``, complex, "same" zero padding.

    Args:
        in_channels, out_channels: complex channels.
        kernel_size: odd size per axis (2 axes: 2-D convolution; 3 axes: 3-D).
        random: random initial weights (``False``: zeros, set later, e.g. by :meth:`set_identity_mix`; no random draw).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Sequence[int], random: bool = True) -> None:
        super().__init__()
        kernel_size = tuple(kernel_size)
        require(len(kernel_size) in (2, 3) and all(isinstance(k, int) and k > 0 and k % 2 for k in kernel_size), "method", f"complex kernels need 2 or 3 odd sizes, got {kernel_size!r}")
        self.padding = tuple(k // 2 for k in kernel_size)
        self.conv = functional.conv2d if len(kernel_size) == 2 else functional.conv3d
        shape = (out_channels, in_channels, *kernel_size)
        scale = (in_channels * torch.tensor(kernel_size).prod().item() * 2) ** -0.5 if random else 0.0
        self.weight_re = nn.Parameter(scale * torch.randn(shape) if random else torch.zeros(shape))
        self.weight_im = nn.Parameter(scale * torch.randn(shape) if random else torch.zeros(shape))

    @torch.no_grad()
    def set_identity_mix(self, mix: Tensor) -> None:
        """Set the weights to a real ``(out, in)`` mixing of the channels at the kernel's centre (zero elsewhere)."""
        self.weight_re.zero_()
        self.weight_im.zero_()
        centre = (slice(None), slice(None), *(k // 2 for k in self.weight_re.shape[2:]))
        self.weight_re[centre] = mix.to(self.weight_re.dtype)

    def forward(self, x: Tensor) -> Tensor:
        weight = torch.cat([torch.cat([self.weight_re, -self.weight_im], 1), torch.cat([self.weight_im, self.weight_re], 1)], 0)
        y = self.conv(torch.cat([x.real, x.imag], 1).to(weight.dtype), weight, padding=self.padding)
        re, im = y.chunk(2, dim=1)
        return torch.complex(re, im)


def complex_relu(x: Tensor) -> Tensor:
    """ReLU on the real and imaginary parts (CReLU)."""
    return torch.complex(torch.relu(x.real), torch.relu(x.imag))


class ComplexBatchNorm(nn.Module):
    """Batch normalisation of the real and imaginary parts, each with its own statistics (as Res3dC)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.re, self.im = nn.BatchNorm3d(channels), nn.BatchNorm3d(channels)

    def forward(self, x: Tensor) -> Tensor:
        return torch.complex(self.re(x.real), self.im(x.imag))


class ComplexResidualBlock(nn.Module):
    """``CReLU(BN(conv(CReLU(BN(conv(x))))) + x)`` with 3 × 3 × 3 complex convolutions."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1, self.bn1 = ComplexConv(channels, channels, (3, 3, 3)), ComplexBatchNorm(channels)
        self.conv2, self.bn2 = ComplexConv(channels, channels, (3, 3, 3)), ComplexBatchNorm(channels)

    def forward(self, x: Tensor) -> Tensor:
        y = complex_relu(self.bn1(self.conv1(x)))
        return complex_relu(self.bn2(self.conv2(y)) + x)


class Res3dC(nn.Module):
    """CORONA's black-box baseline: a complex 3-D residual CNN, frame sequences ``(batch, T, h, w)`` to ``(batch, T, h, w)``.

    ``conv(1→c₁, k₁) -> BN -> CReLU -> conv(c₁→c₂, 3) -> BN -> CReLU -> 2 residual blocks (c₂) -> conv(c₂→1, 3)``,
    3-D kernels over (frames, depth, width); CORONA's GPU version is ``channels=(16, 8)``, ``first_kernel=5``.

    Args:
        channels: ``(c₁, c₂)``.
        first_kernel: odd size of the first kernel (every axis).
    """

    def __init__(self, channels: Sequence[int] = (16, 8), first_kernel: int = 5) -> None:
        super().__init__()
        require(isinstance(channels, (list, tuple)) and len(channels) == 2, "method.channels", f"must be two channel counts [c1, c2], got {channels!r}")
        for c in channels:
            check_positive(c, "method.channels", integer=True)
        check_odd(first_kernel, "method.first_kernel")
        c1, c2 = channels
        self.conv1, self.bn1 = ComplexConv(1, c1, (first_kernel,) * 3), ComplexBatchNorm(c1)
        self.conv2, self.bn2 = ComplexConv(c1, c2, (3, 3, 3)), ComplexBatchNorm(c2)
        self.blocks = nn.Sequential(ComplexResidualBlock(c2), ComplexResidualBlock(c2))
        self.conv3 = ComplexConv(c2, 1, (3, 3, 3))

    def forward(self, x: Tensor) -> Tensor:
        y = complex_relu(self.bn1(self.conv1(x.unsqueeze(1))))
        y = complex_relu(self.bn2(self.conv2(y)))
        return self.conv3(self.blocks(y)).squeeze(1)


def fold_frames(frames: Tensor) -> Tensor:
    """``(batch, T, h, w) -> (batch T, h, w)``: frames as independent images (kernels of temporal size 1)."""
    return frames.reshape(-1, *frames.shape[-2:])


class ConvolutionalMixing(nn.Module):
    r"""CORONA's layer update: :math:`U_L = P_1 * D + P_2 * L + P_3 * S`, :math:`U_S = P_4 * D + P_5 * L + P_6 * S` with
    complex ``k × k × 1`` kernels (each frame alike), one :class:`ComplexConv` from 3 channels to 2.

    Initialised at the gradient step of robust PCA with step :math:`\mu` (:math:`P_1 = P_4 = \mu\delta`,
    :math:`P_2 = P_6 = (1-\mu)\delta`, :math:`P_3 = P_5 = -\mu\delta`).

    Args:
        kernel_size: odd ``k``.
        step: :math:`\mu` of that gradient step.
    """

    def __init__(self, kernel_size: int, step: float) -> None:
        super().__init__()
        check_odd(kernel_size, "method.kernel_sizes")
        self.conv = ComplexConv(3, 2, (kernel_size, kernel_size), random=False)
        self.conv.set_identity_mix(torch.tensor([[step, 1.0 - step, -step], [step, -step, 1.0 - step]]))

    def forward(self, D: Tensor, L: Tensor, S: Tensor) -> tuple[Tensor, Tensor]:
        """``(U_L, U_S)``, each ``(batch, T, h, w)``, from ``D``, ``L``, ``S`` ``(batch, T, h, w)``."""
        mixed = self.conv(torch.stack([fold_frames(D), fold_frames(L), fold_frames(S)], dim=1))
        return mixed[:, 0].reshape(D.shape), mixed[:, 1].reshape(D.shape)


class ThresholdedResidualCNN(nn.Module):
    r"""A learned sparse proximal step :math:`P(v) = \eta_\theta(v) + f(v)`: the complex soft threshold with a trained
    :math:`\theta` plus a small complex CNN :math:`f` on each frame (``layers`` ``k × k`` convolutions with CReLU between),
    whose last convolution starts at zero, so :math:`P` starts as the soft threshold. Shapes ``(batch, T, h, w)``.

    Args:
        theta: initial threshold.
        channels: hidden complex channels.
        layers: convolutions (``>= 2``).
        kernel_size: odd ``k``.
    """

    def __init__(self, theta: float, channels: int = 4, layers: int = 3, kernel_size: int = 3) -> None:
        super().__init__()
        check_positive(channels, "method.channels", integer=True)
        require(isinstance(layers, int) and layers >= 2, "method.layers", f"must be an integer >= 2, got {layers!r}")
        check_odd(kernel_size, "method.kernel_size")
        self.theta = nn.Parameter(torch.tensor(float(theta)))
        widths = [1] + [channels] * (layers - 1) + [1]
        self.convs = nn.ModuleList(ComplexConv(a, b, (kernel_size, kernel_size)) for a, b in zip(widths[:-1], widths[1:]))
        with torch.no_grad():
            self.convs[-1].weight_re.zero_()
            self.convs[-1].weight_im.zero_()

    def forward(self, v: Tensor) -> Tensor:
        y = fold_frames(v).unsqueeze(1)
        for i, conv in enumerate(self.convs):
            y = conv(y) if i == len(self.convs) - 1 else complex_relu(conv(y))
        shrunk = torch.sgn(v) * torch.relu(v.abs() - self.theta)
        return shrunk + y.reshape(v.shape)
