r"""Learned convolutional ISTA: LISTA with convolution kernels in place of its dense matrices (van Sloun et al., IUS 2019).

ISTA on :math:`\tfrac12\|x - As\|^2 + \lambda\|s\|_1` for images is :math:`s^{t+1} = \eta_{\mu\lambda}\big(\mu A^H x +
(I - \mu A^H A) s^t\big)`, and LISTA learns the two matrices: :math:`s^{t+1} = \eta_{\theta_t}(W_t x + S_t s^t)`. When
:math:`A = D_q C_h` is a convolution with a PSF :math:`h` on the fine grid followed by a decimation by ``q``
(coarse images), :math:`W` maps a coarse image to the fine grid, shift-invariantly per sub-pixel phase: a sub-pixel
(strided transposed) convolution, ``q²`` coarse kernels whose outputs interleave on the fine grid; :math:`S` acts on
the fine grid, nearly shift-invariantly (the shift-invariant part of :math:`A^H A` is :math:`\bar k = (h \star h)/q^2`,
:func:`shift_invariant_gram`). The layers are

.. math::  s^{t+1} = \eta_{\theta_t}\big(W_t \circledast x + S_t * s^t\big),

with learned sub-pixel kernels :math:`W_t`, fine-grid kernels :math:`S_t` and thresholds :math:`\theta_t`.

Initialisation. Every layer starts as an ISTA iteration on the shift-invariant Gram, LISTA's classical start
(Gregor & LeCun 2010): :math:`W_t = \mu A^H` (:func:`matched_filter_kernels`), :math:`S_t = \delta - \mu\bar k`
(cropped to the kernel size), :math:`\theta_t = \mu\lambda`, with ISTA's step :math:`\mu = 1/\sum\bar k`, the
largest eigenvalue of the shift-invariant Gram (:math:`\bar k \ge 0`, so its transform peaks at zero frequency), so
that the untrained network is ISTA with ``iterations`` steps, no worse on validation than the classical solver with
as many iterations. (A start as the Jacobi-step matched filter :math:`\eta_\theta(A^H x/\bar k[0])`, :math:`S_t = 0`,
outputs blobs of the PSF's width and hundreds of times a bubble's mass: its loss is thousands of times the zero
map's, and training shrinks it to an almost dead network.) The parameters are held in units that make one optimiser
step of a given size change each about as much: :math:`W_t` and :math:`\theta_t` in units of :math:`\mu` (so they
start at the PSF's samples and at :math:`\lambda`), :math:`S_t` in units of one over its number of entries (a step
changes its gain by about the learning rate; a raw 21 × 41 kernel moves its sum by hundreds of times the learning
rate per Adam step, and ten layers of recursion make that diverge). The thresholds are used as
:math:`\max(\theta_t, 0)` (a negative one would turn the soft threshold into a magnitude expansion). :math:`S_t`
convolves by FFT with a zero boundary
(:func:`mbdl.operators.fourier.convolve`). Shapes: ``x`` ``(batch, h, w)``, iterates ``(batch, q h, q w)``.
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


def matched_filter_kernels(operator: LinearOperator, size: Sequence[int]) -> Tensor:
    r"""The sub-pixel kernels of :math:`A^H` for :math:`A = D_q C_h`, ``(q_z q_x, 1, k_z, k_x)`` (odd ``size`` in
    coarse pixels), float64: fine pixel :math:`i = c q + \phi` of :math:`A^H x` is
    :math:`\sum_d h[(c + d) q + o - i]\, x_{c + d}`, so phase :math:`\phi`'s kernel is :math:`h[d q + o - \phi]` (zero outside
    the PSF's support), with :math:`o` the decimation's offset. Applied by :func:`sub_pixel_convolution`."""
    from mbdl.operators import Composition

    h, (qz, qx) = decimated_convolution(operator)
    offsets = tuple(operator.outer.index[a].start for a in (1, 2)) if isinstance(operator, Composition) else (0, 0)
    centre = [(k - 1) // 2 for k in h.shape]  # the convolution's kernel index of offset 0
    kernels = torch.zeros(qz, qx, *size, dtype=torch.float64)
    dz, dx = (torch.arange(n) - n // 2 for n in size)
    for pz in range(qz):
        for px in range(qx):
            iz, ix = dz * qz + offsets[0] - pz + centre[0], dx * qx + offsets[1] - px + centre[1]
            inside_z, inside_x = (iz >= 0) & (iz < h.shape[0]), (ix >= 0) & (ix < h.shape[1])
            block = h[iz.clamp(0, h.shape[0] - 1)][:, ix.clamp(0, h.shape[1] - 1)]
            kernels[pz, px] = block * inside_z[:, None] * inside_x[None, :]
    return kernels.reshape(qz * qx, 1, *size)


def cropped(kernel: Tensor, size: Sequence[int]) -> Tensor:
    """The centred ``size`` part of an odd-sized ``kernel`` (zero-padded where ``size`` is larger)."""
    out = torch.zeros(tuple(size), dtype=kernel.dtype)
    half = [min(k, n) // 2 for k, n in zip(kernel.shape, size)]
    ck, co = [k // 2 for k in kernel.shape], [n // 2 for n in size]
    out[co[0] - half[0] : co[0] + half[0] + 1, co[1] - half[1] : co[1] + half[1] + 1] = kernel[ck[0] - half[0] : ck[0] + half[0] + 1, ck[1] - half[1] : ck[1] + half[1] + 1]
    return out


def sub_pixel_convolution(x: Tensor, kernels: Tensor, factors: tuple[int, int]) -> Tensor:
    """``(batch, h, w)`` coarse images to ``(batch, q_z h, q_x w)``: one correlation per phase (``kernels``
    ``(q_z q_x, 1, k_z, k_x)``, zero boundary), interleaved on the fine grid."""
    qz, qx = factors
    phases = torch.nn.functional.conv2d(x.unsqueeze(1), kernels.to(x.dtype), padding=(kernels.shape[-2] // 2, kernels.shape[-1] // 2))
    batch, _, h, w = phases.shape
    return phases.reshape(batch, qz, qx, h, w).permute(0, 3, 1, 4, 2).reshape(batch, h * qz, w * qx)


class ConvolutionalISTA(Iterative):
    r"""Learned convolutional ISTA with sub-pixel kernels :math:`W_t`, fine-grid kernels :math:`S_t` and thresholds
    :math:`\theta_t` held as :class:`~mbdl.algorithms.parameters.IterationParameter` (``"per_iteration"``: unfolded;
    ``"shared"``: one set for all layers; ``"fixed"``: ISTA on the shift-invariant Gram, untrained).

    Args:
        operator: the assumed :math:`A`, a decimated 2-D convolution, images ``(H, W)`` to ``(h, w)``.
        iterations: layers ``T``.
        lam: the :math:`\lambda` of the ISTA the layers start as (thresholds :math:`\mu\lambda`).
        kernel_w: odd size ``(kz, kx)`` of each phase's kernel of :math:`W_t`, in coarse pixels (from :math:`\mu A^H`).
        kernel_s: odd size of :math:`S_t`, in fine pixels (from :math:`\delta - \mu\bar k`, cropped).
        mode: how the kernels and thresholds are held.

    Example:
        >>> import torch
        >>> from mbdl.operators import Convolution, Decimation
        >>> A = Decimation((16, 16), 2) @ Convolution(torch.ones(3, 3), (16, 16), "zero")
        >>> net = ConvolutionalISTA(A, iterations=3, lam=0.1, kernel_w=(3, 3), kernel_s=(7, 7))
        >>> net(torch.rand(4, 8, 8)).shape
        torch.Size([4, 16, 16])
    """

    def __init__(
        self,
        operator: LinearOperator,
        iterations: int,
        lam: float,
        kernel_w: Sequence[int] = (7, 17),
        kernel_s: Sequence[int] = (15, 15),
        mode: Mode = "per_iteration",
    ) -> None:
        super().__init__()
        kernel_w, kernel_s = check_kernel_size(kernel_w, "method.kernel_w"), check_kernel_size(kernel_s, "method.kernel_s")
        self.iterations, self.operator = iterations, operator
        self.factors = decimated_convolution(operator)[1]
        gram = shift_invariant_gram(operator)
        dtype = torch.get_default_dtype()
        #: ISTA's step on the shift-invariant Gram, the unit of W_t and theta_t
        self.step = 1.0 / float(gram.sum())
        #: the unit of the kernels S_t: one over their number of entries
        self.s_unit = 1.0 / math.prod(kernel_s)
        s_init = (impulse(kernel_s) - self.step * cropped(gram, kernel_s)) / self.s_unit
        self.W = IterationParameter(matched_filter_kernels(operator, kernel_w).to(dtype), iterations, mode, "method.mode")
        self.S = IterationParameter(s_init.to(dtype), iterations, mode, "method.mode")
        self.theta = IterationParameter(lam, iterations, mode, "method.mode")

    def iterates(self, x: Tensor) -> Iterator[Tensor]:
        """Yield ``s^1, ..., s^T`` for coarse images ``x`` ``(batch, h, w)``, from ``s^0 = 0``."""
        s = None
        for t in range(self.iterations):
            u = sub_pixel_convolution(x, self.step * self.W[t], self.factors)
            if s is not None:
                u = u + convolve(s, self.s_unit * self.S[t])
            s = soft_threshold(u, self.step * self.theta[t].clamp(min=0.0))
            yield s
