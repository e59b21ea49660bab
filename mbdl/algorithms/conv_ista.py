r"""Learned convolutional ISTA: LISTA with convolution kernels in place of its dense matrices (van Sloun et al., IUS 2019).

ISTA on :math:`\tfrac12\|x - As\|^2 + \lambda\|s\|_1` for images is :math:`s^{t+1} = \eta_{\mu\lambda}\big(\mu A^H x +
(I - \mu A^H A) s^t\big)`. When :math:`A` is a convolution followed by a decimation by ``q`` (a PSF and a coarse
pixel grid), :math:`A^H A` is shift-invariant only modulo ``q``; its shift-invariant part is the kernel
:math:`\bar k = (h \star h)/q^2` (:func:`shift_invariant_gram`). LISTA's layers :math:`\eta_\theta(Wx + Ss)` become

.. math::  s^{t+1} = \eta_{\theta_t}\big(W_t * b + S_t * s^t\big), \qquad b = A^H x / \bar k[0],

learned kernels :math:`W_t`, :math:`S_t` and thresholds :math:`\theta_t` per layer, on the matched filter :math:`b`
(the back-projection normalised so that an isolated bubble of amplitude :math:`a` peaks at about :math:`a`).

Initialisation. With a wide PSF on a fine grid :math:`A^H A` is very ill-conditioned: its largest eigenvalue (zero
frequency) is hundreds of times a fine pixel's own :math:`\bar k[0]`, so ISTA's stable step :math:`1/\|A\|^2` moves a
bubble's amplitude by a fraction of a per cent per iteration (a network started there outputs nearly zero and,
trained, stays there), while the Jacobi step :math:`1/\bar k[0]` makes :math:`I - A^H A/\bar k[0]` diverge. So every
layer starts as ISTA's *first* iteration with the Jacobi step, the soft-thresholded matched filter
:math:`\eta_\theta(b)` (a classical ULM detector): :math:`W_t = \delta`, :math:`S_t = 0`, and training learns the
sharpening (:math:`W_t`) and the explaining-away between layers (:math:`S_t`). Each kernel is held in units of one over
its number of entries, so that an optimiser step of a given size changes any kernel's gain by about that much
(with a raw 21 × 41 kernel one Adam step moves its sum by hundreds of times the learning rate, and ten layers of
recursion make that diverge). The thresholds are used as :math:`\max(\theta_t, 0)` (a negative one would turn the
soft threshold into a magnitude expansion). Started instead from ISTA's step :math:`1/\|A\|^2`, or from the matched
filter scaled to fit an isolated bubble in least squares, the network's maps are nearly zero and training does not
leave them in tens of epochs (measured; docs/ultrasound.md). Convolutions are by FFT with a zero
boundary (:func:`mbdl.operators.fourier.convolve`). Shapes: ``x`` ``(batch, *A.out_shape)``, iterates
``(batch, H, W)`` for ``A.in_shape = (H, W)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor

from mbdl.algorithms.ista import soft_threshold
from mbdl.algorithms.iterative import Iterative
from mbdl.algorithms.parameters import IterationParameter, Mode
from mbdl.config import ConfigError, require
from mbdl.operators import LinearOperator
from mbdl.operators.fourier import convolve, transfer_function


def check_kernel_size(size: Sequence[int], option: str) -> tuple[int, int]:
    """A kernel size ``[kz, kx]`` of two odd positive integers (so that the kernel has a centre)."""
    ok = isinstance(size, (list, tuple)) and len(size) == 2 and all(isinstance(k, int) and k > 0 and k % 2 for k in size)
    require(ok, option, f"must be two odd positive integers [axial, lateral], got {size!r}")
    return tuple(size)


def impulse(size: Sequence[int], value: float = 1.0) -> Tensor:
    """:math:`\\delta` (times ``value``) on an odd-sized kernel grid, float64."""
    kernel = torch.zeros(tuple(size), dtype=torch.float64)
    kernel[size[0] // 2, size[1] // 2] = value
    return kernel


def decimated_convolution(operator: LinearOperator) -> tuple[Tensor, tuple[int, int]]:
    """The kernel :math:`h` and the factors :math:`q` of a 2-D convolution (:math:`q = 1`) or a decimation of one
    (``Decimation @ Convolution``), the operators whose :math:`A^H A` is shift-invariant modulo :math:`q`."""
    from mbdl.operators import Composition, Convolution, Decimation

    if isinstance(operator, Convolution):
        convolution, factors = operator, (1, 1)
    elif isinstance(operator, Composition) and isinstance(operator.outer, Decimation) and isinstance(operator.inner, Convolution):
        convolution = operator.inner
        factors = tuple(n // m for n, m in zip(operator.in_shape, operator.out_shape))
    else:
        raise ConfigError(f"method: a convolutional ISTA needs a 2-D convolution, or a decimation of one, got {type(operator).__name__}")
    require(convolution.kernel.dim() == 2 and len(operator.in_shape) == 2, "method", f"a convolutional ISTA needs images (H, W), got {operator.in_shape}")
    return convolution.kernel.double().cpu(), factors


def shift_invariant_gram(operator: LinearOperator) -> Tensor:
    r"""The shift-invariant part of :math:`A^H A` for :math:`A = D_q C_h`: :math:`\bar k = (h \star h) / (q_z q_x)`, the
    autocorrelation of the kernel over the decimation cell's :math:`q_z q_x` phases, ``(2k_z - 1, 2k_x - 1)``, float64
    (for :math:`q = 1` the kernel of :math:`C_h^H C_h` away from the border)."""
    h, (qz, qx) = decimated_convolution(operator)
    grid = tuple(2 * k - 1 for k in h.shape)
    correlation = torch.fft.ifftn(transfer_function(h, grid).abs().square()).real
    return torch.roll(correlation, shifts=[n // 2 for n in grid], dims=(0, 1)) / (qz * qx)


class ConvolutionalISTA(Iterative):
    r"""Learned convolutional ISTA with kernels :math:`W_t`, :math:`S_t` and thresholds :math:`\theta_t` held as
    :class:`~mbdl.algorithms.parameters.IterationParameter` (``"per_iteration"``: unfolded; ``"shared"``: one set for
    all layers; ``"fixed"``: the soft-thresholded matched filter, untrained).

    Args:
        operator: the assumed :math:`A`, a (decimated) 2-D convolution, images ``(H, W)`` to ``(h, w)``.
        iterations: layers ``T``.
        threshold: the initial :math:`\theta` (in the units of :math:`s`).
        kernel_w: odd size ``(kz, kx)`` of :math:`W_t` (from :math:`\delta`).
        kernel_s: odd size of :math:`S_t` (from 0).
        mode: how the kernels and thresholds are held.

    Example:
        >>> import torch
        >>> from mbdl.operators import Convolution, Decimation
        >>> A = Decimation((16, 16), 2) @ Convolution(torch.ones(3, 3), (16, 16), "zero")
        >>> net = ConvolutionalISTA(A, iterations=3, threshold=0.1, kernel_w=(3, 3), kernel_s=(7, 7))
        >>> net(torch.rand(4, 8, 8)).shape
        torch.Size([4, 16, 16])
    """

    def __init__(
        self,
        operator: LinearOperator,
        iterations: int,
        threshold: float,
        kernel_w: Sequence[int] = (5, 5),
        kernel_s: Sequence[int] = (15, 15),
        mode: Mode = "per_iteration",
    ) -> None:
        super().__init__()
        kernel_w, kernel_s = check_kernel_size(kernel_w, "method.kernel_w"), check_kernel_size(kernel_s, "method.kernel_s")
        gram = shift_invariant_gram(operator)
        self.iterations, self.operator = iterations, operator
        #: the matched filter's normaliser, a fine pixel's own Gram entry
        self.k0 = gram[gram.shape[0] // 2, gram.shape[1] // 2].item()
        dtype = torch.get_default_dtype()
        #: the units of the kernels W_t, S_t: one over their number of entries
        self.w_unit, self.s_unit = 1.0 / math.prod(kernel_w), 1.0 / math.prod(kernel_s)
        self.W = IterationParameter(impulse(kernel_w, 1.0 / self.w_unit).to(dtype), iterations, mode, "method.mode")
        self.S = IterationParameter(torch.zeros(kernel_s, dtype=dtype), iterations, mode, "method.mode")
        self.theta = IterationParameter(threshold, iterations, mode, "method.mode")

    def iterates(self, x: Tensor) -> Iterator[Tensor]:
        """Yield ``s^1, ..., s^T`` for coarse images ``x`` ``(batch, h, w)``, from ``s^0 = 0``."""
        b = self.operator.adjoint(x) / self.k0
        s = torch.zeros_like(b)
        for t in range(self.iterations):
            s = soft_threshold(convolve(b, self.w_unit * self.W[t]) + convolve(s, self.s_unit * self.S[t]), self.theta[t].clamp(min=0.0))
            yield s
