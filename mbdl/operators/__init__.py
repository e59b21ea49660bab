r"""Matrix-free linear forward operators :math:`A` of the model :math:`x = A s + w`.

Every operator gives :math:`A s` (``forward``), :math:`A^H x` (``adjoint``), :math:`A^H A s`
(``gram``), :math:`\|A\|_2^2` (``norm2``) and :math:`(A^H A + \rho I)^{-1}` (``solve``) on any
leading batch shape, real or complex; algorithms (:mod:`mbdl.algorithms`) run on any of them.

* :class:`Matrix`: a dense ``(n, m)`` matrix (the vector tasks' ``H``);
* :class:`Convolution`: 1-D / 2-D convolution by FFT, circular or zero boundary (deblurring, PSFs);
* :class:`MaskedFourier`: orthonormal 2-D FFT then a k-space mask (MRI);
* :class:`BlockCompressiveSensing`: one :math:`\Phi` on every ``B×B`` block of an image;
* :class:`Decimation`, :class:`Diagonal`, and :class:`Composition` (``A @ B``);
* :class:`PerShape`: one model on several image shapes (training crops, whole test images);
* :class:`WaveletSynthesis`: the orthonormal Haar synthesis (ptwt) of zero-padded images.
"""

from mbdl.operators.base import Composition, LinearOperator, PerShape, conjugate_gradient, exact, largest_eigenvalue, members, no_autocast, per_member
from mbdl.operators.dense import BlockCompressiveSensing, Decimation, Diagonal, Matrix
from mbdl.operators.fourier import Convolution, MaskedFourier
from mbdl.operators.wavelet import WaveletSynthesis

__all__ = [
    "BlockCompressiveSensing",
    "Composition",
    "Convolution",
    "Decimation",
    "Diagonal",
    "LinearOperator",
    "MaskedFourier",
    "Matrix",
    "PerShape",
    "WaveletSynthesis",
    "conjugate_gradient",
    "exact",
    "largest_eigenvalue",
    "members",
    "no_autocast",
    "per_member",
]
