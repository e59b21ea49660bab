"""The localization-microscopy spectrum's own methods (the others are the generic linear-inverse-problem solvers of
:mod:`mbdl.methods.sparse_recovery` on the assumed PSF-and-decimation operator: FISTA, ISTA with shared learned
step and threshold, neural proximal gradient):

* unfolded: learned convolutional ISTA (:class:`~mbdl.algorithms.conv_ista.ConvolutionalISTA`), 10 layers;
* black box: a Deep-ULM-style sub-pixel CNN, coarse image to fine map.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from mbdl.algorithms.conv_ista import ConvolutionalISTA
from mbdl.algorithms.parameters import Mode
from mbdl.config import check_positive, require
from mbdl.methods.base import IterativeMethod, Method
from mbdl.nets.ultrasound import SubPixelCNN
from mbdl.tasks.inverse_problem import LinearInverseProblem


class ConvolutionalISTASolver(IterativeMethod):
    """Learned convolutional ISTA on the assumed operator (sub-pixel kernels ``W_t``, fine-grid kernels ``S_t`` and
    thresholds ``θ_t`` per layer, every layer started as an ISTA iteration,
    :class:`~mbdl.algorithms.conv_ista.ConvolutionalISTA`).

    Args:
        assumed: the task's assumed linear inverse problem (images to coarse images).
        iterations: layers.
        lam: the ``λ`` of the ISTA the layers start as (thresholds ``μ λ``, ``μ`` ISTA's step).
        kernel_w: odd size of each sub-pixel phase's kernel of ``W_t`` (coarse pixels, axial × lateral).
        kernel_s: odd kernel size of ``S_t`` (fine pixels).
        mode: ``"per_iteration"`` (unfolded), ``"shared"`` (tied layers) or ``"fixed"`` (untrained).
    """

    def __init__(
        self,
        assumed: LinearInverseProblem,
        iterations: int = 10,
        lam: float = 2.0,
        kernel_w: Sequence[int] = (7, 17),
        kernel_s: Sequence[int] = (21, 41),
        mode: Mode = "per_iteration",
    ) -> None:
        super().__init__(assumed)
        check_positive(iterations, "method.iterations", integer=True)
        check_positive(lam, "method.lam", strict=False)
        self.algorithm = ConvolutionalISTA(assumed.operator, iterations, lam, tuple(kernel_w), tuple(kernel_s), mode)


class DeepULM(Method):
    """Black box: a sub-pixel CNN (:class:`~mbdl.nets.ultrasound.SubPixelCNN`) from the coarse image to the fine map; the
    operator gives only the sizes (the factor ``q`` is the ratio of the fine and coarse shapes).

    Args:
        assumed: the task's assumed linear inverse problem.
        channels, layers, kernel_size: the network.
    """

    def __init__(self, assumed: LinearInverseProblem, channels: int = 64, layers: int = 6, kernel_size: int = 5) -> None:
        super().__init__(assumed)
        (H, W), (h, w) = assumed.operator.in_shape, assumed.operator.out_shape
        require(H % h == 0 and W % w == 0 and H // h == W // w, "method", f"the sub-pixel CNN needs fine images an integer multiple q of the coarse ones, got {(H, W)} and {(h, w)}")
        self.net = SubPixelCNN(H // h, channels, layers, kernel_size)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)
