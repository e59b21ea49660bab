"""The imaging task, its operators and algorithms, and every point of the spectrum on every operator (tiny images)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from mbdl.config import ConfigError
from mbdl.operators import BlockCompressiveSensing, Convolution, MaskedFourier, PerShape, WaveletSynthesis
import mri_head_training_folder
from tests.helpers import run_config

F64 = torch.float64
#: ISTA-Net's data (Set11, brain_test, Phi, masks): $MBDL_DATA/istanet, by default the shared data folder.
ISTANET = Path(os.environ.get("MBDL_DATA", "/work/shared/data")) / "istanet"
needs_istanet = pytest.mark.skipif(not (ISTANET / "Set11").is_dir(), reason=f"no ISTA-Net data at {ISTANET} (set MBDL_DATA)")


def inner(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.conj() * b).real.sum().item()


# ---- operators ----


def test_wavelet_synthesis_is_pywavelets_haar_and_a_parseval_frame():
    import pywt

    S = WaveletSynthesis((1, 30, 33), levels=2)
    s = torch.rand(3, 1, 30, 33, dtype=F64)
    c = S.adjoint(s)
    padded = np.zeros((32, 36))
    padded[:30, :33] = s[0, 0].numpy()
    expected, _ = pywt.coeffs_to_array(pywt.wavedec2(padded, "haar", level=2, mode="periodization"))
    assert np.abs(c[0, 0].numpy() - expected).max() < 1e-12
    assert torch.allclose(S(c), s, atol=1e-12)  # S S^H = I
    coefficients, images = torch.randn(2, 1, 32, 36, dtype=F64), torch.randn(2, 1, 30, 33, dtype=F64)
    assert abs(inner(S(coefficients), images) - inner(coefficients, S.adjoint(images))) < 1e-10


@pytest.mark.parametrize("build", ["cs", "mri", "blur", "wavelet_cs"])
def test_imaging_operator_adjoints_to_1e_10(build):
    from mbdl.tasks.imaging import radial_mask

    shapes = [(1, 17, 20), (1, 24, 32)]
    if build == "cs":
        phi = torch.randn(20, 64, dtype=F64)
        A = PerShape([BlockCompressiveSensing(phi, shape, block=8) for shape in shapes])
    elif build == "mri":
        A = MaskedFourier(radial_mask((24, 24), 30)[None].double(), real=True)
        shapes = [(1, 24, 24)]
    elif build == "blur":
        A = PerShape([Convolution(torch.rand(5, 5, dtype=F64), shape, "zero") for shape in shapes])
    else:
        phi = torch.randn(20, 64, dtype=F64)
        A = PerShape([BlockCompressiveSensing(phi, shape, block=8) for shape in shapes]).map(lambda a: a @ WaveletSynthesis(a.in_shape, 2))
    for member in A.members if isinstance(A, PerShape) else [A]:
        s = torch.randn(3, *member.in_shape, dtype=F64)
        x = A(s)
        y = torch.randn_like(x)
        assert abs(inner(x, y) - inner(s, A.adjoint(y))) < 1e-10 * (1 + abs(inner(x, y)))


def test_per_shape_dispatches_on_the_input_and_refuses_unknown_shapes():
    phi = torch.randn(10, 64)
    A = PerShape([BlockCompressiveSensing(phi, shape, block=8) for shape in [(1, 8, 8), (1, 16, 24)]])
    assert A(torch.rand(2, 1, 16, 24)).shape == (2, 1, 6, 10)
    assert A.adjoint(torch.rand(2, 1, 1, 10)).shape == (2, 1, 8, 8)
    assert A.measures(torch.rand(1, 1, 6, 10)) and not A.measures(torch.rand(1, 1, 5, 10))
    with pytest.raises(ValueError, match="no member"):
        A(torch.rand(1, 1, 9, 9))


@needs_istanet
def test_block_cs_of_set11_with_istanets_phi_is_the_per_block_product_to_1e_6():
    from mbdl.tasks.imaging import CompressiveSensing, Imaging

    task = Imaging(CompressiveSensing(25, phi=str(ISTANET / "sampling_matrix" / "phi_0_25_1089.mat")), test_dir=str(ISTANET / "Set11"), train_dir=str(ISTANET / "Set11"))
    data = task.data("test", 0, torch.Generator().manual_seed(0))
    phi = task.spec.phi.double().numpy()
    in_float64 = task.operator(data["s"].double())
    for i, (h, w) in enumerate(data["size"].tolist()):
        image = data["s"][i, 0, :h, :w].double().numpy()
        padded = np.pad(image, ((0, -h % 33), (0, -w % 33)))
        blocks = [padded[r : r + 33, c : c + 33].reshape(-1) for r in range(0, padded.shape[0], 33) for c in range(0, padded.shape[1], 33)]
        direct = np.stack(blocks) @ phi.T
        # float64 to 1e-12 absolute; the task's float32 measurements by the rounding bound of a dot product, relative to
        # sum_j |phi_ij s_j| (not to |y_i|): a few eps whatever order the machine's BLAS sums in (1.5 eps seen)
        scale = {torch.float64: 1.0, torch.float32: np.stack(blocks) @ np.abs(phi).T}
        rows, cols = padded.shape[0] // 33, padded.shape[1] // 33
        for x, tolerance in ((in_float64[i, 0], 1e-12), (data["x"][i, 0], 4 * np.finfo(np.float32).eps)):
            canvas = x.double().numpy().reshape(task.canvas_shape[0] // 33, task.canvas_shape[1] // 33, -1)
            assert (np.abs(canvas[:rows, :cols].reshape(rows * cols, -1) - direct) / scale[x.dtype]).max() < tolerance
            assert not canvas[rows:].any() and not canvas[:, cols:].any()  # the canvas's other blocks are zero


@needs_istanet
def test_mri_zero_filled_is_istanets_real_ifft_of_the_masked_fft():
    from mbdl.tasks.imaging import MRI

    spec = MRI(20, mask=str(ISTANET / "sampling_matrix" / "mask_20.mat"))
    s = torch.rand(2, 1, 256, 256, dtype=F64)
    A = spec.build((256, 256))
    expected = np.real(np.fft.ifft2(spec.mask.numpy() * np.fft.fft2(s[:, 0].numpy())))
    assert np.abs(A.adjoint(A(s))[:, 0].numpy() - expected).max() < 1e-6


# ---- algorithms ----


def test_primal_dual_tv_denoising_is_scikit_images_chambolle():
    from skimage.restoration import denoise_tv_chambolle

    from mbdl.algorithms.total_variation import PrimalDualTV, total_variation
    from mbdl.operators import Diagonal

    x = torch.rand(1, 1, 24, 20, dtype=F64, generator=torch.Generator().manual_seed(0))
    lam = 0.1
    reference = torch.from_numpy(denoise_tv_chambolle(x[0, 0].numpy(), weight=lam, eps=1e-12, max_num_iter=20000))[None, None]
    estimate = PrimalDualTV(Diagonal(torch.ones(1, 24, 20, dtype=F64)), iterations=4000, lam=lam, step=0.5)(x)
    objective = lambda s: (0.5 * (s - x).square().sum() + lam * total_variation(s)).item()  # noqa: E731
    assert (estimate - reference).abs().max() < 2e-5
    assert objective(estimate) <= objective(reference) + 1e-7


def test_half_quadratic_splitting_with_an_identity_prior_reaches_least_squares():
    from mbdl.algorithms.half_quadratic import HalfQuadraticSplitting
    from mbdl.operators import Matrix

    class Identity(torch.nn.Module):
        def forward(self, v, t):
            return v

    H = torch.randn(12, 8, dtype=F64, generator=torch.Generator().manual_seed(1))
    x = torch.randn(3, 12, dtype=F64)
    estimate = HalfQuadraticSplitting(Matrix(H), iterations=200, prior=Identity(), rho=1.0)(x)
    expected = torch.linalg.lstsq(H, x.T).solution.T
    assert torch.allclose(estimate, expected, atol=1e-8)


def test_linear_start_is_the_least_squares_qinit_of_the_blocks_it_saw():
    from mbdl.methods.imaging import LinearStart

    phi = torch.linalg.qr(torch.randn(64, 12, dtype=F64)).Q.T.float()
    A = BlockCompressiveSensing(phi, (1, 16, 16), block=8)
    start = LinearStart(A).train()
    s = torch.rand(40, 1, 16, 16)
    start.observe(A(s), s)
    S, Y = A.blocks(s).reshape(-1, 64).double(), A(s).reshape(-1, 12).double()
    expected = torch.linalg.lstsq(Y, S).solution.T  # Q = S Y^T (Y Y^T)^-1
    assert torch.allclose(start.Q.double(), expected, atol=1e-4)


def test_pnp_fits_its_qinit_in_closed_form_on_block_cs_only(denoiser_file):
    """Plug-and-play learns nothing by gradient steps; on block CS its start's Q is the least-squares fit of the
    training pairs (torch's lstsq here), fitted by the runner's closed-form path; on MRI there is nothing to fit."""
    from mbdl.methods.base import fits_in_closed_form
    from mbdl.methods.imaging import DNNAided
    from mbdl.operators import MaskedFourier
    from mbdl.tasks.inverse_problem import LinearInverseProblem

    phi = torch.linalg.qr(torch.randn(64, 12, dtype=F64)).Q.T.float()
    A = BlockCompressiveSensing(phi, (1, 16, 16), block=8)
    pnp = DNNAided(LinearInverseProblem(A), "pnp", iterations=2, denoiser=str(denoiser_file))
    assert fits_in_closed_form(pnp, "discriminative", "supervised", fresh_data=False) and pnp.trainable_parameters == 0
    s = torch.rand(40, 1, 16, 16)
    assert pnp.fit_model(A(s), s) == 0
    S, Y = A.blocks(s).reshape(-1, 64).double(), A(s).reshape(-1, 12).double()
    assert torch.allclose(pnp.start.Q.double(), torch.linalg.lstsq(Y, S).solution.T, atol=1e-4)
    mri = DNNAided(LinearInverseProblem(MaskedFourier((torch.rand(16, 16) < 0.5).float(), real=True)), "pnp", iterations=2, denoiser=str(denoiser_file))
    assert mri.closed_form is None and not fits_in_closed_form(mri, "discriminative", "supervised", fresh_data=False)


def test_unrolled_pnp_starts_as_pnp_and_trains_its_schedule(denoiser_file):
    """Unrolled PnP is PnP-HQS at its initial schedule (the same reconstruction, to float rounding), with
    σ_t = σ_max (σ_min/σ_max)^(t/(T-1)) and ρ_t = λ/σ_t²; trained, it holds log σ_t and log λ (and, with
    ``finetune``, the denoiser's weights) as parameters, where PnP trains nothing."""
    from mbdl.methods.imaging import DNNAided, UnfoldedNet
    from mbdl.operators import MaskedFourier
    from mbdl.tasks.inverse_problem import LinearInverseProblem

    problem = LinearInverseProblem(MaskedFourier((torch.rand(16, 16, generator=torch.Generator().manual_seed(0)) < 0.4).float(), real=True))
    options = {"iterations": 4, "denoiser": str(denoiser_file), "lam": 2e-5, "sigma_max": 0.2, "sigma_min": 0.01}
    pnp = DNNAided(problem, "pnp", **options).eval()
    unrolled = UnfoldedNet(problem, "unrolled_pnp", **options).eval()
    x = problem.operator(torch.rand(3, 1, 16, 16))
    with torch.no_grad():
        assert torch.allclose(unrolled(x), pnp(x), atol=1e-6)
    sigmas = 0.2 * (0.01 / 0.2) ** (torch.arange(4) / 3)
    prior = unrolled.algorithm.prior
    assert torch.allclose(torch.stack([prior.sigma(t) for t in range(4)]), sigmas, rtol=1e-6)
    assert torch.allclose(torch.stack([unrolled.algorithm.penalty(t) for t in range(4)]), 2e-5 / sigmas.square(), rtol=1e-5)
    weights = sum(p.numel() for p in prior.denoiser.parameters())
    assert pnp.trainable_parameters == 0 and unrolled.trainable_parameters == weights + 4 + 1
    frozen = UnfoldedNet(problem, "unrolled_pnp", finetune=False, **options)
    assert frozen.trainable_parameters == 4 + 1
    frozen(x).square().mean().backward()
    assert prior.log_sigmas.grad is None and frozen.algorithm.prior.log_sigmas.grad.abs().sum() > 0


def test_image_metrics_follow_istanets_conventions():
    from skimage.metrics import structural_similarity

    from mbdl.tasks.images import image_metrics

    truth = torch.randint(0, 256, (2, 1, 20, 24)).double() / 255
    estimate = truth + 0.05 * torch.randn_like(truth)
    metrics = image_metrics(estimate.float(), truth.float(), torch.tensor([[20, 24], [10, 12]]))
    clipped = estimate.clamp(0, 1)
    psnr = [20 * math.log10(255 / (255 * (clipped[i, 0, :h, :w] - truth[i, 0, :h, :w])).square().mean().sqrt().item()) for i, (h, w) in enumerate([(20, 24), (10, 12)])]
    assert metrics["psnr_db"] == pytest.approx(np.mean(psnr), abs=1e-4)
    ssim = structural_similarity(255 * truth[0, 0].numpy(), 255 * clipped[0, 0].float().double().numpy(), data_range=255)
    single = image_metrics(estimate[:1].float(), truth[:1].float(), torch.tensor([[20, 24]]))
    assert single["ssim"] == pytest.approx(ssim, abs=1e-4)


def test_random_crops_are_flipped_parts_of_the_images_and_follow_the_generator():
    from mbdl.tasks.images import random_crops

    image = torch.arange(30 * 40, dtype=torch.float32).reshape(30, 40)
    crops = random_crops([image], 8, (6, 6), torch.Generator().manual_seed(3))
    again = random_crops([image], 8, (6, 6), torch.Generator().manual_seed(3))
    assert torch.equal(crops, again) and crops.shape == (8, 1, 6, 6)
    for crop in crops[:, 0]:
        top_left = crop.min().item()
        r, c = divmod(int(top_left), 40)
        assert torch.equal(torch.sort(crop.flatten()).values, torch.sort(image[r : r + 6, c : c + 6].flatten()).values)


def test_the_mri_head_training_folder_is_scikit_images_images_and_the_mr_slice(tmp_path):
    from mbdl.tasks.images import SKIMAGE_TRAINING, folder_images

    files = mri_head_training_folder.write_folder(tmp_path, copies=2)
    images, names = folder_images(tmp_path, "dir")
    assert len(files) == len(images) == len(SKIMAGE_TRAINING) + 2 and {"mri_head_0", "mri_head_1"} < set(names)
    head = images[names.index("mri_head_0")]
    assert head.shape == (256, 256) and head.max() == 1.0 and np.median(head) < 0.05  # the dark background of an MR image


@needs_istanet
def test_the_mr_slice_is_no_brain_test_image():
    """Its largest normalised circular cross-correlation with any of the 50 test images, over the 8 flips and
    transposes, is far from the 1 of a copy (0.74 measured)."""
    from mbdl.tasks.images import folder_images

    head = mri_head_training_folder.mri_head().astype(np.float64)
    head = (head - head.mean()) / head.std()
    for image in folder_images(ISTANET / "brain_test", "dir")[0]:
        z = (image - image.mean()) / image.std()
        for view in (z, z.T):
            for flipped in (view, view[::-1], view[:, ::-1], view[::-1, ::-1]):
                corr = np.fft.ifft2(np.fft.fft2(head) * np.conj(np.fft.fft2(flipped))).real.max() / head.size
                assert corr < 0.9


# ---- the task ----


def test_bad_options_stop_with_one_line_naming_them(image_folder):
    from mbdl.tasks.imaging import MRI, CompressiveSensing, Deblur, Imaging

    with pytest.raises(ConfigError, match="task.operator.ratio"):
        CompressiveSensing(ratio=0)
    with pytest.raises(ConfigError, match="task.operator.kernel"):
        Deblur(kernel="disc")
    with pytest.raises(ConfigError, match="task.crop"):
        Imaging(MRI(20, size=16), train_dir=str(image_folder), test_dir=str(image_folder), crop=8)
    with pytest.raises(ConfigError, match="task.test_dir"):
        Imaging(CompressiveSensing(25, block=8), train_dir=str(image_folder), test_dir=str(image_folder / "missing"))


def test_test_images_keep_their_sizes_on_one_canvas(image_folder):
    from mbdl.tasks.imaging import CompressiveSensing, Imaging

    task = Imaging(CompressiveSensing(25, block=8), train_dir=str(image_folder), test_dir=str(image_folder), crop=8)
    data = task.data("test", 0, torch.Generator().manual_seed(0))
    assert task.canvas_shape == (48, 64) and data["size"].tolist() == [[48, 40], [40, 60], [36, 50]]
    assert data["s"][0, 0, :, 40:].abs().max() == 0
    perfect = task.evaluate(data["s"], data)
    assert perfect["psnr_db"] == math.inf and perfect["ssim"] == pytest.approx(1.0)


OPERATORS = {
    "cs": ["task/operator=cs", "task.operator.block=8", "task.crop=8", "task.operator.ratio=25"],
    "mri": ["task/operator=mri", "task.operator.size=16", "task.crop=null"],
    "deblur": ["task/operator=deblur", "task.crop=12", "task.operator.sigma_px=1.0"],
}
METHODS = {
    "tv": ["method=model_based", "method.iterations=4"],
    "wavelet": ["method=model_based", "method.algorithm=wavelet_fista", "method.iterations=4", "method.levels=2"],
    "learned_tv": ["method=learned_optimizer", "method.iterations=3"],
    "dncnn": ["method=black_box", "method.channels=4", "method.layers=3"],
    "unet": ["method=black_box", "method.net=unet", "method.channels=4"],
    "istanet_plus": ["method=unfolded", "method.iterations=2", "method.channels=4"],
    "istanet_plus_layerwise": ["method=unfolded", "method.iterations=2", "method.channels=4", "regime=layerwise", "regime.lr_decay=[0.2]"],
    "modl": ["method=unfolded", "method.algorithm=modl", "method.iterations=2", "method.channels=4", "method.layers=2"],
    "neural_proximal_gradient": ["method=dnn_aided", "method.iterations=2", "method.channels=4", "method.layers=2"],
    "pnp": ["method=dnn_aided", "method.algorithm=pnp", "method.iterations=3"],
    "unrolled_pnp": ["method=unfolded", "method.algorithm=unrolled_pnp", "method.iterations=2"],
}


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("operator", list(OPERATORS))
def test_every_method_runs_on_every_operator(tmp_path, image_folder, denoiser_file, operator, method):
    extra = [f"method.denoiser={denoiser_file}"] if "pnp" in method else []
    record = run_config(
        tmp_path,
        "task=imaging",
        *OPERATORS[operator],
        f"task.train_dir={image_folder}",
        f"task.test_dir={image_folder}",
        "task.test_size=16",
        "task.n_train=8",
        "task.n_val=4",
        "task.reference_samples=200",
        *METHODS[method],
        *extra,
        "++method.optim.epochs=1",
        "++method.optim.batch_size=4",
    )
    for metric in ("psnr_db", "ssim", "nmse_db"):
        assert math.isfinite(record[f"test/{metric}"]) and math.isfinite(record[f"reference/{metric}"])
    assert record["reference_names"]["psnr_db"]
    assert (tmp_path / "figure.png").is_file()
    if method not in ("dncnn", "unet"):
        assert len(record["curve/psnr_db"]) == int(next(o for o in METHODS[method] if o.startswith("method.iterations=")).split("=")[1])
