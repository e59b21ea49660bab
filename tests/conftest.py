"""Shared fixtures (helpers live in :mod:`tests.helpers`)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mbdl.tasks.sparse_recovery import SparseRecovery

# pytest-xdist runs two workers on two cores: one torch thread each (two threads per process
# under a busy neighbour run ~20x slower on this machine).
torch.set_num_threads(1)


@pytest.fixture
def outputs(tmp_path: Path) -> Path:
    return tmp_path / "outputs"


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory) -> Path:
    """Three small 8-bit images (parts of scikit-image's), as PNG files."""
    from PIL import Image
    from skimage import data

    folder = tmp_path_factory.mktemp("images")
    for name, image in (("brick", data.brick()[:48, :40]), ("coffee", data.coffee()[100:140, 200:260]), ("text", data.text()[:36, :50])):
        Image.fromarray(image).save(folder / f"{name}.png")
    return folder


@pytest.fixture(scope="session")
def denoiser_file(tmp_path_factory, image_folder) -> Path:
    from mbdl.methods.imaging import save_denoiser, train_gaussian_denoiser
    from mbdl.tasks.images import folder_images

    images = [torch.from_numpy(i).float() for i in folder_images(image_folder, "dir")[0]]
    denoiser, _ = train_gaussian_denoiser(images, seconds=0.3, crop=16, batch_size=4, channels=4, layers=2)
    path = tmp_path_factory.mktemp("denoiser") / "denoiser.pt"
    save_denoiser(denoiser, path, {})
    return path


@pytest.fixture
def problem():
    """A float64 LASSO problem: the operator ``H`` (m, n) and four measurements ``x`` (4, m)."""
    torch.set_default_dtype(torch.float64)
    task = SparseRecovery(n=30, m=50, k=3, noise_std=0.01, model_seed=1)
    data = task.simulate(4, torch.Generator().manual_seed(0))
    yield task.H.double(), data["x"].double()
    torch.set_default_dtype(torch.float32)
