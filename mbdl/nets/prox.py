r"""A small residual convolutional network used as a learned proximal operator.

:math:`P(v) = v + f(v)`, :math:`f` = ``layers`` convolutions of width ``channels`` along the signal
(1-D) or the image (2-D) with ReLUs between; the last convolution starts at zero, so :math:`P` starts as
the identity. ``kernel_size=1`` gives a learned pointwise shrinkage function. Shapes:
``(batch, m) -> (batch, m)`` or ``(batch, h, w) -> (batch, h, w)``.
"""

from __future__ import annotations

from torch import Tensor, nn

from mbdl.config import check_positive, require


#: the convolution of each signal dimension.
CONVOLUTIONS = {1: nn.Conv1d, 2: nn.Conv2d}


def residual_branch(convs: list[nn.Module]) -> nn.Sequential:
    """``convs`` with ReLUs between them, the last one zero-initialised: the branch ``f`` of ``v + f(v)`` starts at 0."""
    nn.init.zeros_(convs[-1].weight)
    if convs[-1].bias is not None:
        nn.init.zeros_(convs[-1].bias)
    body: list[nn.Module] = []
    for conv in convs[:-1]:
        body += [conv, nn.ReLU()]
    return nn.Sequential(*body, convs[-1])


class ProxCNN(nn.Module):
    """Residual CNN ``(batch, *shape) -> (batch, *shape)`` on signals of ``dims`` axes.

    Args:
        channels: hidden channels.
        layers: convolutions (``>= 2``).
        kernel_size: odd kernel length (1: pointwise).
        dims: 1 (signals ``(batch, m)``) or 2 (images ``(batch, h, w)``).
    """

    def __init__(self, channels: int = 16, layers: int = 3, kernel_size: int = 3, dims: int = 1) -> None:
        super().__init__()
        require(dims in CONVOLUTIONS, "method", f"a prox CNN works on 1-D signals or 2-D images, got signals of {dims} axes")
        check_positive(channels, "method.channels", integer=True)
        require(isinstance(layers, int) and layers >= 2, "method.layers", f"must be an integer >= 2, got {layers!r}")
        require(isinstance(kernel_size, int) and kernel_size % 2 == 1, "method.kernel_size", f"must be an odd integer, got {kernel_size!r}")
        widths = [1] + [channels] * (layers - 1) + [1]
        self.f = residual_branch([CONVOLUTIONS[dims](a, b, kernel_size, padding=kernel_size // 2) for a, b in zip(widths[:-1], widths[1:])])

    def forward(self, v: Tensor) -> Tensor:
        return v + self.f(v.unsqueeze(1)).squeeze(1)
