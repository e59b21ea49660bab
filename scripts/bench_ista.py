"""ISTA / LISTA time per iteration against the roof: the same-shape GEMMs, timed in the same run.

One ISTA iteration ``s <- η(s + μ (x - s Hᵀ) H)`` costs two GEMMs, ``(B, m)·(m, n)`` and
``(B, n)·(n, m)``; one LISTA layer ``s <- η(x Wᵀ + s Sᵀ)`` costs ``(B, n)·(n, m)`` and
``(B, m)·(m, m)``. The roof of an iteration is the time of exactly those GEMMs (``torch.mm`` into
preallocated outputs); the reported share is roof time / iteration time (100 % = nothing but
the GEMMs). Inference (``torch.no_grad``), batch 1024, float32.

    .venv/bin/python scripts/bench_ista.py            # writes its section of docs/results/benchmarks.md
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from bench_harness import compare, fmt_mib, fmt_share, markdown_table, parser, peak_memory_mib, ratio, report, setup_torch
from mbdl.algorithms.ista import ISTA, LISTA
from mbdl.operators import Matrix
from mbdl.tasks.sparse_recovery import gaussian_operator

KINDS = ("ISTA", "LISTA", "ISTA roof", "LISTA roof")


def make_case(kind: str, n: int, m: int, batch: int, iterations: int, device: str) -> Callable[[], object]:
    """A call running ``iterations`` iterations of ``kind`` (one of :data:`KINDS`) on a batch."""
    generator = torch.Generator().manual_seed(0)
    H = gaussian_operator(n, m, generator).to(device)
    x = torch.randn(batch, n, generator=generator).to(device)
    if kind in ("ISTA", "LISTA"):
        algorithm = (ISTA if kind == "ISTA" else LISTA)(Matrix(H.cpu()), iterations, lam=0.01).to(device)

        def run() -> torch.Tensor:
            with torch.no_grad():
                return algorithm(x)

        return run
    # the GEMMs of one iteration: ISTA (B,m)(m,n) then (B,n)(n,m); LISTA (B,n)(n,m) then (B,m)(m,m)
    left = torch.randn(batch, m, generator=generator).to(device)
    first = (left, H.T.contiguous()) if kind == "ISTA roof" else (x, H.contiguous())
    second = (x, H.contiguous()) if kind == "ISTA roof" else (left, torch.randn(m, m, generator=generator).to(device))
    out1 = torch.empty(batch, first[1].shape[1], device=device)
    out2 = torch.empty(batch, second[1].shape[1], device=device)

    def gemms() -> None:
        for _ in range(iterations):
            torch.mm(*first, out=out1)
            torch.mm(*second, out=out2)

    return gemms


def main() -> None:
    p = parser(__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--iterations", type=int, default=20, help="iterations per timed call")
    p.add_argument("--shapes", default="150x200,250x500", help="n x m operator shapes, comma-separated")
    args = p.parse_args()
    if args.quick:
        args.batch, args.iterations, args.repeats, args.shapes = 64, 3, 2, "15x20"
    sync = setup_torch(args.device, args.threads)
    rows = []
    for shape in args.shapes.split(","):
        n, m = (int(v) for v in shape.split("x"))
        cases = {kind: make_case(kind, n, m, args.batch, args.iterations, args.device) for kind in KINDS}
        t = compare(cases, repeats=args.repeats, warmup=2, sync=sync)
        flops = 2 * 2 * args.batch * n * m  # ISTA: two (B x n x m) GEMMs per iteration
        flops_lista = 2 * args.batch * m * (n + m)
        for kind, f in (("ISTA", flops), ("LISTA", flops_lista)):
            per_iter = t[kind].median / args.iterations
            roof_per_iter = t[f"{kind} roof"].median / args.iterations
            peak = peak_memory_mib(make_case, kind, n, m, args.batch, args.iterations, args.device, device=args.device)
            rows.append(
                [
                    f"{kind} {n}×{m}",
                    f"{1e3 * per_iter:.3g} ms",
                    f"{1e3 * roof_per_iter:.3g} ms",
                    f"{f / roof_per_iter / 1e9:.3g}",
                    fmt_share(ratio(t[f"{kind} roof"], t[kind])),
                    fmt_mib(peak),
                ]
            )
    headers = ["iteration, shape", "time / iteration", "GEMM roof / iteration", "roof GFLOP/s", "share of roof [spread]", "peak memory (one call)"]
    body = (
        f"Batch {args.batch}, float32, {args.iterations} iterations per timed call, {args.repeats} interleaved rounds, "
        f"device {args.device}. Goal: ≥ 50 % of the roof.\n\n" + markdown_table(headers, rows)
    )
    report(args, "ista", "ISTA / LISTA iteration vs the GEMM roof", body)


if __name__ == "__main__":
    main()
