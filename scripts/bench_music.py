"""MUSIC spectrum: mbdl's batched spectrum against a per-sample, per-angle loop like SubspaceNet's.

1000 sample covariances (8-sensor half-wavelength ULA, 3 sources, 100 snapshots, 10 dB) and a
grid of 3600 angles on [-90°, 90°). mbdl: :func:`mbdl.algorithms.subspace.music_spectrum` with
the grid's steering matrix built inside the timed call (one batched ``eigh`` and one batched
product ``E_nᴴ A``). Reference: for each sample an EVD (``np.linalg.eig``, eigenvalues sorted),
then for each angle its steering vector and ``1 / (aᴴ E_n E_nᴴ a)``, as SubspaceNet's
``MUSIC.spectrum_calculation`` does; its cost is linear in the samples, so it is timed on the
first ``--reference-samples`` samples (default 100: ~10 s a round here) and scaled to the batch.
complex128 both; the spectra are checked to agree. Goal: ≥ 100x.

    .venv/bin/python scripts/bench_music.py           # writes its section of docs/results/benchmarks.md
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from bench_harness import Timing, compare, fmt_mib, fmt_ratio, markdown_table, parser, peak_memory_mib, ratio, report, setup_torch
from mbdl.algorithms.subspace import music_spectrum, sample_covariance, ula_steering

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


def make_case(kind: str, samples: int, points: int, device: str = "cpu") -> Callable[[], np.ndarray | torch.Tensor]:
    """``"mbdl"`` (batched over samples and grid) or ``"per-angle loop"`` (SubspaceNet's structure)."""
    R = covariances(samples)
    angles = grid(points)
    if kind == "mbdl":
        R, angles = R.to(device), angles.to(device)
        return lambda: music_spectrum(R, SOURCES, ula_steering(angles, SENSORS))
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
    cases = {
        "mbdl": make_case("mbdl", args.samples, args.grid, args.device),
        "per-angle loop": make_case("per-angle loop", args.reference_samples, args.grid),
    }
    batched, looped = cases["mbdl"]().cpu().numpy(), cases["per-angle loop"]()
    difference = np.abs(batched[: args.reference_samples] / looped - 1).max()
    t = compare(cases, repeats=args.repeats, warmup=0, sync=sync)
    t["per-angle loop"] = Timing([scale * s for s in t["per-angle loop"].samples])
    peaks = {
        "mbdl": peak_memory_mib(make_case, "mbdl", args.samples, args.grid, args.device, device=args.device),
        "per-angle loop": peak_memory_mib(make_case, "per-angle loop", args.reference_samples, args.grid),
    }
    rows = [[kind, str(t[kind]), fmt_mib(peaks[kind])] for kind in cases]
    body = (
        f"{args.samples} samples x {args.grid} grid angles, N = {SENSORS}, M = {SOURCES}, complex128, device {args.device}; "
        f"the per-angle loop timed on {args.reference_samples} samples and scaled x{scale:g} (its peak memory too is that of "
        f"{args.reference_samples} samples); max relative difference of the spectra {difference:.1e}. "
        f"**Speed-up of mbdl: {fmt_ratio(ratio(t['per-angle loop'], t['mbdl']))}** (goal ≥ 100x).\n\n"
        + markdown_table(["implementation", "time per spectrum of the batch [spread]", "peak memory (one call)"], rows)
    )
    report(args, "music", "MUSIC spectrum", body)


if __name__ == "__main__":
    main()
