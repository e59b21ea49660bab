"""FISTA iteration on a matrix-free operator against one forward plus one adjoint of that operator.

A 2-D :class:`mbdl.operators.Convolution` (Gaussian kernel, σ = 1.6 px, 15×15) on a batch of
16×1×256×256 images, circular and zero boundary, float32, inference (``torch.no_grad``). One FISTA
iteration costs the gradient ``AᴴA z - Aᴴx`` (``Aᴴx`` once per call: here 1/``--iterations`` of an
adjoint per iteration), the soft threshold and the momentum step; the reference is ``Aᴴ(A s)``,
one forward plus one adjoint, timed in the same rounds. For the circular boundary ``AᴴA`` is one
FFT pair (``|ĥ|²`` in Fourier), for the zero boundary it is forward then adjoint. Goal: FISTA
iteration ≤ 1.5× forward + adjoint. For reference, a :class:`mbdl.operators.Matrix` at the sparse
task's size (150×200, batch 1024).

    .venv/bin/python scripts/bench_operators.py       # writes its section of docs/results/benchmarks.md
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from bench_harness import compare, fmt_ratio, fmt_seconds, markdown_table, parser, ratio, report, setup_torch
from mbdl.algorithms.fista import FISTA
from mbdl.operators import Convolution, LinearOperator, Matrix
from mbdl.tasks.sparse_recovery import gaussian_operator


def gaussian_kernel(size: int, sigma: float) -> torch.Tensor:
    """A ``size × size`` Gaussian kernel of std ``sigma`` pixels, summing to one."""
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-0.5 * (r / sigma).square())
    return (g[:, None] * g[None, :] / g.sum() ** 2).float()


def cases(operator: LinearOperator, batch: int, iterations: int, device: str) -> dict[str, Callable[[], object]]:
    """``fista``: ``iterations`` FISTA iterations; ``forward+adjoint``: one ``Aᴴ(A s)``."""
    operator = operator.to(device)
    generator = torch.Generator().manual_seed(0)
    s = torch.randn(batch, *operator.in_shape, generator=generator).to(device)
    x = operator(s) + 0.01 * torch.randn(batch, *operator.out_shape, generator=generator).to(device)
    fista = FISTA(operator, iterations, lam=0.01).to(device)  # step 1/‖A‖² (Lanczos for the zero boundary, once)

    def run_fista() -> torch.Tensor:
        with torch.no_grad():
            return fista(x)

    def forward_adjoint() -> torch.Tensor:
        with torch.no_grad():
            return operator.adjoint(operator(s))

    return {"fista": run_fista, "forward+adjoint": forward_adjoint}


def main() -> None:
    p = parser(__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--size", type=int, default=256, help="image side in pixels")
    p.add_argument("--iterations", type=int, default=20, help="FISTA iterations per timed call")
    args = p.parse_args()
    if args.quick:
        args.batch, args.size, args.iterations, args.repeats = 2, 32, 3, 2
    sync = setup_torch(args.device, args.threads)
    kernel = gaussian_kernel(15, 1.6)
    operators = {
        f"Convolution circular, {args.batch}×1×{args.size}×{args.size}": (Convolution(kernel, (1, args.size, args.size), "circular"), args.batch),
        f"Convolution zero, {args.batch}×1×{args.size}×{args.size}": (Convolution(kernel, (1, args.size, args.size), "zero"), args.batch),
        "Matrix 150×200, batch 1024": (Matrix(gaussian_operator(150, 200, torch.Generator().manual_seed(0))), 1024),
    }
    rows = []
    for name, (operator, batch) in operators.items():
        c = cases(operator, batch, args.iterations, args.device)
        t = compare(c, repeats=args.repeats, warmup=2, sync=sync)
        per_iteration = ratio(t["fista"], t["forward+adjoint"])
        per_iteration.samples = [r / args.iterations for r in per_iteration.samples]
        rows.append([name, fmt_seconds(t["fista"].median / args.iterations), str(t["forward+adjoint"]), fmt_ratio(per_iteration)])
    headers = ["operator, batch", "FISTA / iteration", "forward + adjoint [spread]", "FISTA iteration / (forward + adjoint) [spread]"]
    body = (
        f"float32, {args.iterations} FISTA iterations per timed call (the one-off Aᴴx included), {args.repeats} interleaved rounds, "
        f"device {args.device}, kernel 15×15 Gaussian σ = 1.6 px. Goal: ≤ 1.5× for the convolutions.\n\n" + markdown_table(headers, rows)
    )
    report(args, "operators", "FISTA iteration vs forward + adjoint of the operator", body)


if __name__ == "__main__":
    main()
