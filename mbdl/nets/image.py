r"""Convolutional networks on images ``(batch, c, h, w)``: DnCNN, a small U-Net, ISTA-Net⁺'s proximal block.

Every network here maps an image to an image of the same size (any ``h, w``), so that one trained on
crops reconstructs whole images. Their weights are stored channels-last (:func:`channels_last`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional

from mbdl.algorithms.ista import soft_threshold
from mbdl.config import check_positive, require
from mbdl.nets.prox import residual_branch


def channels_last(net: nn.Module) -> None:
    """Store ``net``'s 4-D weights channels-last (NHWC), oneDNN's and cuDNN's fast layout for small 3×3 convolutions;
    the outputs follow the weights' layout. A training step of ISTA-Net⁺ (9 phases × 16 channels, batch 32) on this
    CPU: 1.29× faster in float32, 1.41× in ``bf16-mixed``, 2.29× with both (``scripts/bench_precision.py``)."""
    net.to(memory_format=torch.channels_last)


def _conv(a: int, b: int) -> nn.Conv2d:
    """A 3×3 convolution without bias (see :class:`DnCNN`: why the residual networks here have none)."""
    return nn.Conv2d(a, b, 3, padding=1, bias=False)


class DnCNN(nn.Module):
    r"""DnCNN (Zhang et al. 2017) without batch normalisation: :math:`v + f(v)`, :math:`f` = ``layers`` 3×3
    convolutions of width ``channels`` with ReLUs between, the last one zero-initialised (the net starts as the identity).

    The convolutions have no bias (as ISTA-Net's). With biases the branch switched itself off on a linear MMSE start
    (block CS's Qinit; MoDL and proximal gradient start at its fixed point): there the residual is uncorrelated
    with the features, so the only gradient on the last hidden biases is the variance the branch adds,
    :math:`\partial_b E\|w h\|^2 > 0`; tiny, but Adam steps by the learning rate whatever the gradient's size,
    so within ~100 steps the biases turned the last ReLUs off (0.8 % active, from 62 %) and the net stayed the
    identity: DnCNN, MoDL and neural proximal gradient all gave exactly Qinit's PSNR (docs/imaging.md).

    Args:
        channels: hidden channels.
        layers: convolutions (``>= 2``).
        in_channels: input channels; the first is the image the residual is added to (more: e.g. a noise-level map).

    Example:
        >>> DnCNN(8, 3)(torch.rand(2, 1, 33, 33)).shape
        torch.Size([2, 1, 33, 33])
    """

    def __init__(self, channels: int = 32, layers: int = 8, in_channels: int = 1) -> None:
        super().__init__()
        check_positive(channels, "method.channels", integer=True)
        require(isinstance(layers, int) and layers >= 2, "method.layers", f"must be an integer >= 2, got {layers!r}")
        widths = [in_channels] + [channels] * (layers - 1) + [1]
        self.f = residual_branch([_conv(a, b) for a, b in zip(widths[:-1], widths[1:])])
        channels_last(self)

    def forward(self, v: Tensor) -> Tensor:
        """``(batch, 1, h, w)`` from ``v`` ``(batch, in_channels, h, w)``: ``v[:, :1] + f(v)``."""
        return v[:, :1] + self.f(v)


class UNet(nn.Module):
    r"""A small residual U-Net: two 2× down-samplings (max pooling), two convolutions per scale, skip connections
    by concatenation, transposed-convolution up-sampling; :math:`v + f(v)` with the last convolution zero-initialised;
    no biases (see :class:`DnCNN`).
    Inputs are reflect-padded to multiples of 4 and cropped back, so any size works.

    Args:
        channels: channels at the finest scale (doubled at each coarser one).

    Example:
        >>> UNet(8)(torch.rand(2, 1, 33, 30)).shape
        torch.Size([2, 1, 33, 30])
    """

    def __init__(self, channels: int = 16) -> None:
        super().__init__()
        check_positive(channels, "method.channels", integer=True)
        c = channels
        block = lambda a, b: nn.Sequential(_conv(a, b), nn.ReLU(), _conv(b, b), nn.ReLU())  # noqa: E731
        self.down1, self.down2, self.bottom = block(1, c), block(c, 2 * c), block(2 * c, 4 * c)
        self.up2, self.up1 = nn.ConvTranspose2d(4 * c, 2 * c, 2, stride=2, bias=False), nn.ConvTranspose2d(2 * c, c, 2, stride=2, bias=False)
        self.merge2, self.merge1 = block(4 * c, 2 * c), block(2 * c, c)
        self.out = nn.Conv2d(c, 1, 1, bias=False)  # no biases anywhere: see DnCNN
        nn.init.zeros_(self.out.weight)
        channels_last(self)

    def forward(self, v: Tensor) -> Tensor:
        h, w = v.shape[-2:]
        padded = functional.pad(v, (0, -w % 4, 0, -h % 4), mode="reflect" if min(h, w) > 4 else "replicate")
        a = self.down1(padded)
        b = self.down2(functional.max_pool2d(a, 2))
        c = self.bottom(functional.max_pool2d(b, 2))
        b = self.merge2(torch.cat([b, self.up2(c)], dim=1))
        a = self.merge1(torch.cat([a, self.up1(b)], dim=1))
        return v + self.out(a)[..., :h, :w]


class ISTANetProx(nn.Module):
    r"""The proximal block of one ISTA-Net⁺ phase (Zhang & Ghanem 2018):

    .. math::  s = r + \mathcal G\big(\tilde{\mathcal F}^{-1}(\eta_\theta(\tilde{\mathcal F}(\mathcal D(r))))\big),

    :math:`\mathcal D`: a 3×3 convolution 1 → ``channels``; :math:`\tilde{\mathcal F}` and :math:`\tilde{\mathcal F}^{-1}`:
    conv-ReLU-conv; :math:`\eta_\theta` the soft threshold (learned :math:`\theta`, initially 0.01);
    :math:`\mathcal G`: a 3×3 convolution ``channels`` → 1. After each call :attr:`symmetry` holds
    :math:`\tilde{\mathcal F}^{-1}(\tilde{\mathcal F}(\mathcal D r)) - \mathcal D r` (the constraint of the symmetry
    loss) when ``symmetry=True``. Convolutions without bias, Xavier-initialised, as ISTA-Net's.

    Args:
        channels: feature channels (ISTA-Net⁺: 32).
        symmetry: compute the symmetry residual.
    """

    def __init__(self, channels: int = 32, symmetry: bool = True) -> None:
        super().__init__()
        check_positive(channels, "method.channels", integer=True)
        conv = lambda a, b: nn.Conv2d(a, b, 3, padding=1, bias=False)  # noqa: E731
        self.D, self.G = conv(1, channels), conv(channels, 1)
        self.forward_transform = nn.Sequential(conv(channels, channels), nn.ReLU(), conv(channels, channels))
        self.backward_transform = nn.Sequential(conv(channels, channels), nn.ReLU(), conv(channels, channels))
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.xavier_normal_(module.weight)
        self.theta = nn.Parameter(torch.tensor(0.01))
        channels_last(self)
        self.compute_symmetry = symmetry
        self.symmetry: Tensor | None = None

    def forward(self, r: Tensor) -> Tensor:
        features = self.D(r)
        transformed = self.forward_transform(features)
        if self.compute_symmetry:
            self.symmetry = self.backward_transform(transformed) - features
        return r + self.G(self.backward_transform(soft_threshold(transformed, self.theta)))
