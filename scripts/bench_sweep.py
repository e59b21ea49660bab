"""The spectrum sweep end to end: every (task, method) as one multirun, basic vs joblib launcher.

``python -m mbdl -m task=T method=<its methods> threads=1 ...`` for the tasks and methods that have a
``configs/spectrum/<task>/<method>.yaml`` (a missing one is reported), once with Hydra's basic
launcher (all jobs in one process, one after the other) and once with the joblib launcher
(``hydra/launcher=joblib hydra.launcher.n_jobs=2``: two worker processes, one per core),
interleaved. Reported: wall time of the whole sweep, the sum over jobs of the time in the method
(``train_time_s`` + test inference), the peak resident memory of the whole process tree, and
failed jobs. ``--epochs N`` caps every method's epochs (the quick sweep); without it the methods
run at their defaults (the whole spectrum sweep). Goal: the whole spectrum sweep ≤ 5 min.

    .venv/bin/python scripts/bench_sweep.py --epochs 1      # the quick sweep (15 jobs)
    .venv/bin/python scripts/bench_sweep.py                 # the whole spectrum sweep
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import yaml

from bench_harness import ROOT, Timing, fmt_mib, fmt_seconds, markdown_table, parser, report, run_process
from mbdl.results.record import CONFIG_PATH, RECORD_NAME

TASKS = ("sparse_recovery", "tracking", "doa")
METHODS = ("model_based", "black_box", "learned_optimizer", "unfolded", "dnn_aided")
LAUNCHERS = {"basic": [], "joblib (n_jobs=2)": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]}


def available() -> tuple[dict[str, list[str]], list[str]]:
    """Methods with a spectrum config, per task, and the ``task/method`` pairs that have none."""
    found = {task: [m for m in METHODS if (ROOT / "configs" / "spectrum" / task / f"{m}.yaml").exists()] for task in TASKS}
    missing = [f"{task}/{m}" for task in TASKS for m in METHODS if m not in found[task]]
    return {task: methods for task, methods in found.items() if methods}, missing


def sweep_commands(methods: dict[str, list[str]], launcher: list[str], epochs: int | None, device: str) -> list[list[str]]:
    """One multirun per distinct method list (a single one when every task has every method)."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for task, names in methods.items():
        groups.setdefault(tuple(names), []).append(task)
    extra = [f"++method.optim.epochs={epochs}"] if epochs is not None else []
    extra += ["trainer=gpu"] if device.startswith("cuda") else []
    return [
        [sys.executable, "-m", "mbdl", "-m", f"task={','.join(tasks)}", f"method={','.join(names)}", "threads=1", "trainer.enable_progress_bar=false", *launcher, *extra]
        for names, tasks in groups.items()
    ]


def run_sweep(commands: list[list[str]], timeout: float) -> dict:
    """Run the multiruns one after the other; wall time, peak memory and the jobs' records."""
    outputs = tempfile.mkdtemp(prefix="mbdl_sweep_")
    env = {**os.environ, "MBDL_OUTPUTS": outputs, "WANDB_MODE": "disabled"}
    wall, peak, errors = 0.0, 0.0, []
    for command in commands:
        process = run_process(command, env=env, timeout=max(timeout - wall, 1.0))
        wall += process.wall
        peak = max(peak, process.peak_mib)
        if process.returncode < 0:
            errors.append(f"killed at the {timeout:.0f} s timeout")
        elif process.returncode:
            errors.append(f"exit {process.returncode}: {process.stderr.strip().splitlines()[-1] if process.stderr.strip() else ''}")
    records = []
    for path in Path(outputs).rglob(RECORD_NAME):
        config = yaml.safe_load((path.parent / CONFIG_PATH).read_text())
        records.append({**json.loads(path.read_text()), "n_test": config["task"]["n_test"]})
    return {"wall": wall, "peak": peak, "records": records, "errors": errors}


def method_seconds(record: dict) -> float:
    """Time a job spent in its method: training plus test inference."""
    infer = record.get("infer_ms_per_sample", 0.0) * record["n_test"] / 1e3
    return record.get("train_time_s", 0.0) + infer


def main() -> None:
    p = parser(__doc__.split("\n")[0])
    p.set_defaults(repeats=1)
    p.add_argument("--epochs", type=int, default=None, help="cap every method's epochs (quick sweep); default: the methods' own")
    p.add_argument("--timeout", type=float, default=900, help="seconds after which a sweep is killed")
    p.add_argument("--launcher", choices=[*LAUNCHERS, "both"], default="both", help="measure one launcher only")
    args = p.parse_args()
    launchers = LAUNCHERS if args.launcher == "both" else {args.launcher: LAUNCHERS[args.launcher]}
    methods, missing = available()
    if args.quick:
        methods, args.epochs = {"sparse_recovery": methods["sparse_recovery"][:2]}, 1
    results: dict[str, list[dict]] = {name: [] for name in launchers}
    for _ in range(args.repeats):
        for name, launcher in launchers.items():
            results[name].append(run_sweep(sweep_commands(methods, launcher, args.epochs, args.device), args.timeout))
    jobs = sum(len(m) for m in methods.values())
    rows = []
    for name, runs in results.items():
        wall = Timing([r["wall"] for r in runs])
        ok = [sum(rec.get("status") == "ok" for rec in r["records"]) for r in runs]
        inside = Timing([sum(method_seconds(rec) for rec in r["records"]) for r in runs])
        slowest = max(runs[-1]["records"], key=method_seconds, default={})
        rows.append(
            [
                name,
                str(wall),
                f"{min(ok)}/{jobs}",
                str(inside),
                f"{slowest.get('task')}/{slowest.get('method')} {fmt_seconds(method_seconds(slowest))}" if slowest else "-",
                fmt_mib(max(r["peak"] for r in runs)),
                "; ".join(e for r in runs for e in r["errors"]) or "-",
            ]
        )
    commands = "<br>".join(f"`{' '.join(['python', *c[1:]])}`" for c in sweep_commands(methods, ["<launcher>"], args.epochs, args.device))
    label = f"epochs capped at {args.epochs}" if args.epochs is not None else "every method at its default epochs"
    body = (
        f"{jobs} jobs ({label}), {args.repeats} round(s), launchers interleaved; 2 cores. Commands (`<launcher>`: nothing for basic, "
        f"`hydra/launcher=joblib hydra.launcher.n_jobs=2` for joblib):<br>{commands}\n\n"
        f"Missing (no `configs/spectrum/<task>/<method>.yaml`): {', '.join(missing) or 'none'}.\n\n"
        + markdown_table(["launcher", "sweep wall [spread]", "jobs ok", "sum of time in the methods", "slowest job (in its method)", "peak memory (process tree)", "errors"], rows)
    )
    key = ("sweep_quick" if args.epochs is not None else "sweep_full") + ("" if args.launcher == "both" else f"_{args.launcher}")
    report(args, key, f"Spectrum sweep, {label}", body)


if __name__ == "__main__":
    main()
