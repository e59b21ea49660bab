r"""Grey images for the imaging task: folders, scikit-image's bundled images, random crops, canvases, and the metrics.

Conventions (ISTA-Net's, so that published numbers compare): an image is its luma :math:`Y` (BT.601 full range,
:math:`Y = 0.299R + 0.587G + 0.114B` rounded to 8 bits; grey images as they are) divided by 255. PSNR has
peak 255 on the 0-255 scale after clipping the estimate to :math:`[0, 1]`, on the whole image; SSIM is
scikit-image's ``structural_similarity`` with its defaults and ``data_range=255``; both are averaged per image.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from mbdl.config import ConfigError, require

#: scikit-image's bundled grey-convertible images that load offline, for training by default. Left out: ``camera``
#: (Set11's cameraman), :data:`SKIMAGE_TEST` (the default test set), ``cat`` (= ``chelsea``), binary and synthetic ones.
SKIMAGE_TRAINING = (
    "astronaut", "brick", "cell", "chelsea", "clock", "coffee", "grass", "gravel", "hubble_deep_field",
    "immunohistochemistry", "page", "retina", "rocket", "text",
)  # fmt: skip
#: the default test set: scikit-image images held out of training.
SKIMAGE_TEST = ("camera", "coins", "moon")
#: image file suffixes read from a folder.
SUFFIXES = (".png", ".tif", ".tiff", ".bmp", ".jpg", ".jpeg", ".pgm")


def luma(array: np.ndarray) -> np.ndarray:
    """An 8-bit image (grey ``(h, w)``, RGB or RGBA ``(h, w, 3|4)``) as its BT.601 luma in ``[0, 1]``, float64."""
    if array.dtype == np.bool_ or array.dtype.kind == "f":
        raise ConfigError(f"task: images must be 8-bit, got dtype {array.dtype}")
    if array.ndim == 3:
        rgb = array[..., :3].astype(np.float64)
        array = np.clip(np.round(rgb @ np.array([0.299, 0.587, 0.114])), 0, 255)
    return array.astype(np.float64) / 255.0


def skimage_images(names: Sequence[str]) -> list[np.ndarray]:
    """The luma of scikit-image's bundled images ``names`` (no download)."""
    from skimage import data

    images = []
    for name in names:
        require(hasattr(data, name), "task.images", f"scikit-image has no image {name!r}")
        images.append(luma(getattr(data, name)()))
    return images


def folder_images(folder: str | Path, option: str) -> tuple[list[np.ndarray], list[str]]:
    """The luma of every image file in ``folder`` (sorted by name), and the names."""
    from PIL import Image

    path = Path(folder).expanduser()
    require(path.is_dir(), option, f"{str(path)!r} is not a folder")
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in SUFFIXES)
    require(bool(files), option, f"{str(path)!r} holds no image ({', '.join(SUFFIXES)})")
    images = []
    for file in files:
        with Image.open(file) as image:
            images.append(luma(np.asarray(image if image.mode == "L" else image.convert("RGB"))))
    return images, [f.stem for f in files]


def random_crops(images: Sequence[Tensor], n: int, size: tuple[int, int], generator: torch.Generator, flips: bool = True) -> Tensor:
    """``n`` crops ``(n, 1, h, w)`` of ``size``, each from an image drawn uniformly, at a uniform position, then
    (``flips``) flipped left-right and up-down each with probability 1/2 (and transposed when square). Images
    smaller than ``size`` are reflect-padded first. One draw of all indices, then one gather per image."""
    h, w = size
    pick = torch.randint(len(images), (n,), generator=generator)
    u = torch.rand(n, 2, generator=generator, dtype=torch.float64)
    crops = torch.empty(n, 1, h, w, dtype=images[0].dtype)
    for index, image in enumerate(images):
        chosen = (pick == index).nonzero().squeeze(1)
        if not len(chosen):
            continue
        image = _at_least(image, h, w)
        top = (u[chosen, 0] * (image.shape[0] - h + 1)).long()
        left = (u[chosen, 1] * (image.shape[1] - w + 1)).long()
        rows = top[:, None, None] + torch.arange(h)[None, :, None]
        cols = left[:, None, None] + torch.arange(w)[None, None, :]
        crops[chosen, 0] = image[rows, cols]
    if flips:
        flags = torch.rand(n, 3, generator=generator) < 0.5
        crops = torch.where(flags[:, 0, None, None, None], crops.flip(-1), crops)
        crops = torch.where(flags[:, 1, None, None, None], crops.flip(-2), crops)
        if h == w:
            crops = torch.where(flags[:, 2, None, None, None], crops.transpose(-2, -1), crops)
    return crops


def _at_least(image: Tensor, h: int, w: int) -> Tensor:
    """``image`` reflect-padded (right, bottom; repeatedly if needed) to at least ``(h, w)``."""
    while image.shape[0] < h or image.shape[1] < w:
        pad_h, pad_w = min(max(h - image.shape[0], 0), image.shape[0] - 1), min(max(w - image.shape[1], 0), image.shape[1] - 1)
        image = torch.nn.functional.pad(image[None, None], (0, pad_w, 0, pad_h), mode="reflect")[0, 0]
    return image


def canvas(images: Sequence[Tensor], shape: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """The images zero-padded right and bottom to ``shape``: ``(n, 1, *shape)``, and their sizes ``(n, 2)``."""
    out = torch.zeros(len(images), 1, *shape, dtype=images[0].dtype)
    for i, image in enumerate(images):
        out[i, 0, : image.shape[0], : image.shape[1]] = image
    return out, torch.tensor([list(image.shape) for image in images])


def center_crop(image: np.ndarray, size: int) -> np.ndarray:
    """The central ``size × size`` part of ``image`` (all of an axis shorter than ``size``)."""
    h, w = image.shape
    top, left = max((h - size) // 2, 0), max((w - size) // 2, 0)
    return image[top : top + size, left : left + size]


def image_metrics(estimate: Tensor, truth: Tensor, sizes: Tensor) -> dict[str, float]:
    """``psnr_db``, ``ssim`` and ``nmse_db`` of each image (its ``sizes[i]`` top-left part), averaged over images.

    ``estimate`` and ``truth`` ``(n, 1, H, W)`` on the ``[0, 1]`` scale; the estimate is clipped to ``[0, 1]``
    first (ISTA-Net's convention); PSNR and SSIM from scikit-image on the 0-255 scale."""
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    psnr, ssim, nmse = [], [], []
    for e, t, (h, w) in zip(estimate[:, 0].double().clamp(0.0, 1.0).numpy(), truth[:, 0].double().numpy(), sizes.tolist()):
        e, t = 255.0 * e[:h, :w], 255.0 * t[:h, :w]
        psnr.append(peak_signal_noise_ratio(t, e, data_range=255.0))
        ssim.append(structural_similarity(t, e, data_range=255.0))
        nmse.append(10.0 * np.log10(np.sum((e - t) ** 2) / max(np.sum(t**2), 1e-300)) if np.any(e != t) else -np.inf)
    return {"psnr_db": float(np.mean(psnr)), "ssim": float(np.mean(ssim)), "nmse_db": float(np.mean(nmse))}
