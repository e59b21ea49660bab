"""MUSIC spectrum: mbdl's batched spectrum against a per-sample, per-angle loop like SubspaceNet's.

1000 sample covariances (8-sensor half-wavelength ULA, 3 sources, 100 snapshots, 10 dB) and a
grid of 3600 angles on [-90°, 90°). mbdl: :func:`mbdl.algorithms.subspace.music_spectrum` with
the grid's steering matrix built inside the timed call (one batched ``eigh``, the noise projectors
``C = E_n E_nᴴ`` and one real GEMM of their ``2N²`` coefficients with a ``(2N², G)`` basis of the
grid: any array geometry). Reference: for each sample an EVD (``np.linalg.eig``, eigenvalues sorted),
then for each angle its steering vector and ``1 / (aᴴ E_n E_nᴴ a)``, as SubspaceNet's
``MUSIC.spectrum_calculation`` does; its cost is linear in the samples, so it is timed on the
first ``--reference-samples`` samples (default 100: ~10 s a round here) and scaled to the batch.
complex128 both; the spectra are checked to agree. Goal: ≥ 100x.

A third case, *polynomial form*, is specific to the ULA (in this script only): ``aᴴ C a = c_0 + 2 Re Σ_{k≥1} c_k z^k`` where ``c_k`` is the sum of the
``k``-th superdiagonal of ``C`` (the Root-MUSIC polynomial on the unit circle), so the whole
null spectrum is one real GEMM ``(batch, 2N-1) x (2N-1, G)``: ``2N-1`` instead of ``2N²``
coefficients, for the ULA only.

    .venv/bin/python scripts/bench_music.py           # writes its section of docs/results/benchmarks.md
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from bench_harness import Timing, compare, fmt_mib, fmt_ratio, markdown_table, parser, peak_memory_mib, ratio, report, setup_torch
from mbdl.algorithms.subspace import music_spectrum, sample_covariance, subspaces, ula_steering

SENSORS, SOURCES, SNAPSHOTS, SNR_DB = 8, 3, 100, 10.0


def covariances(samples: int) -> torch.Tensor:
    """``(samples, N, N)`` complex128 sample covariances of ``SOURCES`` random sources on the ULA."""
    g = torch.Generator().manual_seed(0)
    theta = (torch.rand(samples, SOURCES, generator=g, dtype=torch.float64) - 0.5) * math.pi
    A = ula_steering(theta, SENSORS)  # (samples, N, M)

    def cn(*shape: int) -> torch.Tensor:
        return torch.complex(torch.randn(*shape, generator=g, dtype=torch.float64), torch.randn(*shape, generator=g, dtype=torch.float64)) / math.sqrt(2)

    noise_std = 10 ** (-SNR_DB / 20)
    x = A @ cn(samples, SOURCES, SNAPSHOTS) + noise_std * cn(samples, SENSORS, SNAPSHOTS)
    return sample_covariance(x)


def grid(points: int) -> torch.Tensor:
    return torch.linspace(-math.pi / 2, math.pi / 2, points + 1, dtype=torch.float64)[:-1]


def polynomial_music_spectrum(R: torch.Tensor, num_sources: int, angles: torch.Tensor) -> torch.Tensor:
    """MUSIC spectrum on the ULA from the coefficients of ``aᴴ E_n E_nᴴ a`` in ``z = e^{jπ sin θ}``, ``(batch, G)``."""
    n = R.shape[-1]
    _, noise = subspaces(R, num_sources)
    C = noise @ noise.mH
    c = torch.stack([C.diagonal(offset=k, dim1=-2, dim2=-1).sum(-1) for k in range(n)], dim=-1)  # (batch, N)
    coefficients = torch.cat([c[..., :1].real, 2 * c[..., 1:].real, -2 * c[..., 1:].imag], dim=-1)  # (batch, 2N-1)
    phase = math.pi * torch.arange(1, n, dtype=angles.dtype, device=angles.device)[:, None] * torch.sin(angles)
    basis = torch.cat([torch.ones_like(angles)[None], torch.cos(phase), torch.sin(phase)])  # (2N-1, G)
    return 1.0 / (coefficients @ basis)


CASES = ("mbdl", "per-angle loop", "polynomial form (ULA only)")


def make_case(kind: str, samples: int, points: int, device: str = "cpu", first: int | None = None) -> Callable[[], np.ndarray | torch.Tensor]:
    """One of :data:`CASES` on the ``first`` of ``samples`` covariances: mbdl (batched over samples and grid),
    SubspaceNet's loop, or the ULA's polynomial form."""
    R = covariances(samples)[:first]
    samples = len(R)
    angles = grid(points)
    if kind != "per-angle loop":
        R, angles = R.to(device), angles.to(device)
        if kind == "mbdl":
            return lambda: music_spectrum(R, SOURCES, ula_steering(angles, SENSORS))
        return lambda: polynomial_music_spectrum(R, SOURCES, angles)
    R_np, angles_np, positions = R.numpy(), angles.numpy(), np.arange(SENSORS)

    def loop() -> np.ndarray:
        spectra = np.empty((samples, points))
        for i in range(samples):
            eigenvalues, eigenvectors = np.linalg.eig(R_np[i])
            Un = eigenvectors[:, np.argsort(eigenvalues)[::-1]][:, SOURCES:]
            for g, angle in enumerate(angles_np):
                a = np.exp(1j * np.pi * positions * np.sin(angle))
                spectra[i, g] = 1 / np.real(np.conj(a).T @ Un @ np.conj(Un).T @ a)
        return spectra

    return loop


def main() -> None:
    p = parser(__doc__.split("\n")[0])
    p.set_defaults(repeats=3)
    p.add_argument("--samples", type=int, default=1000)
    p.add_argument("--grid", type=int, default=3600)
    p.add_argument("--reference-samples", type=int, default=100, help="samples the per-angle loop is timed on")
    args = p.parse_args()
    if args.quick:
        args.samples, args.grid, args.repeats, args.reference_samples = 20, 360, 2, 10
    sync = setup_torch(args.device, args.threads)
    scale = args.samples / args.reference_samples
    first = {kind: args.reference_samples if kind == "per-angle loop" else None for kind in CASES}
    cases = {kind: make_case(kind, args.samples, args.grid, args.device, first[kind]) for kind in CASES}
    looped = cases["per-angle loop"]()
    difference = {kind: np.abs(np.asarray(torch.as_tensor(cases[kind]()).cpu())[: args.reference_samples] / looped - 1).max() for kind in CASES}
    t = compare(cases, repeats=args.repeats, warmup=0, sync=sync)
    t["per-angle loop"] = Timing([scale * s for s in t["per-angle loop"].samples])
    peaks = {kind: peak_memory_mib(make_case, kind, args.samples, args.grid, args.device, first[kind], device=args.device) for kind in CASES}
    rows = [
        [kind, str(t[kind]), fmt_ratio(ratio(t["per-angle loop"], t[kind])), f"{difference[kind]:.1e}", fmt_mib(peaks[kind])] for kind in CASES
    ]
    body = (
        f"{args.samples} samples x {args.grid} grid angles, N = {SENSORS}, M = {SOURCES}, complex128, device {args.device}; "
        f"the per-angle loop timed on {args.reference_samples} samples and scaled x{scale:g} (its peak memory too is that of "
        f"{args.reference_samples} samples). Goal: mbdl ≥ 100x faster than the loop.\n\n"
        + markdown_table(["implementation", "time per spectrum of the batch [spread]", "speed-up over the loop", "max relative difference to the loop", "peak memory (one call)"], rows)
    )
    report(args, "music", "MUSIC spectrum", body)


if __name__ == "__main__":
    main()
