r"""Imaging: :math:`x = A(s) + w` for grey images :math:`s \in [0, 1]^{h \times w}` (Wang & Sun 2020; ISTA-Net).

The operator :math:`A` is picked by ``task/operator=`` (:class:`ImagingOperator`):

* ``cs``: block compressive sensing (ISTA-Net): the image zero-padded right/bottom to multiples of 33, one
  :math:`\Phi` ``(m, 1089)`` on every 33×33 block in raster order; :math:`\Phi` drawn (Gaussian, orthonormal
  rows) or loaded from a ``.mat`` file (ISTA-Net's ``phi_0_R_1089.mat``, key ``phi``);
* ``mri``: single-coil k-space :math:`M \odot F s` (orthonormal 2-D DFT, DC at ``[0, 0]``), complex measurements;
  the mask loaded (ISTA-Net's ``mask_R.mat``, key ``mask_matrix``, pseudo-radial) or drawn (pseudo-radial lines,
  or variable-density Cartesian lines); the zero-filled image is ISTA-Net's ``real(ifft2(mask · fft2(x)))``;
* ``deblur``: 2-D convolution with a Gaussian, uniform or horizontal motion kernel (matrix-free, by FFT).

:math:`w` is white Gaussian with std ``noise_std`` (complex for MRI, on the sampled frequencies), or per image
:math:`\sigma_i = \mathrm{rms}(A s_i)\,10^{-\mathrm{SNR}/20}` when ``snr_db`` is set. Training and validation
samples are random crops (flipped) of the training images (scikit-image's bundled images by default, or a
folder), fresh with every draw; the test set is the whole images of a folder (by default three held-out
scikit-image images), zero-padded to one canvas (see :func:`Imaging.data`).

Methods are told a :class:`~mbdl.tasks.inverse_problem.LinearInverseProblem` whose operator is a
:class:`~mbdl.operators.PerShape`: the same :math:`A` on the training crops and on the test canvas.

Metrics (:mod:`mbdl.tasks.images`): PSNR and SSIM (higher is better), NMSE (dB). Reference (not a bound): the
linear MMSE reconstruction from the training set: for ``cs`` the block map :math:`Q = S Y^\top (Y Y^\top)^{-1}`
(ISTA-Net's ``Qinit``), for ``deblur`` the Wiener filter with the training images' power spectrum, for ``mri`` the
zero-filled image.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from mbdl.config import check_choice, check_positive, require
from mbdl.operators import BlockCompressiveSensing, Convolution, LinearOperator, MaskedFourier, PerShape, members
from mbdl.tasks.base import Batch, Metric, Reference, Task
from mbdl.tasks.images import SKIMAGE_TEST, SKIMAGE_TRAINING, canvas, center_crop, folder_images, image_metrics, random_crops, skimage_images
from mbdl.tasks.inverse_problem import LinearInverseProblem

if TYPE_CHECKING:
    from matplotlib.figure import Figure

Shape = tuple[int, int]
#: ISTA-Net's CS ratios (per cent) and the measurements per 33×33 block of its matrices.
ISTANET_MEASUREMENTS = {1: 10, 4: 43, 10: 109, 25: 272, 30: 327, 40: 436, 50: 545}


def load_mat(path: str, key: str, option: str) -> np.ndarray:
    """``key`` of the MATLAB file ``path`` (scipy), refusing a missing file or key by option name."""
    from scipy.io import loadmat

    file = Path(path).expanduser()
    require(file.is_file(), option, f"{str(file)!r} is not a file")
    content = loadmat(file)
    require(key in content, option, f"{str(file)!r} has no key {key!r} (it has {', '.join(k for k in content if not k.startswith('__'))})")
    return np.asarray(content[key], dtype=np.float64)


class ImagingOperator(ABC):
    """How ``task/operator=`` builds :math:`A` on images of shape ``(1, h, w)``, and its linear reference."""

    #: the shape every image must have (the k-space grid of MRI), or ``None``.
    fixed_shape: Shape | None = None
    #: the test canvas is a multiple of this (the CS block).
    multiple: int = 1
    #: what the reference reconstruction is called.
    reference_name: str

    @abstractmethod
    def build(self, shape: Shape) -> LinearOperator:
        """:math:`A` on images ``(1, *shape)``."""

    def noise(self, clean: Tensor, std: Tensor, generator: torch.Generator) -> Tensor:
        """White Gaussian noise of per-sample std ``std`` ``(n,)`` shaped like the measurements ``clean``."""
        return std.view(-1, *[1] * (clean.dim() - 1)) * torch.randn(clean.shape, generator=generator, dtype=clean.dtype)

    def view(self, operator: LinearOperator, x: Tensor) -> Tensor:
        """What a figure shows of the measurements: the back-projection :math:`A^H x`."""
        return operator.adjoint(x)


class CompressiveSensing(ImagingOperator):
    r"""Block compressive sensing with one :math:`\Phi` ``(m, B²)`` per block, ``m = round(ratio % · B²)``.

    Args:
        ratio: measurement ratio in per cent (ISTA-Net: 1, 4, 10, 25, 30, 40, 50).
        phi: a ``.mat`` file holding :math:`\Phi` under ``key`` (ISTA-Net's ``phi_0_<ratio>_1089.mat``), or ``None``:
            drawn Gaussian with orthonormal rows (QR of an ``(B², m)`` Gaussian matrix, seed ``seed``).
        key: the variable of the ``.mat`` file.
        block: ``B`` (33).
        seed: seed of the drawn :math:`\Phi`.
    """

    reference_name = "linear MMSE Q y from training blocks (ISTA-Net's Qinit)"

    def __init__(self, ratio: float = 25, phi: str | None = None, key: str = "phi", block: int = 33, seed: int = 0) -> None:
        require(isinstance(ratio, (int, float)) and 0 < ratio <= 100, "task.operator.ratio", f"must be a per cent in (0, 100], got {ratio!r}")
        check_positive(block, "task.operator.block", integer=True)
        n = block * block
        if phi is None:
            m = ISTANET_MEASUREMENTS.get(ratio) if block == 33 else None
            m = m or max(1, round(ratio / 100 * n))
            gaussian = torch.randn(n, m, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
            self.phi = torch.linalg.qr(gaussian).Q.T.contiguous()
        else:
            matrix = load_mat(phi, key, "task.operator.phi")
            require(matrix.ndim == 2 and matrix.shape[1] == n, "task.operator.phi", f"{phi!r} holds a {matrix.shape} matrix, not (m, {n})")
            self.phi = torch.from_numpy(matrix)  # float64: cast to each input's precision when applied
        self.block = self.multiple = block

    def build(self, shape: Shape) -> LinearOperator:
        return BlockCompressiveSensing(self.phi, (1, *shape), self.block)


def radial_mask(size: Shape, ratio: float, lines: int | None = None) -> Tensor:
    """A pseudo-radial k-space mask: lines through the centre at equispaced angles, their number the smallest that
    samples ``ratio`` per cent of ``size`` (or ``lines``), DC moved to ``[0, 0]`` (no fftshift)."""
    h, w = size

    def draw(count: int) -> Tensor:
        mask = torch.zeros(h, w, dtype=torch.bool)
        radius = torch.linspace(-max(h, w), max(h, w), 4 * max(h, w) + 1)
        for angle in torch.arange(count) * math.pi / count:
            r = torch.round(h // 2 + radius * math.sin(angle)).long()
            c = torch.round(w // 2 + radius * math.cos(angle)).long()
            inside = (r >= 0) & (r < h) & (c >= 0) & (c < w)
            mask[r[inside], c[inside]] = True
        return mask

    if lines is None:
        lines = 1
        while draw(lines).float().mean() < ratio / 100 and lines < 4 * max(h, w):
            lines += 1
    return torch.fft.ifftshift(draw(lines).float())


def cartesian_mask(size: Shape, ratio: float, generator: torch.Generator, center: float = 0.08) -> Tensor:
    """Variable-density Cartesian sampling: whole phase-encoding rows, the central ``center`` fraction always, the
    others drawn with a density falling off as ``1/(1 + |k|)`` until ``ratio`` per cent are sampled; DC at ``[0, 0]``."""
    h, w = size
    k = (torch.arange(h) - h // 2).abs().double()
    keep = k <= center * h / 2
    wanted = max(round(ratio / 100 * h), int(keep.sum()))
    weights = torch.where(keep, 0.0, 1.0 / (1.0 + k))
    extra = torch.multinomial(weights, wanted - int(keep.sum()), replacement=False, generator=generator) if wanted > keep.sum() else torch.empty(0, dtype=torch.long)
    keep[extra] = True
    return torch.fft.ifftshift(keep[:, None].expand(h, w).float())


class MRI(ImagingOperator):
    r"""Single-coil MRI :math:`x = M \odot F s + w`, real images (:class:`~mbdl.operators.MaskedFourier` with ``real=True``).

    Args:
        ratio: sampled fraction of k-space, per cent (the acceleration is 100/ratio).
        mask: a ``.mat`` file holding the mask under ``key`` (ISTA-Net's ``mask_<ratio>.mat``, DC at ``[0, 0]``), or
            ``None``: drawn by ``pattern``.
        key: the variable of the ``.mat`` file.
        pattern: ``radial`` (pseudo-radial lines) or ``cartesian`` (variable-density rows), for a drawn mask.
        size: the k-space grid of a drawn mask, ``(h, w)`` or one side.
        seed: seed of a drawn Cartesian mask.

    Every image has the grid's shape: larger test images are centre-cropped to it, smaller ones zero-padded.
    """

    reference_name = "zero-filled A^H x"

    def __init__(self, ratio: float = 20, mask: str | None = None, key: str = "mask_matrix", pattern: str = "radial", size: int | list[int] = 256, seed: int = 0) -> None:
        require(isinstance(ratio, (int, float)) and 0 < ratio <= 100, "task.operator.ratio", f"must be a per cent in (0, 100], got {ratio!r}")
        check_choice(pattern, "task.operator.pattern", ("radial", "cartesian"))
        if mask is None:
            grid = (size, size) if isinstance(size, int) else tuple(size)
            require(len(grid) == 2 and all(isinstance(n, int) and n >= 8 for n in grid), "task.operator.size", f"must be one or two integers >= 8, got {size!r}")
            generator = torch.Generator().manual_seed(seed)
            self.mask = radial_mask(grid, ratio) if pattern == "radial" else cartesian_mask(grid, ratio, generator)
        else:
            matrix = load_mat(mask, key, "task.operator.mask")
            require(matrix.ndim == 2, "task.operator.mask", f"{mask!r} holds a {matrix.shape} array, not a 2-D mask")
            self.mask = torch.from_numpy(matrix).float()
        self.fixed_shape = tuple(self.mask.shape)

    def build(self, shape: Shape) -> LinearOperator:
        return MaskedFourier(self.mask[None], real=True)

    def noise(self, clean: Tensor, std: Tensor, generator: torch.Generator) -> Tensor:
        """Circular complex Gaussian noise of per-sample std ``std`` (``std²/2`` per part) on the sampled frequencies."""
        real = torch.randn(clean.shape, generator=generator, dtype=clean.real.dtype)
        imaginary = torch.randn(clean.shape, generator=generator, dtype=clean.real.dtype)
        return std.view(-1, 1, 1, 1) / math.sqrt(2.0) * torch.complex(real, imaginary) * (self.mask != 0)


KERNELS = ("gaussian", "uniform", "motion")


def blur_kernel(kind: str, sigma_px: float, size: int | None) -> Tensor:
    """A normalised blur kernel: ``gaussian`` (std ``sigma_px``, side ``size`` or ``2⌈3σ⌉+1``), ``uniform`` (``size × size``)
    or ``motion`` (a horizontal line of ``size`` pixels)."""
    check_choice(kind, "task.operator.kernel", KERNELS)
    if kind == "gaussian":
        check_positive(sigma_px, "task.operator.sigma_px")
        side = size or 2 * math.ceil(3 * sigma_px) + 1
        offset = torch.arange(side, dtype=torch.float64) - (side - 1) / 2
        profile = torch.exp(-0.5 * (offset / sigma_px) ** 2)
        kernel = profile[:, None] * profile[None, :]
    else:
        side = size or 9
        kernel = torch.ones(side, side, dtype=torch.float64) if kind == "uniform" else torch.ones(1, side, dtype=torch.float64)
    check_positive(side, "task.operator.size", integer=True)
    return (kernel / kernel.sum()).float()


class Deblur(ImagingOperator):
    """Deblurring: 2-D convolution with a blur kernel (:class:`~mbdl.operators.Convolution`, matrix-free, by FFT).

    Args:
        kernel: ``gaussian``, ``uniform`` or ``motion``.
        sigma_px: std of the Gaussian kernel in pixels.
        size: kernel side (``None``: ``2⌈3σ⌉+1`` for a Gaussian, 9 otherwise).
        boundary: ``circular`` (periodic images; the Wiener filter is exact) or ``zero``.
    """

    reference_name = "Wiener filter with the training images' power spectrum"

    def __init__(self, kernel: str = "gaussian", sigma_px: float = 1.6, size: int | None = None, boundary: str = "circular") -> None:
        check_choice(boundary, "task.operator.boundary", ("circular", "zero"))
        self.kernel, self.boundary = blur_kernel(kernel, sigma_px, size), boundary

    def build(self, shape: Shape) -> LinearOperator:
        return Convolution(self.kernel, (1, *shape), self.boundary)

    def view(self, operator: LinearOperator, x: Tensor) -> Tensor:
        """The blurred image itself."""
        return x


def block_lmmse(images: list[Tensor], phi: Tensor, block: int, count: int, generator: torch.Generator) -> Tensor:
    r"""ISTA-Net's ``Qinit``: :math:`Q = S Y^\top (Y Y^\top)^{-1}` ``(B², m)`` from ``count`` random training blocks
    :math:`S` (columns) and their measurements :math:`Y = \Phi S`, in float64."""
    S = random_crops(images, count, (block, block), generator).reshape(count, -1).double().T
    Y = phi.double() @ S
    return torch.linalg.solve(Y @ Y.T, Y @ S.T).T.float()


def power_spectrum(images: list[Tensor], shape: Shape, count: int, generator: torch.Generator) -> tuple[Tensor, float]:
    r"""The mean periodogram :math:`P = \mathbb E|F(s - \mu)|^2` (orthonormal DFT) of ``count`` random training crops of
    ``shape``, and the mean pixel value :math:`\mu`."""
    crops = random_crops(images, count, shape, generator).double()
    mean = crops.mean().item()
    return torch.fft.fft2(crops - mean, norm="ortho").abs().square().mean(dim=0), mean


class Imaging(Task):
    """Grey-image reconstruction from ``x = A(s) + w`` (see the module docstring).

    Args:
        operator: the forward model (``task/operator=cs|mri|deblur``): a :class:`ImagingOperator`.
        train_dir: folder of training images (``None``: :data:`~mbdl.tasks.images.SKIMAGE_TRAINING`).
        test_dir: folder of test images (``None``: :data:`~mbdl.tasks.images.SKIMAGE_TEST`).
        crop: side of the training/validation crops (``None``: the operator's fixed shape, e.g. MRI's grid).
        flips: random left-right, up-down flips (and transposes) of the crops.
        test_size: centre-crop every test image to at most this side (``None``: whole images; for quick runs).
        noise_std: std of ``w`` on the ``[0, 1]`` scale (used when ``snr_db`` is null).
        snr_db: per-image SNR in dB, ``20 log10(rms(A s)/σ)`` (``None``: ``noise_std``).
        reference_samples: training blocks (``cs``) or crops (``deblur``) the linear reference is fitted on.
        model_seed: seed of the reference's training draws.
        n_train: training crops per epoch (``regime.fresh_data=true``: new ones every batch).
        n_val: validation crops (from the training images, their own seed).
        n_test: use the first ``n_test`` test images (``None``: all).
    """

    metrics = {
        "psnr_db": Metric("PSNR", "dB", higher_is_better=True),
        "ssim": Metric("SSIM", higher_is_better=True),
        "nmse_db": Metric("NMSE", "dB"),
    }
    primary_metric = "psnr_db"

    def __init__(
        self,
        operator: ImagingOperator,
        train_dir: str | None = None,
        test_dir: str | None = None,
        crop: int | None = 33,
        flips: bool = True,
        test_size: int | None = None,
        noise_std: float = 0.0,
        snr_db: float | None = None,
        reference_samples: int = 20000,
        model_seed: int = 0,
        n_train: int = 6400,
        n_val: int = 256,
        n_test: int | None = None,
    ) -> None:
        require(isinstance(operator, ImagingOperator), "task.operator", f"must be a cs, mri or deblur operator (task/operator=cs|mri|deblur), got {operator!r}")
        check_positive(noise_std, "task.noise_std", strict=False)
        require(snr_db is None or isinstance(snr_db, (int, float)), "task.snr_db", f"must be a number or null, got {snr_db!r}")
        check_positive(reference_samples, "task.reference_samples", integer=True)
        if test_size is not None:
            check_positive(test_size, "task.test_size", integer=True)
        self.spec, self.flips = operator, flips
        self.noise_std, self.snr_db = noise_std, snr_db
        train = folder_images(train_dir, "task.train_dir")[0] if train_dir else skimage_images(SKIMAGE_TRAINING)
        test, self.test_names = folder_images(test_dir, "task.test_dir") if test_dir else (skimage_images(SKIMAGE_TEST), list(SKIMAGE_TEST))
        if n_test is not None:
            check_positive(n_test, "task.n_test", integer=True)
            require(n_test <= len(test), "task.n_test", f"the test folder has {len(test)} images, got {n_test}")
            test, self.test_names = test[:n_test], self.test_names[:n_test]
        if test_size is not None:
            test = [center_crop(image, test_size) for image in test]
        fixed = operator.fixed_shape
        if fixed is not None:
            require(crop is None or (crop, crop) == fixed, "task.crop", f"the operator works on {fixed} images only; use task.crop=null")
            test = [center_crop(image, max(fixed)) for image in test]
            self.crop_shape = fixed
        else:
            check_positive(crop, "task.crop", integer=True)
            self.crop_shape = (crop, crop)
        self.train_images = [torch.from_numpy(image).float() for image in train]
        test_images = [torch.from_numpy(image).float() for image in test]
        height, width = (max(image.shape[i] for image in test_images) for i in (0, 1))
        self.canvas_shape = fixed or tuple(operator.multiple * math.ceil(n / operator.multiple) for n in (height, width))
        self.test_s, self.test_sizes = canvas(test_images, self.canvas_shape)
        self.set_sizes(n_train, n_val, len(test_images))
        self.model_seed, self.reference_samples = model_seed, reference_samples
        shapes = list(dict.fromkeys([self.crop_shape, self.canvas_shape]))

        def on_every_shape() -> LinearOperator:
            built = [operator.build(shape) for shape in shapes]
            return built[0] if len(built) == 1 else PerShape(built)

        #: the true operator, which measures the data (on the CPU)
        self.operator = on_every_shape()
        #: the methods are told the true operator (their own copy, which moves with them to a device) on the crops and
        #: on the test canvas, and the noise std when it is fixed.
        self.assumed = LinearInverseProblem(on_every_shape(), None if snr_db is not None else float(noise_std))
        self._reference: Callable[[Tensor], Tensor] | None = None

    def measure(self, s: Tensor, generator: torch.Generator) -> Tensor:
        """``x = A s + w`` for images ``s`` ``(n, 1, h, w)``."""
        clean = self.operator(s)
        if self.snr_db is None:
            if self.noise_std == 0:
                return clean
            std = torch.full((len(s),), float(self.noise_std))
        else:
            std = clean.abs().square().flatten(1).mean(dim=1).sqrt() * 10.0 ** (-self.snr_db / 20.0)
        return clean + self.spec.noise(clean, std, generator)

    def simulate(self, n: int, generator: torch.Generator) -> Batch:
        """``n`` random training crops ``s`` ``(n, 1, *crop)`` and their measurements ``x``."""
        s = random_crops(self.train_images, n, self.crop_shape, generator, self.flips)
        return {"x": self.measure(s, generator), "s": s, "size": torch.tensor([self.crop_shape] * n)}

    def data(self, split: str, n: int, generator: torch.Generator) -> Batch:
        """Training and validation crops from :meth:`simulate`; the test split is the test images on one canvas
        (zero-padded right and bottom to the largest, a multiple of the CS block; MRI: the k-space grid), measured
        with noise from ``generator``; ``size`` holds each image's own ``(h, w)``, the part the metrics see."""
        if split != "test":
            return self.simulate(n, generator)
        return {"x": self.measure(self.test_s, generator), "s": self.test_s, "size": self.test_sizes}

    def evaluate(self, estimate: Tensor, data: Batch) -> dict[str, float]:
        """PSNR, SSIM and NMSE per image (its own size, estimate clipped to [0, 1]), averaged (:func:`image_metrics`)."""
        return image_metrics(estimate, data["s"], data["size"])

    def reference(self) -> Callable[[Tensor], Tensor]:
        """The linear reconstruction :math:`x \\mapsto \\hat s` fitted on the training images (computed once)."""
        if self._reference is None:
            generator = torch.Generator().manual_seed(self.model_seed)
            spec = self.spec
            if isinstance(spec, CompressiveSensing):
                Q = block_lmmse(self.train_images, spec.phi, spec.block, self.reference_samples, generator)
                canvas_operator = members(self.operator)[-1]
                self._reference = lambda x: canvas_operator.image(x @ Q.T)
            elif isinstance(spec, Deblur):
                self._reference = self._wiener(generator)
            else:
                self._reference = self.operator.adjoint
        return self._reference

    def _wiener(self, generator: torch.Generator) -> Callable[[Tensor], Tensor]:
        r"""The LMMSE estimate under a stationary Gaussian prior with the training power spectrum :math:`P` and mean
        :math:`\mu`: :math:`\hat s = \mu + F^H\big[\bar{\hat h} P / (|\hat h|^2 P + \sigma^2)\big] F (x - A\mu)`
        (circular blur), or :math:`\mu + (A^H A + \sigma^2 C^{-1})^{-1} A^H (x - A\mu)` by conjugate gradient (zero boundary)."""
        from mbdl.operators import conjugate_gradient

        count = max(1, min(self.reference_samples, 200))
        P, mean = power_spectrum(self.train_images, self.canvas_shape, count, generator)
        P = P.clamp_min(1e-12 * P.max())
        noise_var = (self.noise_std if self.snr_db is None else 0.0) ** 2
        operator = members(self.operator)[-1]
        if self.spec.boundary == "circular":
            transfer = operator.transfer.to(torch.complex128)
            gain = transfer.conj() * P / (transfer.abs().square() * P + max(noise_var, 1e-12))

            def wiener(x: Tensor) -> Tensor:
                residual = x.double() - operator(torch.full_like(x, mean).double())
                return (mean + torch.fft.ifft2(gain * torch.fft.fft2(residual, norm="ortho"), norm="ortho").real).float()

            return wiener

        def wiener_cg(x: Tensor) -> Tensor:
            residual = operator.adjoint(x.double() - operator(torch.full_like(x, mean).double()))
            precision = lambda v: torch.fft.ifft2(torch.fft.fft2(v, norm="ortho") / P, norm="ortho").real  # noqa: E731
            return (mean + conjugate_gradient(lambda v: operator.gram(v) + noise_var * precision(v), residual, 3, max_iter=500)).float()

        return wiener_cg

    def references(self, data: Batch) -> dict[str, Reference]:
        """The linear reference's PSNR, SSIM and NMSE on ``data`` (a reference, not a bound)."""
        values = image_metrics(self.reference()(data["x"]), data["s"], data["size"])
        return {name: Reference(value, self.spec.reference_name, is_bound=False) for name, value in values.items()}

    def unsupervised_loss(self, estimate: Tensor, x: Tensor) -> Tensor:
        """Measurement consistency :math:`\\|x - A\\hat s\\|^2 / n`."""
        return self.assumed.unsupervised_loss(estimate, x, "consistency")

    def figure(self, estimate: Tensor, data: Batch) -> Figure:
        """Up to three test images: truth, what was measured (the blurred image, or the back-projection), reconstruction, with PSNR."""
        from matplotlib.figure import Figure

        count = min(3, len(estimate))
        view = self.spec.view(self.operator, data["x"][:count])
        figure = Figure(figsize=(9, 3 * count), layout="constrained")
        axes = np.atleast_2d(figure.subplots(count, 3))
        for i in range(count):
            h, w = data["size"][i].tolist()
            size = data["size"][i : i + 1]
            truth = data["s"][i : i + 1]
            seen = "measurement x" if isinstance(self.spec, Deblur) else "back-projection A^H x"
            panels = [(f"{self.test_names[i]}: truth", truth), (seen, view[i : i + 1].real.float()), ("reconstruction", estimate[i : i + 1].float())]
            for ax, (title, image) in zip(axes[i], panels):
                label = title if image is truth else f"{title}: {image_metrics(image, truth, size)['psnr_db']:.2f} dB"
                ax.imshow(image[0, 0, :h, :w].clamp(0, 1).cpu().numpy(), cmap="gray", vmin=0, vmax=1)
                ax.set_title(label, fontsize=9)
                ax.set_axis_off()
        return figure
