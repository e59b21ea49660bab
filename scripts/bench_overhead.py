"""Framework overhead of one quick run: where the wall time of ``python -m mbdl ...`` goes.

Each run is a fresh ``python -m mbdl`` process (launched through this script's ``--child`` mode)
in which the imports are timed one by one and the functions the time passes through are
wrapped by an *exclusive* timer (time inside a wrapped call minus the wrapped calls it makes):
the method's own compute (training/validation/test steps, backward, the Adam update), the
task's metric and bound, data simulation and batching, Lightning's Trainer setup and loops,
``self.log``, the CSV logger, the run record, and Hydra (the rest of ``main``). The share
*outside the method* is everything but the method's compute and the task's metric/bound.

    .venv/bin/python scripts/bench_overhead.py        # writes its section of docs/results/benchmarks.md
"""

from __future__ import annotations

import time

_T0 = time.time()  # the child's first instruction (interpreter start-up ends here)

import gc  # noqa: E402
import importlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import runpy  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from collections import defaultdict  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

from bench_harness import ROOT, Timing, fmt_mib, fmt_share, markdown_table, parser, report  # noqa: E402

#: the quick runs measured: label -> ``python -m mbdl`` overrides. ``+gc.unfreeze`` marks the same
#: run with ``gc.unfreeze()`` once ``main`` returns, undoing the ``gc.freeze()`` of ``mbdl.__main__``
#: (which skips the interpreter's final collection): what that line saves.
RUNS = {
    "ISTA (model_based, 100 iterations, no training)": ["method=model_based"],
    "ISTA (model_based), without gc.freeze() at exit": ["method=model_based", "+gc.unfreeze"],
    "LISTA (unfolded, 5 layers, 10 epochs)": ["method=unfolded", "method.optim.epochs=10"],
    "LISTA (unfolded, 5 layers, 100 epochs: default)": ["method=unfolded"],
}
UNFREEZE = "+gc.unfreeze"
COMMON = ["trainer.enable_progress_bar=false"]

#: phases counted as the method's own work; everything else is framework overhead.
METHOD_PHASES = ("method: forward, loss, backward, Adam update", "task: metric and bound")


class ExclusiveTimer:
    """Accumulates, per label, the time spent inside wrapped calls minus the wrapped calls they make."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._stack: list[list[float]] = []  # [start, time in wrapped callees]

    def wrap(self, owner: object, name: str, label: str) -> None:
        original: Callable = getattr(owner, name)
        timer = self

        def wrapper(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202 - transparent wrapper
            frame = [time.perf_counter(), 0.0]
            timer._stack.append(frame)
            try:
                return original(*args, **kwargs)
            finally:
                inclusive = time.perf_counter() - frame[0]
                timer._stack.pop()
                timer.seconds[label] += inclusive - frame[1]
                if timer._stack:
                    timer._stack[-1][1] += inclusive

        setattr(owner, name, wrapper)


def child(out: str, overrides: list[str]) -> None:
    """Run ``python -m mbdl OVERRIDES`` in this process with every phase timed; write them to ``out``."""
    imports = {}
    for modules in (("torch",), ("lightning",), ("hydra", "omegaconf"), ("mbdl.run",)):
        start = time.perf_counter()
        for module in modules:
            __import__(module)
        imports["import " + ", ".join(modules)] = time.perf_counter() - start
    import lightning as L
    from lightning.pytorch.loggers import CSVLogger

    import mbdl.results.record
    import mbdl.run
    import mbdl.training.data
    import mbdl.training.module

    timer = ExclusiveTimer()
    method = METHOD_PHASES[0]
    Experiment = mbdl.training.module.Experiment
    for name in ("training_step", "validation_step", "test_step", "backward"):
        timer.wrap(Experiment, name, method)
    timer.wrap(importlib.import_module("torch.optim.adam"), "adam", method)
    timer.wrap(Experiment, "on_test_epoch_end", METHOD_PHASES[1])
    timer.wrap(L.LightningModule, "log", "Lightning self.log")
    timer.wrap(mbdl.training.data.SimulatedData, "split", "data: simulate")
    timer.wrap(mbdl.training.data.BatchDataset, "__getitems__", "data: batching")
    timer.wrap(mbdl.run, "build", "build task, method, data module")
    timer.wrap(L.Trainer, "__init__", "Lightning Trainer setup")
    timer.wrap(L.Trainer, "fit", "Lightning fit loop (rest)")
    timer.wrap(L.Trainer, "test", "Lightning test loop (rest)")
    for name in ("log_metrics", "save", "finalize"):
        timer.wrap(CSVLogger, name, "CSV logger")
    timer.wrap(mbdl.results.record, "write_record", "run record (metrics.json)")
    timer.wrap(mbdl.run, "run", "runner glue (seed, loggers, figure)")
    timer.wrap(runpy, "run_module", "Hydra: compose, run dir, job logging, summary")
    sys.argv = ["mbdl", *(o for o in overrides if o != UNFREEZE)]
    try:
        runpy.run_module("mbdl", run_name="__main__", alter_sys=True)  # as `python -m mbdl`
    except SystemExit as error:
        if error.code not in (None, 0):
            raise
    if UNFREEZE in overrides:
        gc.unfreeze()  # the exit-time collection walks every object again
    record = {
        "start": _T0,
        "end": time.time(),
        "imports": imports,
        "phases": dict(timer.seconds),
        "peak_rss_mib": int(Path("/proc/self/status").read_text().split("VmHWM:")[1].split()[0]) / 1024,
    }
    Path(out).write_text(json.dumps(record))


def measure(overrides: list[str], outputs: str) -> dict:
    """One run in a fresh process: its phases, with interpreter start-up and shutdown from the outside."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = f.name
    env = {**os.environ, "MBDL_OUTPUTS": outputs, "WANDB_MODE": "disabled"}
    start = time.time()
    subprocess.run([sys.executable, __file__, "--child", out, "--", *overrides], check=True, env=env, cwd=ROOT, capture_output=True)
    wall = time.time() - start
    record = json.loads(Path(out).read_text())
    os.unlink(out)
    phases = {"Python start-up": record["start"] - start, **record["imports"], **record["phases"], "interpreter shutdown": start + wall - record["end"]}
    return {"wall": wall, "phases": phases, "peak_rss_mib": record["peak_rss_mib"]}


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        return child(sys.argv[2], sys.argv[4:])
    p = parser(__doc__.split("\n")[0])
    p.set_defaults(repeats=3)
    args = p.parse_args()
    runs = dict(list(RUNS.items())[:3]) if args.quick else RUNS
    if args.quick:
        args.repeats = 1
    device = ["trainer=gpu"] if args.device.startswith("cuda") else []
    outputs = tempfile.mkdtemp(prefix="mbdl_bench_")
    results: dict[str, list[dict]] = {label: [] for label in runs}
    for r in range(args.repeats):  # interleaved rounds
        for label, overrides in runs.items():
            results[label].append(measure([*overrides, *COMMON, *device, f"threads={args.threads}"], outputs))
    sections = []
    for label, overrides in runs.items():
        rounds = results[label]
        wall = Timing([m["wall"] for m in rounds])
        outside = Timing([1 - sum(m["phases"].get(k, 0.0) for k in METHOD_PHASES) / m["wall"] for m in rounds])
        names = list(rounds[0]["phases"])
        rows = []
        for name in names:
            t = Timing([m["phases"].get(name, 0.0) for m in rounds])
            share = Timing([m["phases"].get(name, 0.0) / m["wall"] for m in rounds])
            rows.append([name, str(t), fmt_share(share)])
        unaccounted = Timing([m["wall"] - sum(m["phases"].values()) for m in rounds])
        rows.append(["(not attributed)", str(unaccounted), fmt_share(Timing([u / m["wall"] for u, m in zip(unaccounted.samples, rounds)]))])
        command = " ".join(["python -m mbdl", *(o for o in overrides if o != UNFREEZE), *COMMON])
        peak = max(m["peak_rss_mib"] for m in rounds)
        sections.append(
            f"### {label}\n\n`{command}`: wall {wall}; **outside the method: {fmt_share(outside)}**; "
            f"peak resident memory of the process {fmt_mib(peak)}.\n\n" + markdown_table(["phase (exclusive time)", "time [spread]", "share of wall"], rows)
        )
    body = f"{args.repeats} interleaved rounds of fresh processes, medians [min-max].\n\n" + "\n\n".join(sections)
    report(args, "overhead", "Framework overhead of one quick run", body)


if __name__ == "__main__":
    main()
