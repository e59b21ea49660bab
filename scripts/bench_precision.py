"""Training step of the imaging networks in float32 and ``bf16-mixed``, with NCHW and channels-last weights.

One training step (the method's loss, backward, an Adam step) of ISTA-Net⁺ (``experiment=istanet_cs``: 9 phases ×
16 channels) and of the DnCNN black box (16 channels, 8 layers) on block CS 25 % (a drawn Φ), a batch of 32 crops of
33 × 33, after the linear start has settled. ``bf16-mixed`` is what ``trainer.precision=bf16-mixed`` runs: the step
under ``torch.autocast`` in bfloat16, where the convolutions take bfloat16 and the operators stay in float32
(:func:`mbdl.operators.exact`). NCHW is the networks' weights moved back to ``torch.contiguous_format``; channels-last
is how :mod:`mbdl.nets.image` stores them. Reported: the step time, blocks per second and the speed-up over float32
NCHW, taken round by round. bfloat16 is fast where the CPU has AMX or AVX-512 BF16 (``lscpu``); elsewhere it is
emulated and slower.

    .venv/bin/python scripts/bench_precision.py       # writes its section of docs/results/benchmarks.md
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from bench_harness import compare, compose_config, fmt_ratio, markdown_table, parser, ratio, report, setup_torch

NETWORKS = {
    "ISTA-Net⁺, 9 phases × 16 channels": ("experiment=istanet_cs",),
    "DnCNN, 8 layers × 16 channels": ("task=imaging", "task/operator=cs", "task.operator.ratio=25", "method=black_box", "method.channels=16"),
}
VARIANTS = {"float32, NCHW": (False, False), "float32, channels-last": (False, True), "bf16-mixed, NCHW": (True, False), "bf16-mixed, channels-last": (True, True)}


def training_step(overrides: tuple[str, ...], bf16: bool, channels_last: bool, batch: int, device: str) -> Callable[[], None]:
    """One training step of the method ``overrides`` compose to, on a fixed batch of ``batch`` 33×33 crops (drawn
    as the validation crops are)."""
    from mbdl.run import build

    cfg = compose_config(*overrides, "task.crop=33", f"task.n_val={batch}", "~logger", "seed=0")
    _, method, data, module = build(cfg)
    method.to(device)
    if not channels_last:
        method.to(memory_format=torch.contiguous_format)
    batch_data = {k: v[:batch].to(device) for k, v in data.split("val").items()}
    x, objective = batch_data["x"], module.objective(batch_data)
    optimizer = torch.optim.Adam([p for p in method.parameters() if p.requires_grad], lr=1e-4)
    method.train()
    while not method.start.ready:  # settle the linear start (Qinit) first, as training does
        method.start.observe(x, batch_data["s"])

    def step() -> None:
        optimizer.zero_grad()
        with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=bf16):
            loss = method.loss(x, objective)
        loss.backward()
        optimizer.step()

    return step


def main() -> None:
    p = parser(__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, default=32)
    args = p.parse_args()
    if args.quick:
        args.batch, args.repeats = 4, 2
    sync = setup_torch(args.device, args.threads)
    rows = []
    for name, overrides in NETWORKS.items():
        cases = {variant: training_step(overrides, bf16, last, args.batch, args.device) for variant, (bf16, last) in VARIANTS.items()}
        t = compare(cases, repeats=args.repeats, warmup=2, sync=sync)
        base = t["float32, NCHW"]
        for variant in VARIANTS:
            rows.append([name, variant, str(t[variant]), f"{args.batch / t[variant].median:.0f}", fmt_ratio(ratio(base, t[variant]))])
    headers = ["network", "precision, weight layout", "training step [spread]", "blocks / s", "speed-up over float32 NCHW [spread]"]
    body = (
        f"One training step (loss, backward, Adam) on a batch of {args.batch} blocks of 33 × 33 at block CS 25 %, "
        f"{args.repeats} interleaved rounds, device {args.device}, {args.threads} thread(s).\n\n" + markdown_table(headers, rows)
    )
    report(args, "precision", "Imaging training step: float32 vs bf16-mixed, NCHW vs channels-last", body)


if __name__ == "__main__":
    main()
