"""Kalman filter: mbdl's batched KF against filterpy looping over trajectories, and the Ex. 5.2 training time.

1. Filtering 1000 trajectories x 100 steps of KalmanNet's canonical 2x2 model
   (``F = [[1, 1], [0, 1]]``, ``H = I``, ν = -20 dB, 1/r² = 0 dB): :func:`mbdl.algorithms.kalman.kalman_filter`
   on the whole batch against ``filterpy.kalman.KalmanFilter`` (predict/update) looping over
   trajectories and steps, interleaved in the same process, float64 both (the estimates are
   checked to agree). Goal: ≥ 100x.
2. The learned-optimizer KF on the MBDL book's Ex. 5.2 workload (1-D kinematics, the wrong
   ``V = I`` told, ``V`` learned from 20 trajectories x 200 steps, 10 epochs), as a user runs it:
   ``python -m mbdl experiment=book_learned_v method.optim.epochs=10 method.optim.batch_size=B``,
   per-sample steps (B = 1, as the book's notebook) and full-batch steps (B = 20). Goal: ≤ 5 s.
3. One training step (forward + backward through the 200-step filter) at batch 1 and 20, in
   process, with the number of tensor operations per time step (torch.profiler): what bounds
   it; and the same step with a leaner recursion proposed for ``mbdl/algorithms/kalman.py``
   (:func:`lean_kalman_filter`, here only).

Each part writes its own section (``--part filter|training|step``; default all).

    .venv/bin/python scripts/bench_kalman.py          # writes its sections of docs/results/benchmarks.md
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

from bench_harness import Timing, compare, compose_config, fmt_mib, fmt_ratio, markdown_table, parser, peak_memory_mib, ratio, report, run_process, setup_torch
from mbdl.results.record import RECORD_NAME
from mbdl.algorithms.kalman import kalman_filter
from mbdl.tasks.state_space import canonical

#: the Ex. 5.2 training run (``configs/experiment/book_learned_v.yaml``); epochs and batch size are appended.
EX52 = ["experiment=book_learned_v", "trainer.enable_progress_bar=false"]


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
            record = json.loads(Path(process.stdout.split("run directory:")[-1].strip(), RECORD_NAME).read_text())
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


def lean_kalman_filter(x: torch.Tensor, F: torch.Tensor, H: torch.Tensor, Q: torch.Tensor, R: torch.Tensor, s0: torch.Tensor, P0: torch.Tensor) -> torch.Tensor:
    r"""Proposed training-time KF for a linear model with unbatched ``F, H, Q, R, P0`` (here only).

    The same filter with fewer operations per step: the standard covariance update
    :math:`P_t = P_{t|t-1} - K_t (P_{t|t-1} H^\top)^\top` instead of the Joseph form, no
    symmetrisation, and a division instead of a linear solve when :math:`S_t` is a scalar.
    Returns the ``(b, T, n)`` posterior means.
    """
    s, P, estimates = s0.expand(x.shape[0], -1), P0, []
    for t in range(x.shape[1]):
        P = F @ P @ F.T + Q
        PHt = P @ H.T
        S = H @ PHt + R
        K = PHt / S if S.numel() == 1 else torch.linalg.solve(S, PHt.T).T
        P = P - K @ PHt.T
        s = s @ F.T
        s = s + (x[:, t] - s @ H.T) @ K.T
        estimates.append(s)
    return torch.stack(estimates, 1)


def training_step(args) -> str:  # noqa: ANN001 - argparse namespace
    """Time and count the operations of one training step of the Ex. 5.2 learned-V KF, batch 1 and 20,
    with mbdl's filter and with :func:`lean_kalman_filter`."""
    from torch.profiler import ProfilerActivity, profile

    from mbdl.run import build

    setup_torch(args.device, args.threads)
    cfg = compose_config("experiment=book_learned_v")
    task, method, data, _ = build(cfg)
    train = data.split("train")
    steps = train["x"].shape[1]
    batches = {1: {k: v[:1] for k, v in train.items()}, 20: train}
    model = task.assumed

    def lean(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return lean_kalman_filter(batch["x"], model.F, model.H, method.Q(), method.R(), model.s0, model.P0)

    filters = {"mbdl": lambda batch: method(batch["x"]), "proposed lean recursion": lean}
    with torch.no_grad():
        difference = (filters["mbdl"](train) - lean(train)).abs().max().item()

    def step(estimator: Callable, batch: dict[str, torch.Tensor]) -> None:
        method.zero_grad()
        task.supervised_loss(estimator(batch), batch["s"]).backward()

    def forward(estimator: Callable, batch: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            estimator(batch)

    cases = {
        (name, b, kind): (lambda f=f, e=e, batch=batch: f(e, batch))
        for name, e in filters.items()
        for b, batch in batches.items()
        for kind, f in (("step", step), ("forward", forward))
    }
    t = compare(cases, repeats=3 if args.quick else args.repeats, warmup=1)
    rows = []
    for name, estimator in filters.items():
        for b, batch in batches.items():
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                step(estimator, batch)
            averages = prof.key_averages()
            ops = sum(e.count for e in averages if e.key.startswith("aten::"))
            backward = sum(e.count for e in averages if e.key.startswith("autograd::engine::evaluate_function"))
            speedup = fmt_ratio(ratio(t[("mbdl", b, "step")], t[(name, b, "step")]))
            rows.append([name, b, str(t[(name, b, "step")]), speedup, str(t[(name, b, "forward")]), f"{ops / steps:.0f}", f"{backward / steps:.0f}"])
    return (
        f"In process, {steps} time steps per trajectory; a per-sample epoch is 20 such steps in sequence. The proposed lean "
        f"recursion (`lean_kalman_filter` in the script) agrees with mbdl's filter to {difference:.1e}.\n\n"
        + markdown_table(
            ["filter", "batch", "training step (forward + backward)", "step speed-up over mbdl", "forward only (no grad)", "aten ops per time step", "backward nodes per time step"],
            rows,
        )
    )


PARTS = {
    "filter": ("kalman", "Kalman filter: batched vs filterpy", filter_speed),
    "training": ("kalman_training", "Learned-optimizer KF training, book Ex. 5.2 workload", training_time),
    "step": ("kalman_step", "One training step of the learned-V KF", training_step),
}


def main() -> None:
    p = parser(__doc__.split("\n")[0])
    p.add_argument("--part", choices=[*PARTS, "all"], default="all", help="which measurement (each writes its own section)")
    args = p.parse_args()
    for part in PARTS if args.part == "all" else [args.part]:
        name, title, measure = PARTS[part]
        report(args, name, title, measure(args))


if __name__ == "__main__":
    main()
