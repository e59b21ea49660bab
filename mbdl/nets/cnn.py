"""Convolutional networks on array covariances (images of shape ``(batch, channels, N, N)``)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class CovarianceCNN(nn.Module):
    """Papageorgiou et al.'s DeepCNN, scaled to the array: convolutions, then dense layers to a grid.

    ``layers`` blocks ``Conv2d(3x3, padding 1) -> BatchNorm -> ReLU`` keep the ``N x N`` image;
    dense layers ``hidden`` (ReLU, dropout) end in ``outputs`` logits (one per grid angle).

    Args:
        in_channels: input channels (e.g. real, imaginary and phase of the covariance).
        size: ``N``.
        outputs: number of logits (grid points).
        channels: filters of each convolution.
        layers: number of convolutional blocks.
        hidden: widths of the dense layers.
        dropout: dropout probability before each dense layer.
    """

    def __init__(self, in_channels: int, size: int, outputs: int, channels: int = 64, layers: int = 4, hidden: tuple[int, ...] = (512, 256), dropout: float = 0.3) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        for i in range(layers):
            blocks += [nn.Conv2d(in_channels if i == 0 else channels, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU()]
        dense: list[nn.Module] = [nn.Flatten()]
        width = channels * size * size
        for h in hidden:
            dense += [nn.Dropout(dropout), nn.Linear(width, h), nn.ReLU()]
            width = h
        dense.append(nn.Linear(width, outputs))
        self.body = nn.Sequential(*blocks, *dense)

    def forward(self, image: Tensor) -> Tensor:
        """``(batch, outputs)`` logits of ``image`` ``(batch, in_channels, N, N)``."""
        return self.body(image)


class AntiRectifier(nn.Module):
    """``[relu(v), relu(-v)]`` along the channels: keeps the sign information a ReLU drops (doubles the channels)."""

    def forward(self, v: Tensor) -> Tensor:
        return torch.cat([torch.relu(v), torch.relu(-v)], dim=1)


class SubspaceNetCNN(nn.Module):
    """SubspaceNet's autoencoder (Shmuel et al. 2023): ``N x N`` images to ``N x N`` images.

    Three ``2x2`` convolutions shrink the image to ``(N-3) x (N-3)``, three ``2x2`` transposed
    convolutions grow it back, each followed by an :class:`AntiRectifier`; dropout before the last.

    Args:
        in_channels: input channels (``2τ``: real and imaginary parts of ``τ`` lagged autocorrelations).
        out_channels: output channels (2: real and imaginary parts of ``K``).
        width: channels of the first layer (SubspaceNet: 16; doubled at the bottleneck).
        dropout: dropout probability before the last layer.
    """

    def __init__(self, in_channels: int, out_channels: int = 2, width: int = 16, dropout: float = 0.2) -> None:
        super().__init__()
        w = width
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, w, 2), AntiRectifier(),
            nn.Conv2d(2 * w, 2 * w, 2), AntiRectifier(),
            nn.Conv2d(4 * w, 4 * w, 2), AntiRectifier(),
            nn.ConvTranspose2d(8 * w, 2 * w, 2), AntiRectifier(),
            nn.ConvTranspose2d(4 * w, w, 2), AntiRectifier(),
            nn.Dropout(dropout),
            nn.ConvTranspose2d(2 * w, out_channels, 2),
        )  # fmt: skip

    def forward(self, image: Tensor) -> Tensor:
        """``(batch, out_channels, N, N)`` from ``image`` ``(batch, in_channels, N, N)``."""
        return self.body(image)
