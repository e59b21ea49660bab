"""Train the plug-and-play Gaussian denoiser once and save it (``method=dnn_aided method.algorithm=pnp method.denoiser=FILE``).

A DnCNN told its noise level (:class:`mbdl.methods.imaging.NoiseLevelDenoiser`) on fresh random crops (flipped) of the
training images, noise std uniform in ``[0, sigma_max]``, for a wall-time budget. The same file then serves every
operator (block CS, MRI, deblurring) and ratio. Usage::

    .venv/bin/python scripts/train_denoiser.py --out outputs/denoiser.pt [--minutes 10] [--train-dir DIR]
"""

from __future__ import annotations

import argparse
import os
import platform

import torch

from mbdl.methods.imaging import save_denoiser, train_gaussian_denoiser
from mbdl.tasks.images import SKIMAGE_TRAINING, folder_images, skimage_images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="file the denoiser is written to")
    parser.add_argument("--minutes", type=float, default=10.0, help="wall-time training budget")
    parser.add_argument("--train-dir", default=None, help="folder of training images (default: scikit-image's bundled images)")
    parser.add_argument("--crop", type=int, default=40, help="crop side")
    parser.add_argument("--batch-size", type=int, default=32, help="crops per step")
    parser.add_argument("--sigma-max", type=float, default=50 / 255, help="largest noise std (the [0, 1] scale)")
    parser.add_argument("--channels", type=int, default=32, help="DnCNN channels")
    parser.add_argument("--layers", type=int, default=8, help="DnCNN convolutions")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (cosine decay over the budget)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--seed", type=int, default=0, help="seed of the crops, the noise and the weights")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    images = folder_images(args.train_dir, "--train-dir")[0] if args.train_dir else skimage_images(SKIMAGE_TRAINING)
    denoiser, curve = train_gaussian_denoiser(
        [torch.from_numpy(image).float() for image in images],
        60.0 * args.minutes,
        crop=args.crop,
        batch_size=args.batch_size,
        sigma_max=args.sigma_max,
        channels=args.channels,
        layers=args.layers,
        lr=args.lr,
        seed=args.seed,
    )
    info = {**vars(args), "curve": curve, "machine": f"{platform.node()}, {os.cpu_count()} cores", "load": os.getloadavg()}
    save_denoiser(denoiser, args.out, info)
    last = curve[-1] if curve else None
    print(f"{args.out}: {last[0] if last else 0} steps in {last[1] if last else 0:.0f} s, last mean MSE {last[2] if last else float('nan'):.3g}")


if __name__ == "__main__":
    main()
