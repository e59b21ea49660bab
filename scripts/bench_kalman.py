"""Kalman filter: mbdl's batched KF against filterpy looping over trajectories, and the Ex. 5.2 training time.

1. Filtering 1000 trajectories x 100 steps of KalmanNet's canonical 2x2 model
   (``F = [[1, 1], [0, 1]]``, ``H = I``, ν = -20 dB, 1/r² = 0 dB): :func:`mbdl.algorithms.kalman.kalman_filter`
   on the whole batch against ``filterpy.kalman.KalmanFilter`` (predict/update) looping over
   trajectories and steps, interleaved in the same process, float64 both (the estimates are
   checked to agree). Goal: ≥ 100x.
2. The learned-optimizer KF on the MBDL book's Ex. 5.2 workload (1-D kinematics, the wrong
   ``V = I`` told, ``V`` learned from 20 trajectories x 200 steps, 10 epochs), as a user runs it:
   ``python -m mbdl task=tracking task/model=kinematics_1d method=learned_optimizer ...``, per-sample
   steps (batch 1, as the book's notebook) and full-batch steps. Goal: ≤ 5 s.

    .venv/bin/python scripts/bench_kalman.py          # writes its section of docs/results/benchmarks.md
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from filterpy.kalman import KalmanFilter as FilterpyKF

from bench_harness import Timing, compare, fmt_mib, fmt_ratio, markdown_table, parser, peak_memory_mib, ratio, report, run_process, setup_torch
from mbdl.algorithms.kalman import kalman_filter
from mbdl.tasks.state_space import canonical

#: the Ex. 5.2 training run; the batch size is appended.
EX52 = [
    "task=tracking",
    "task/model=kinematics_1d",
    "task.mismatch.Q_identity=true",
    "method=learned_optimizer",
    "method.learn_R=false",
    "trainer.enable_progress_bar=false",
]


def model_and_data(trajectories: int, steps: int, device: str = "cpu") -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """The canonical 2x2 model (float64) and ``(trajectories, steps, 2)`` measurements simulated from it."""
    model = canonical(2).to(torch.zeros((), dtype=torch.float64))
    _, x = model.simulate(trajectories, steps, torch.Generator().manual_seed(0))
    matrices = {name: getattr(model, name).to(device) for name in ("F", "H", "Q", "R", "s0", "P0")}
    return matrices, x.to(device)


def make_case(kind: str, trajectories: int, steps: int, device: str = "cpu") -> Callable[[], np.ndarray | torch.Tensor]:
    """``"mbdl"`` (batched) or ``"filterpy"`` (a filter per trajectory, a predict/update per step)."""
    m, x = model_and_data(trajectories, steps, device)
    if kind == "mbdl":
        return lambda: kalman_filter(x, m["F"], m["H"], m["Q"], m["R"], m["s0"], m["P0"]).s
    model = {name: value.cpu().numpy() for name, value in m.items()}
    measurements = x.cpu().numpy()

    def loop() -> np.ndarray:
        estimates = np.empty((trajectories, steps, 2))
        for i in range(trajectories):
            kf = FilterpyKF(dim_x=2, dim_z=2)
            kf.F, kf.H, kf.Q, kf.R = model["F"], model["H"], model["Q"], model["R"]
            kf.x, kf.P = model["s0"].copy(), model["P0"].copy()
            for t in range(steps):
                kf.predict()
                kf.update(measurements[i, t])
                estimates[i, t] = kf.x
        return estimates

    return loop


def filter_speed(args) -> str:  # noqa: ANN001 - argparse namespace
    sync = setup_torch(args.device, args.threads)
    trajectories, steps = (50, 20) if args.quick else (1000, 100)
    cases = {kind: make_case(kind, trajectories, steps, args.device) for kind in ("mbdl", "filterpy")}
    difference = np.abs(cases["mbdl"]().cpu().numpy() - cases["filterpy"]()).max()
    t = compare(cases, repeats=max(3, args.repeats // 2), warmup=0, sync=sync)
    peaks = {kind: peak_memory_mib(make_case, kind, trajectories, steps, args.device, device=args.device) for kind in cases}
    rows = [[kind, str(t[kind]), fmt_mib(peaks[kind])] for kind in cases]
    return (
        f"{trajectories} trajectories x {steps} steps, float64, device {args.device}; max |mbdl - filterpy| = {difference:.1e}. "
        f"**Speed-up of mbdl: {fmt_ratio(ratio(t['filterpy'], t['mbdl']))}** (goal ≥ 100x).\n\n"
        + markdown_table(["implementation", "time per filtering of the batch [spread]", "peak memory (one call)"], rows)
    )


def training_time(args) -> str:  # noqa: ANN001 - argparse namespace
    outputs = tempfile.mkdtemp(prefix="mbdl_bench_")
    env = {**os.environ, "MBDL_OUTPUTS": outputs, "WANDB_MODE": "disabled"}
    rows = []
    epochs = 1 if args.quick else 10
    batch_sizes = (1, 20)
    runs: dict[int, list[tuple]] = {b: [] for b in batch_sizes}
    for _ in range(1 if args.quick else 3):
        for batch in batch_sizes:
            overrides = [*EX52, f"method.optim.epochs={epochs}", f"method.optim.batch_size={batch}", f"threads={args.threads}"]
            if args.device.startswith("cuda"):
                overrides.append("trainer=gpu")
            process = run_process([sys.executable, "-m", "mbdl", *overrides], env=env)
            if process.returncode:
                raise RuntimeError(process.stderr[-3000:])
            record = json.loads(Path(process.stdout.split("run directory:")[-1].strip(), "metrics.json").read_text())
            runs[batch].append((record["train_time_s"], process.wall, process.peak_mib, record["test/position_mse"]))
    for batch in batch_sizes:
        train, wall, peak, mse = zip(*runs[batch])
        steps = epochs * (20 // batch)
        rows.append([f"{batch} ({steps} steps)", str(Timing(list(train))), str(Timing(list(wall))), fmt_mib(max(peak)), f"{np.median(mse):.3f}"])
    command = "python -m mbdl " + " ".join(EX52) + f" method.optim.epochs={epochs} method.optim.batch_size=B"
    return (
        f"`{command}` (fresh process per run, {len(runs[1])} rounds). Goal: training ≤ 5 s.\n\n"
        + markdown_table(["batch size B", "training time (train_time_s)", "whole process wall", "peak resident memory", "test position MSE"], rows)
    )


def main() -> None:
    args = parser(__doc__.split("\n")[0]).parse_args()
    body = "### Filtering: batched vs filterpy\n\n" + filter_speed(args)
    body += "\n\n### Learned-optimizer KF training, book Ex. 5.2 workload\n\n" + training_time(args)
    report(args, "kalman", "Kalman filter", body)


if __name__ == "__main__":
    main()
