"""A multilayer perceptron."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from mbdl.config import check_choice, check_positive

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}


class MLP(nn.Module):
    """``Linear -> activation`` for every hidden width, then a last ``Linear``: ``(batch, in) -> (batch, out)``.

    Args:
        in_features: input size.
        out_features: output size.
        hidden: widths of the hidden layers (empty: a linear map).
        activation: one of :data:`ACTIVATIONS`.
    """

    def __init__(self, in_features: int, out_features: int, hidden: Sequence[int] = (), activation: str = "relu") -> None:
        super().__init__()
        check_choice(activation, "method.activation", ACTIVATIONS)
        for width in hidden:
            check_positive(width, "method.hidden", integer=True)
        widths = [in_features, *hidden]
        layers: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(a, b), ACTIVATIONS[activation]()]
        self.net = nn.Sequential(*layers, nn.Linear(widths[-1], out_features))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)
