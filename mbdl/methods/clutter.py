"""The clutter-suppression spectrum: robust PCA (:mod:`mbdl.algorithms.rpca`) from hand-set to learned, and a black box.

* model-based: the SVD filter (top singular components removed) or RPCA by ISTA / FISTA with hand-set
  :math:`\\lambda_L, \\lambda_S` (:class:`RobustPCASolver`, ``mode="fixed"``);
* learned optimizer: the same iteration with step and thresholds shared by all iterations and trained (``mode="shared"``);
* unfolded: CORONA (:class:`CORONA`): per-layer learned convolutions, SVT and soft threshold;
* DNN-aided: RPCA with a CNN-corrected soft threshold as the sparse proximal step (:class:`NeuralRobustPCA`);
* black box: CORONA's Res3dC, :math:`\\hat S = f(D)`, :math:`\\hat L = D - \\hat S` (:class:`Res3dCSolver`).

Every estimate is :math:`(\\hat L, \\hat S)` stacked, ``(batch, 2, T, h, w)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import torch
from torch import Tensor

from mbdl.algorithms.parameters import IterationModules, Mode
from mbdl.algorithms.rpca import RobustPCA, SVDFilter
from mbdl.config import check_choice, check_positive, require
from mbdl.methods.base import IterativeMethod, Method
from mbdl.nets.ultrasound import ConvolutionalMixing, Res3dC, ThresholdedResidualCNN
from mbdl.tasks.clutter import LowRankPlusSparse

ALGORITHMS = ("svd", "ista", "fista")
ORDERS = ("jacobi", "gauss_seidel")


def check_rpca(lam_low_rank: float, lam_sparse: float, step: float, iterations: int) -> None:
    check_positive(iterations, "method.iterations", integer=True)
    check_positive(lam_low_rank, "method.lam_low_rank", strict=False)
    check_positive(lam_sparse, "method.lam_sparse", strict=False)
    check_positive(step, "method.step")


class RobustPCASolver(IterativeMethod):
    """The SVD filter, or robust PCA by ISTA / FISTA; ``mode`` places the iteration on the spectrum.

    Args:
        assumed: the task's assumed model (the frame shape).
        algorithm: ``svd`` (the top ``rank`` singular components are clutter), ``ista`` or ``fista``.
        iterations: iterations of ``ista`` / ``fista``.
        mode: ``"fixed"`` (model-based), ``"shared"`` (learned optimizer) or ``"per_iteration"``.
        lam_low_rank, lam_sparse: :math:`\\lambda_L`, :math:`\\lambda_S` (initial values when trained).
        step: :math:`\\mu` (``<= 1/2``).
        rank: ``svd``: singular components removed.
    """

    def __init__(
        self,
        assumed: LowRankPlusSparse,
        algorithm: str = "fista",
        iterations: int = 100,
        mode: Mode = "fixed",
        lam_low_rank: float = 3.0,
        lam_sparse: float = 0.1,
        step: float = 0.5,
        rank: int = 1,
    ) -> None:
        super().__init__(assumed)
        check_choice(algorithm, "method.algorithm", ALGORITHMS)
        check_rpca(lam_low_rank, lam_sparse, step, iterations)
        if algorithm == "svd":
            self.algorithm = SVDFilter(rank)
        else:
            self.algorithm = RobustPCA(iterations, lam_low_rank, lam_sparse, step, mode, accelerate=algorithm == "fista")


class CORONA(IterativeMethod):
    """CORONA (Solomon et al., IEEE TMI 2019): robust PCA unfolded into layers with learned complex convolutions in place
    of the gradient step (:class:`~mbdl.nets.ultrasound.ConvolutionalMixing`), SVT and soft threshold with per-layer
    thresholds; every layer starts as the ISTA step.

    Args:
        assumed: the task's assumed model.
        iterations: layers.
        kernel_sizes: odd spatial kernel size of each layer's convolutions (the last one repeats for the deeper
            layers; CORONA: 5 for the first three layers, then 3).
        lam_low_rank, lam_sparse: the ISTA the thresholds start from (:math:`\\theta = \\mu\\lambda`).
        step: :math:`\\mu` of that ISTA.
        order: ``jacobi`` (CORONA's layer: both updates read the previous :math:`(L, S)`) or ``gauss_seidel`` (the
            sparse update reads the new :math:`L`; with ``step`` 1 each layer starts as alternating minimisation, so
            one layer is already SVT, then the soft threshold of the remainder: docs/ultrasound.md).
    """

    def __init__(
        self,
        assumed: LowRankPlusSparse,
        iterations: int = 10,
        kernel_sizes: Sequence[int] = (5, 5, 5, 3),
        lam_low_rank: float = 3.0,
        lam_sparse: float = 0.1,
        step: float = 0.5,
        order: str = "jacobi",
    ) -> None:
        super().__init__(assumed)
        check_rpca(lam_low_rank, lam_sparse, step, iterations)
        check_choice(order, "method.order", ORDERS)
        require(isinstance(kernel_sizes, Sequence) and len(kernel_sizes) > 0, "method.kernel_sizes", f"must be a list of odd sizes, got {kernel_sizes!r}")
        sizes = iter([kernel_sizes[min(t, len(kernel_sizes) - 1)] for t in range(iterations)])
        mixing = IterationModules(lambda: ConvolutionalMixing(next(sizes), step), iterations, tied=False)  # layer t gets the t-th size
        self.algorithm = RobustPCA(iterations, lam_low_rank, lam_sparse, step, "per_iteration", mixing=mixing, gauss_seidel=order == "gauss_seidel")


class NeuralRobustPCA(IterativeMethod):
    """DNN-aided robust PCA: the proximal-gradient iteration with learned steps and SVT thresholds and a CNN-corrected
    soft threshold (:class:`~mbdl.nets.ultrasound.ThresholdedResidualCNN`) as the sparse proximal step.

    Args:
        assumed: the task's assumed model.
        iterations: iterations (layers).
        tied: one prox network, step and threshold for every iteration.
        lam_low_rank, lam_sparse: initial :math:`\\lambda_L`, :math:`\\lambda_S`.
        step: initial :math:`\\mu`.
        channels, layers, kernel_size: the prox network.
    """

    def __init__(
        self,
        assumed: LowRankPlusSparse,
        iterations: int = 10,
        tied: bool = False,
        lam_low_rank: float = 3.0,
        lam_sparse: float = 0.1,
        step: float = 0.5,
        channels: int = 4,
        layers: int = 3,
        kernel_size: int = 3,
    ) -> None:
        super().__init__(assumed)
        check_rpca(lam_low_rank, lam_sparse, step, iterations)
        require(isinstance(tied, bool), "method.tied", f"must be true or false, got {tied!r}")
        ThresholdedResidualCNN(step * lam_sparse, channels, layers, kernel_size)  # validates the options once, before building T copies
        prox = IterationModules(partial(ThresholdedResidualCNN, step * lam_sparse, channels, layers, kernel_size), iterations, tied)
        self.algorithm = RobustPCA(iterations, lam_low_rank, lam_sparse, step, "shared" if tied else "per_iteration", sparse_prox=prox)


class Res3dCSolver(Method):
    """Black box: CORONA's Res3dC (:class:`~mbdl.nets.ultrasound.Res3dC`) maps :math:`D` to :math:`\\hat S`; :math:`\\hat L = D - \\hat S`.

    Args:
        assumed: the task's assumed model (unused but for the shapes).
        channels: ``(c₁, c₂)``.
        first_kernel: odd size of the first 3-D kernel.
    """

    def __init__(self, assumed: LowRankPlusSparse, channels: Sequence[int] = (16, 8), first_kernel: int = 5) -> None:
        super().__init__(assumed)
        self.net = Res3dC(tuple(channels), first_kernel)

    def forward(self, x: Tensor) -> Tensor:
        S = self.net(x)
        return torch.stack([x - S, S], dim=1)
