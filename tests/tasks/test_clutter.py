"""Clutter suppression: the simulator's statistics, SVT and robust PCA against numpy and their optimality conditions,
CORONA's start, the oracle bound by Monte Carlo, and the metrics against direct computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.signal
import torch

from mbdl.algorithms.parameters import IterationModules
from mbdl.algorithms.rpca import (
    RobustPCA,
    SVDFilter,
    casorati,
    from_casorati,
    singular_value_threshold,
)
from mbdl.config import ConfigError
from mbdl.methods.clutter import CORONA
from mbdl.nets.ultrasound import ComplexConv
from mbdl.tasks.clutter import (
    ClutterSuppression,
    LowRankPlusSparse,
    blur,
    contrast_to_noise,
    corona_loss,
)


def task(**options) -> ClutterSuppression:
    return ClutterSuppression(**{"shape": (16, 16), "frames": 10, "n_train": 8, "n_val": 8, "n_test": 8, **options})


def numpy_svt(M: np.ndarray, theta: float) -> np.ndarray:
    """The singular-value threshold of a batch of matrices ``(..., m, n)`` by numpy's SVD (the independent reference)."""
    U, sigma, Vh = np.linalg.svd(M, full_matrices=False)
    return (U * np.maximum(sigma - theta, 0)[..., None, :]) @ Vh


def complex_randn(*shape: int, generator: torch.Generator) -> torch.Tensor:
    return torch.complex(torch.randn(*shape, generator=generator, dtype=torch.float64), torch.randn(*shape, generator=generator, dtype=torch.float64))


def test_the_casorati_matrix_of_the_clutter_has_exactly_the_tissue_rank():
    clutter = task(tissue_rank=3)
    data = clutter.simulate(20, torch.Generator().manual_seed(0))
    sigma = torch.linalg.svdvals(casorati(data["s"][:, 0]).to(torch.complex128))
    assert (sigma[:, 3:] / sigma[:, :1]).max() < 1e-5, "rank at most 3"
    assert (sigma[:, 2] / sigma[:, 0]).min() > 1e-4, "rank exactly 3"
    assert from_casorati(casorati(data["x"]), clutter.shape).equal(data["x"])


def test_bubble_counts_births_deaths_and_motion():
    still = dict(speed_mm=0.0, birth=0.0, death=0.0, density=400.0)
    clutter = task(**still)
    _, alive, _ = clutter.tracks(4000, torch.Generator().manual_seed(1))
    counts = alive.sum(dim=2)
    assert (counts == counts[:, :1]).all(), "no motion, no births, no deaths: the same bubbles in every frame"
    initial = math.floor(400.0 * clutter.area_cm2)
    assert counts[:, 0].double().mean().item() == pytest.approx(initial / 2, rel=0.03), "uniform from 0 to the density's count"
    assert counts[:, 0].double().var().item() == pytest.approx(((initial + 1) ** 2 - 1) / 12, rel=0.08)
    _, born, _ = task(**{**still, "birth": 1.0, "max_births": 1, "density": 0.0}).tracks(50, torch.Generator().manual_seed(2))
    assert (born.sum(dim=2) == torch.arange(10)).all(), "one birth per frame"
    _, dying, _ = task(**{**still, "death": 0.5, "max_deaths": 1, "density": 2000.0}).tracks(2000, torch.Generator().manual_seed(3))
    before = dying[:, :-1].sum(dim=2)
    deaths = before - dying[:, 1:].sum(dim=2)
    assert set(deaths.unique().tolist()) == {0, 1} and deaths[before > 0].double().mean().item() == pytest.approx(0.5, abs=0.02)
    positions, _, amplitudes = task(density=200.0, turn_deg=0.0, birth=0.0).tracks(2000, torch.Generator().manual_seed(4))
    step = (positions[:, 1:] - positions[:, :-1]).norm(dim=-1)
    # E max(Z, 0), Z ~ N(1, 1): Phi(1) + phi(1) (every slot moves, alive or not: no selection)
    assert step[:, 0].mean().item() == pytest.approx(0.24 * (0.5 * math.erfc(-1 / math.sqrt(2)) + math.exp(-0.5) / math.sqrt(2 * math.pi)), rel=0.02)
    ratio = (amplitudes[:, 1:] / amplitudes[:, :-1])
    assert ratio.abs().min() >= 0.9 - 1e-5 and ratio.abs().max() <= 1.1 + 1e-5 and ratio.angle().abs().max() < 1e-5


def test_realised_noise_psf_width_and_support():
    clutter = task(noise_std=0.2)
    data = clutter.simulate(50, torch.Generator().manual_seed(5))
    noise = data["x"] - data["s"][:, 0] - data["s"][:, 1]
    assert noise.abs().square().mean().sqrt().item() == pytest.approx(0.2, rel=0.02)
    S, lit = data["s"][:, 1], data["bubbles"] != 0
    footprint = blur(lit.to(torch.complex64), torch.ones_like(clutter.psf)).real > 0.5
    assert (S[~footprint] == 0).all() and (S[footprint] != 0).float().mean() > 0.95, "S is exactly zero away from the bubbles"
    bubble = torch.zeros(1, 1, 41, 41, dtype=torch.complex64)
    bubble[0, 0, 20, 20] = 1.0
    image = blur(bubble, clutter.psf)[0, 0].abs().double()
    offsets = torch.arange(-20, 21, dtype=torch.float64) * 0.12
    weights = image / image.sum()
    # the truncation at 3 stds narrows the measured width by about 1 %
    assert math.sqrt((weights.sum(1) * offsets.square()).sum().item()) == pytest.approx(0.14, rel=0.03)
    assert math.sqrt((weights.sum(0) * offsets.square()).sum().item()) == pytest.approx(0.32, rel=0.03)


def test_singular_value_threshold_is_numpys_svd_shrunk():
    M = complex_randn(3, 7, 5, generator=torch.Generator().manual_seed(0))
    U, s, Vh = np.linalg.svd(M.numpy(), full_matrices=False)
    expected = numpy_svt(M.numpy(), 1.2)
    np.testing.assert_allclose(singular_value_threshold(M, 1.2).numpy(), expected, atol=1e-12)
    low = SVDFilter(2)(M.transpose(-1, -2).unflatten(-1, (1, 7)))  # frames (3, 5, 1, 7): Casorati (3, 7, 5)
    expected_low = (U[..., :2] * s[:, None, :2]) @ Vh[:, :2]
    np.testing.assert_allclose(casorati(low[:, 0]).numpy(), expected_low, atol=1e-12)
    np.testing.assert_allclose(casorati(low[:, 1]).numpy(), M.numpy() - expected_low, atol=1e-12)


@pytest.mark.parametrize("accelerate", [False, True])
def test_robust_pca_reaches_the_optimality_conditions(accelerate):
    """At the minimiser of 1/2||D - L - S||^2 + a||L||_* + b||S||_1, G = D - L - S is a subgradient of both terms:
    G = b sgn(S) on S's support and |G| <= b off it; U^H G V = a I on L's singular vectors and ||P_U^perp G P_V^perp|| <= a."""
    generator = torch.Generator().manual_seed(1)
    low = complex_randn(1, 12, 2, generator=generator) @ complex_randn(1, 2, 8, generator=generator)
    sparse = complex_randn(1, 12, 8, generator=generator) * (torch.rand(1, 12, 8, generator=generator, dtype=torch.float64) < 0.1) * 3
    D = from_casorati(low + sparse + 0.05 * complex_randn(1, 12, 8, generator=generator), (3, 4))
    a, b = 1.0, 0.3
    L, S = (casorati(part) for part in RobustPCA(3000 if not accelerate else 800, a, b, accelerate=accelerate)(D)[:, :].unbind(1))
    G = casorati(D) - L - S
    support = S.abs() > 1e-9
    torch.testing.assert_close(G[support], b * torch.sgn(S[support]), atol=1e-6, rtol=0)
    assert G[~support].abs().max() <= b + 1e-6
    U, sigma, Vh = torch.linalg.svd(L[0], full_matrices=False)
    rank = int((sigma > 1e-9).sum())
    assert 1 <= rank < 8
    U, V = U[:, :rank], Vh[:rank].mH
    torch.testing.assert_close(U.mH @ G[0] @ V, a * torch.eye(rank, dtype=G.dtype), atol=1e-6, rtol=0)
    rest = (torch.eye(12, dtype=G.dtype) - U @ U.mH) @ G[0] @ (torch.eye(8, dtype=G.dtype) - V @ V.mH)
    assert torch.linalg.matrix_norm(rest, ord=2) <= a + 1e-6


def test_robust_pca_starts_with_all_of_the_data_as_clutter():
    """From (L⁰, S⁰) = (D, 0) the gradient is zero, so the first iterate is (SVT_{μλ_L}(D), 0) (numpy's SVD here); and on
    clutter data 10 FISTA iterations from there are over 2× closer to the optimal objective than 10 from zero (numpy,
    written out; the optimum: 1000 of those)."""
    D = task().simulate(3, torch.Generator().manual_seed(4))["x"].to(torch.complex128)
    a, b, mu = 3.0, 0.1, 0.5
    first = next(RobustPCA(1, a, b, mu).iterates(D))
    M = casorati(D).numpy()
    svt = from_casorati(torch.from_numpy(numpy_svt(M, mu * a)), D.shape[-2:])
    torch.testing.assert_close(first[:, 0], svt, atol=1e-9, rtol=0)
    assert first[:, 1].abs().max() == 0

    def objective(L: np.ndarray, S: np.ndarray) -> float:
        return float((0.5 * np.abs(M - L - S) ** 2).sum() + a * np.linalg.svd(L, compute_uv=False).sum() + b * np.abs(S).sum())

    def fista_from_zero(iterations: int) -> tuple[np.ndarray, np.ndarray]:
        L = S = zL = zS = np.zeros_like(M)
        q = 1.0
        for _ in range(iterations):
            G = zL + zS - M
            L_next = numpy_svt(zL - mu * G, mu * a)
            V = zS - mu * G
            S_next = np.exp(1j * np.angle(V)) * np.maximum(np.abs(V) - mu * b, 0)
            q_next = 0.5 * (1 + np.sqrt(1 + 4 * q * q))
            zL, zS = L_next + (q - 1) / q_next * (L_next - L), S_next + (q - 1) / q_next * (S_next - S)
            L, S, q = L_next, S_next, q_next
        return L, S

    ours = RobustPCA(10, a, b, mu, accelerate=True)(D)
    optimum = objective(*fista_from_zero(1000))
    gaps = objective(casorati(ours[:, 0]).numpy(), casorati(ours[:, 1]).numpy()) - optimum, objective(*fista_from_zero(10)) - optimum
    assert gaps[0] < 0.5 * gaps[1]


def test_corona_starts_as_the_ista_step_and_its_layers_hold_their_kernels():
    clutter = task()
    D = clutter.simulate(2, torch.Generator().manual_seed(2))["x"]
    net = CORONA(LowRankPlusSparse((10, 16, 16)), iterations=4, kernel_sizes=(5, 3), lam_low_rank=3.0, lam_sparse=0.1, step=0.5)
    ista = RobustPCA(4, 3.0, 0.1, 0.5, "fixed")
    for ours, theirs in zip(net.iterates(D), ista.iterates(D)):
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    sizes = [m.conv.weight_re.shape[-1] for m in net.algorithm.mixing.nets]
    assert sizes == [5, 3, 3, 3] and isinstance(net.algorithm.mixing, IterationModules)


def test_gauss_seidel_corona_starts_as_alternating_minimisation():
    """With order=gauss_seidel and step 1, untrained CORONA (and the plain iteration) is L ← SVT_λL(D − S),
    S ← soft_λS(D − L) with the new L, written here in numpy, from (L, S) = (D, 0)."""
    D = task().simulate(2, torch.Generator().manual_seed(5))["x"]
    a, b, layers = 3.0, 0.1, 3
    M = casorati(D).numpy().astype(np.complex128)
    L, S, expected = M, np.zeros_like(M), []
    for _ in range(layers):
        L = numpy_svt(M - S, a)
        R = M - L
        S = np.exp(1j * np.angle(R)) * np.maximum(np.abs(R) - b, 0)
        expected.append(np.stack([L, S], axis=1))
    net = CORONA(LowRankPlusSparse((10, 16, 16)), iterations=layers, lam_low_rank=a, lam_sparse=b, step=1.0, order="gauss_seidel")
    plain = RobustPCA(layers, a, b, 1.0, gauss_seidel=True)
    for ours, theirs, want in zip(net.iterates(D), plain.iterates(D), expected):
        want = torch.from_numpy(np.stack([from_casorati(torch.from_numpy(want[:, k]), (16, 16)).numpy() for k in range(2)], axis=1))
        torch.testing.assert_close(ours.to(torch.complex128), want, atol=2e-4, rtol=1e-4)
        torch.testing.assert_close(theirs.to(torch.complex128), want, atol=2e-4, rtol=1e-4)


def test_complex_convolution_is_the_complex_sum():
    conv = ComplexConv(2, 1, (3, 3))
    x = torch.complex(torch.randn(1, 2, 6, 6), torch.randn(1, 2, 6, 6))
    w = torch.complex(conv.weight_re, conv.weight_im)
    expected = torch.nn.functional.conv2d(x, w, padding=1)
    torch.testing.assert_close(conv(x), expected, atol=1e-5, rtol=1e-5)


def test_oracle_bound_is_the_error_of_least_squares_on_the_subspaces_and_bubbles_by_monte_carlo():
    clutter = task(shape=(10, 12), frames=5, tissue_rank=2, density=400.0, noise_std=0.5)
    data = clutter.simulate(2, torch.Generator().manual_seed(6))
    expected_L, expected_S = clutter.oracle_errors(data)
    rng = np.random.default_rng(0)
    for i in range(2):
        L, S = (casorati(data["s"][i : i + 1, k])[0].numpy().astype(np.complex128) for k in (0, 1))
        U, _, Vh = np.linalg.svd(L, full_matrices=False)
        low_rank = np.einsum("pk,lt->ptkl", U[:, :2], Vh[:2]).reshape(-1, 4)  # vec(U C V^H) = low_rank @ vec(C), (p, t) row-major
        columns = []
        for t_, p_ in zip(*np.nonzero(casorati(data["bubbles"][i : i + 1])[0].numpy().T)):  # (frame, pixel) of each bubble
            image = np.zeros((5, 120), dtype=np.complex128)
            impulse = np.zeros((10, 12))
            impulse[divmod(p_, 12)] = 1.0
            image[t_] = scipy.signal.convolve2d(impulse, clutter.psf.double().numpy(), mode="same").flatten()
            columns.append(image.T.flatten())  # (p, t) row-major
        H = np.stack(columns, axis=1)
        design = np.concatenate([low_rank, H], axis=1)
        noise = 0.5 / math.sqrt(2) * (rng.standard_normal((len(design), 2000)) + 1j * rng.standard_normal((len(design), 2000)))
        estimate = np.linalg.lstsq(design, (L + S).flatten()[:, None] + noise, rcond=None)[0]
        error_L = np.abs(low_rank @ estimate[:4] - L.flatten()[:, None]) ** 2
        error_S = np.abs(H @ estimate[4:] - S.flatten()[:, None]) ** 2
        assert error_L.sum(axis=0).mean() == pytest.approx(expected_L[i].item(), rel=0.05)
        assert error_S.sum(axis=0).mean() == pytest.approx(expected_S[i].item(), rel=0.05)


def test_metrics_against_direct_computations():
    clutter = task()
    data = clutter.simulate(6, torch.Generator().manual_seed(7))
    estimate = data["s"] + 0.1 * complex_randn(*data["s"].shape, generator=torch.Generator().manual_seed(8)).to(torch.complex64)
    halves = lambda u: torch.cat([u.real, u.imag], dim=-1)
    mse = torch.nn.MSELoss()
    expected = 0.5 * mse(halves(estimate[:, 0]), halves(data["s"][:, 0])) + 0.5 * mse(halves(estimate[:, 1]), halves(data["s"][:, 1]))
    assert corona_loss(estimate, data["s"]).item() == pytest.approx(expected.item(), rel=1e-5)
    power = torch.rand(2, 5, 5, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    vessels, background = torch.zeros(2, 5, 5, dtype=torch.bool), torch.zeros(2, 5, 5, dtype=torch.bool)
    vessels[:, :2], background[:, 3:] = True, True
    v, b = power[0][vessels[0]].numpy(), power[0][background[0]].numpy()
    assert contrast_to_noise(power, vessels, background)[0].item() == pytest.approx(abs(v.mean() - b.mean()) / math.sqrt(v.var(ddof=1) + b.var(ddof=1)))
    metrics = clutter.evaluate(estimate, data)
    nmse = 10 * math.log10(((estimate[:, 1] - data["s"][:, 1]).abs() ** 2).sum().item() / (data["s"][:, 1].abs() ** 2).sum().item())
    assert metrics["nmse_s_db"] == pytest.approx(nmse, rel=1e-5) and set(metrics) == set(clutter.metrics)


def test_bad_options_stop_with_one_line():
    with pytest.raises(ConfigError, match="^task.tissue_rank: must be less than task.frames"):
        task(tissue_rank=10)
    with pytest.raises(ConfigError, match="^task.birth"):
        task(birth=1.5)
    with pytest.raises(ConfigError, match=r"^method.order: .*jacobi.*gauss_seidel"):
        CORONA(LowRankPlusSparse((10, 16, 16)), iterations=2, order="parallel")
