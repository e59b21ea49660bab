"""Write a training folder for the MRI runs: scikit-image's training images and matplotlib's bundled MR head slice.

The brain MRI sections train on natural images and test on brain MR images. The only MR image installed with the
project's dependencies is matplotlib's sample ``s1045.ima.gz`` (one 256×256 sagittal head slice, 16-bit; it is not
one of ISTA-Net's 50 brain test images: ``tests/tasks/test_imaging.py`` checks). This writes
:data:`~mbdl.tasks.images.SKIMAGE_TRAINING` as PNGs and ``copies`` copies of the slice (scaled to 8 bits by its
maximum), so that about ``copies / (14 + copies)`` of the random crops are MR. Pass the folder as ``task.train_dir``
(its validation crops then come from it too). Usage::

    .venv/bin/python scripts/mri_head_training_folder.py --out outputs/train_mri_head [--copies 7]
"""

from __future__ import annotations

import argparse
import gzip
from pathlib import Path

import numpy as np

from mbdl.tasks.images import SKIMAGE_TRAINING

#: the shape of matplotlib's sample MR slice, raw uint16 values (read as matplotlib's own example reads it).
MRI_HEAD_SHAPE = (256, 256)


def mri_head() -> np.ndarray:
    """matplotlib's bundled MR head slice as an 8-bit image ``(256, 256)``, scaled so its maximum is 255."""
    import matplotlib

    path = Path(matplotlib.get_data_path()) / "sample_data" / "s1045.ima.gz"
    raw = np.frombuffer(gzip.decompress(path.read_bytes()), np.uint16).reshape(MRI_HEAD_SHAPE).astype(np.float64)
    return np.round(raw / raw.max() * 255).astype(np.uint8)


def write_folder(out: Path, copies: int) -> list[Path]:
    """``out`` with scikit-image's training images and ``copies`` copies of :func:`mri_head`, as PNGs; the files."""
    from PIL import Image
    from skimage import data

    out.mkdir(parents=True, exist_ok=True)
    images = {name: getattr(data, name)() for name in SKIMAGE_TRAINING}
    images.update({f"mri_head_{k}": mri_head() for k in range(copies)})
    files = []
    for name, image in images.items():
        files.append(out / f"{name}.png")
        Image.fromarray(image).save(files[-1])
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="the folder to write (created if missing)")
    parser.add_argument("--copies", type=int, default=7, help="copies of the MR slice (7: a third of the crops)")
    args = parser.parse_args()
    if args.copies < 0:
        parser.error(f"--copies must be >= 0, got {args.copies}")
    print(f"{len(write_folder(args.out, args.copies))} images in {args.out}")


if __name__ == "__main__":
    main()
