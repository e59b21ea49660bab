"""Reproduce generative versus discriminative learning (MBDL book §5.1) and write ``docs/results/generative.md``.

Sections: ``ex51`` (book Ex. 5.1 on ``task=linear_gaussian``: the notebook's two figures, MSE vs σ at 100
training pairs and MSE vs the training size at σ = 0.3, with the right prior and with C_ss told as I, beside the
notebook's five published points) and ``tracking`` (book Ex. 5.2, V unknown), ``sparse_recovery`` (H perturbed),
``doa`` (gain/phase errors): generative (``regime=generative``) vs discriminative (the supervised learned
optimizer) vs the model-based method with the told model vs the bound, over training sizes 10..1000, a table
and a chart each. Every line is one ``python -m mbdl -m`` multirun (listed with its time); the records are kept
in ``docs/results/generative.json`` so that a section can be re-run alone. Usage::

    .venv/bin/python scripts/reproduce_generative.py [--sections ex51 tracking sparse_recovery doa] [--skip-done]
        [--quick] [--results DIR]

``--quick`` runs one seed on two sizes with small test sets (a smoke test: nothing is written unless ``--results``
names a folder).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from reproduction import ROOT, run_sweep

from mbdl.algorithms.linear_gaussian import BOOK_EX51_PUBLISHED
from mbdl.results.tables import format_value, markdown

#: where the page, its figures and the records go (``--results``).
RESULTS = ROOT / "docs" / "results"

SEEDS_51 = tuple(range(10))
SIGMAS = tuple(f"{v:.4g}" for v in np.logspace(-2, 0, 10))  # the notebook's 10 noise levels, 0.01 .. 1
SIZES_51 = tuple(int(v) for v in np.round(30 ** np.linspace(1.1, 2.2, 10)))  # 42 .. 1777, the notebook's grid
SIZES = (10, 30, 100, 300, 1000)
SEEDS = (0, 1, 2)


@dataclass(frozen=True)
class Line:
    """One curve: a multirun of ``overrides`` over ``axis`` (an override key) and the seeds."""

    label: str
    overrides: tuple[str, ...]
    axis: str
    values: tuple[Any, ...]
    seeds: tuple[int, ...]

    def command(self, quick: bool = False) -> list[str]:
        values, seeds = (self.values[:: len(self.values) - 1], self.seeds[:1]) if quick else (self.values, self.seeds)
        return [*self.overrides, f"{self.axis}={','.join(map(str, values))}", f"seed={','.join(map(str, seeds))}"]

    @property
    def key(self) -> str:
        return " ".join(self.command())


GAUSSIAN = ("task=linear_gaussian",)
#: the notebook's columns: discriminative (least squares of s on x), generative (H fitted, the MMSE rule with the told
#: prior), the MMSE estimator itself (H told exactly: its Monte-Carlo MSE, as the notebook's column), generative with C_ss told as I.
COLUMNS_51 = {
    "discriminative": ("method=black_box",),
    "generative": ("method=model_based", "regime=generative"),
    "MMSE estimator": ("method=model_based", "task.mismatch.H=0"),
    "generative, prior told as I": ("method=model_based", "regime=generative", "task.mismatch.prior_identity=true"),
}
SWEEPS_51 = {"sigma": ("regime.n_train=100", "task.noise_std", SIGMAS), "size": ("task.noise_std=0.3", "regime.n_train", SIZES_51)}
SWEEP_NAMES = {"sigma": "vs σ", "size": "vs n_t"}
EX51 = [
    Line(f"{name}, {SWEEP_NAMES[sweep]}", (*GAUSSIAN, *column, fixed), axis, values, SEEDS_51)
    for sweep, (fixed, axis, values) in SWEEPS_51.items()
    for name, column in COLUMNS_51.items()
]

BOOK_V = "experiment=book_learned_v"
#: the book's Ex. 5.2 told V = I, without the experiment's settings of the learned optimizer (for the plain KF)
V_TOLD_I = ("task=tracking", "task/model=kinematics_1d", "task.mismatch.Q_identity=true", "task.n_val=20")
SPARSE = ("task=sparse_recovery", "task.mismatch=0.3")
DOA = "experiment=doa_calibration"
#: task -> (metric, metric label, lines: label -> overrides)
TASKS: dict[str, tuple[str, str, dict[str, tuple[str, ...]]]] = {
    "tracking": (
        "position_mse",
        "position MSE",
        {
            "generative: Q from labelled trajectories (ML)": (BOOK_V, "regime=generative"),
            "generative: Q by EM, no labels": (BOOK_V, "regime=generative", "regime.loss=unsupervised"),
            "discriminative: V learned through the KF (learned optimizer)": (BOOK_V,),
            "model-based: KF told V = I": (*V_TOLD_I, "method=model_based"),
        },
    ),
    "sparse_recovery": (
        "nmse_db",
        "NMSE (dB)",
        {
            "generative: H fitted (MAP toward the told H), then ISTA": (*SPARSE, "method=learned_optimizer", "regime=generative"),
            "discriminative: ISTA with μ, θ learned (learned optimizer)": (*SPARSE, "method=learned_optimizer"),
            "model-based: ISTA with the told H": (*SPARSE, "method=model_based"),
        },
    ),
    "doa": (
        "rmspe_deg",
        "RMSPE (deg)",
        {
            "generative: gain/phase by covariance matching, then ESPRIT": (DOA, "regime=generative"),
            "discriminative: gain/phase learned through ESPRIT (learned optimizer)": (DOA,),
            "model-based: ESPRIT on the nominal array": (DOA, "method=model_based", "method.algorithm=esprit"),
        },
    ),
}
LINES = {task: [Line(label, overrides, "regime.n_train", SIZES, SEEDS) for label, overrides in lines.items()] for task, (_, _, lines) in TASKS.items()}
QUICK = {"ex51": ("task.n_test=500", "task.n_val=10"), "tracking": ("task.n_test=20", "++method.optim.epochs=2"),
         "sparse_recovery": ("task.n_test=100", "task.n_val=100", "++method.optim.epochs=2"), "doa": ("task.n_test=100", "task.n_val=100", "++method.optim.epochs=2")}


def reduce(record: dict[str, Any]) -> dict[str, Any]:
    """What the tables need of a record: seed, overrides, test/bound values, params and the fit time."""
    keep = {k: v for k, v in record.items() if k.startswith(("test/", "bound/")) or k in ("seed", "params", "train_time_s")}
    return {**keep, "overrides": dict(o.split("=", 1) for o in record["overrides"] if "=" in o)}


def run_line(line: Line, quick: bool, extra: tuple[str, ...], sweep_dir: Path) -> dict[str, Any]:
    """The multirun of ``line`` into ``sweep_dir``: its reduced records and wall time."""
    start = time.perf_counter()
    records = run_sweep([*line.command(quick), *(extra if quick else ())], sweep_dir)
    return {"records": [reduce(r) for r in records], "wall_s": time.perf_counter() - start}


def points(entry: dict[str, Any], axis: str, metric: str, kind: str = "test") -> tuple[list[float], list[float], list[float]]:
    """``x``, the mean and the std over seeds of ``kind/metric`` at every value of the swept ``axis``."""
    by: dict[float, list[float]] = {}
    for r in entry["records"]:
        by.setdefault(float(r["overrides"][axis]), []).append(r[f"{kind}/{metric}"])
    xs = sorted(by)
    return xs, [statistics.fmean(by[x]) for x in xs], [statistics.stdev(by[x]) if len(by[x]) > 1 else 0.0 for x in xs]


def command_table(lines: list[Line], store: dict[str, Any]) -> str:
    """Each line: its command, runs, wall time and mean fit (training) time per run."""
    cells = []
    for line in lines:
        entry = store.get(line.key)
        if entry is None:
            cells.append([line.label, "not run", "", "", f"`python -m mbdl -m {line.key}`"])
            continue
        fit = statistics.fmean(r["train_time_s"] for r in entry["records"])
        cells.append([line.label, str(len(entry["records"])), f"{entry['wall_s']:.0f}", format_value(fit), f"`python -m mbdl -m {line.key}`"])
    return markdown(["line", "runs", "wall time (s)", "fit/training time per run (s)", "command"], cells)


# ---------------------------------------------------------------- Ex. 5.1


def ex51_line(store: dict[str, Any], name: str, sweep: str) -> dict[str, Any] | None:
    return store.get(next(line.key for line in EX51 if line.label == f"{name}, {SWEEP_NAMES[sweep]}"))


def ex51_figures(store: dict[str, Any]) -> list[Path]:
    """The notebook's two figures, each with the right prior (left) and the prior told as I (right)."""
    paths = []
    for sweep, (fixed, axis, _) in SWEEPS_51.items():
        figure, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
        for ax, generative in zip(axes, ("generative", "generative, prior told as I")):
            for name, colour in (("discriminative", "C0"), (generative, "C1")):
                entry = ex51_line(store, name, sweep)
                if entry is not None:
                    x, mean, std = points(entry, axis, "mse")
                    ax.errorbar(x, mean, yerr=std, color=colour, marker="o", ms=3, capsize=2, label=f"{name} (ours, mean ± std, {len(SEEDS_51)} seeds)")
            entry = ex51_line(store, "MMSE estimator", sweep)
            if entry is not None:
                x, bound, _ = points(entry, axis, "mse", "bound")
                ax.plot(x, bound, "k--", label="MMSE, true model (closed form: the bound)")
            column = {"discriminative": 0, "generative": 1, "generative, prior told as I": 3}
            for (n_train, sigma), published in BOOK_EX51_PUBLISHED.items():
                on = (sweep == "sigma" and n_train == 100) or (sweep == "size" and sigma == 0.3)
                if on:
                    where = sigma if sweep == "sigma" else n_train
                    ax.plot([where], [published[column["discriminative"]]], "x", color="C0", ms=8, mew=2)
                    ax.plot([where], [published[column[generative]]], "x", color="C1", ms=8, mew=2)
                    ax.plot([where], [published[2]], "x", color="k", ms=8, mew=2)
            ax.plot([], [], "x", color="0.3", ms=8, mew=2, label="the notebook's run (published points)")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("noise std σ (100 training pairs)" if sweep == "sigma" else "training pairs n_t (σ = 0.3)")
            ax.set_title("prior C_ss told correctly" if generative == "generative" else "prior told as I (mismatch)")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=7)
        axes[0].set_ylabel("test MSE (sum over the 30 entries)")
        figure.tight_layout()
        path = RESULTS / f"generative_ex51_mse_vs_{'sigma' if sweep == 'sigma' else 'training_size'}.png"
        figure.savefig(path, dpi=80)
        plt.close(figure)
        paths.append(path)
    return paths


def ex51_table(store: dict[str, Any]) -> str:
    """Ours (mean ± std over seeds, one training and test set each) beside the notebook's single run, at its five points."""
    cells = []
    for (n_train, sigma), published in BOOK_EX51_PUBLISHED.items():
        sweep, axis, at = ("size", "regime.n_train", n_train) if sigma == 0.3 else ("sigma", "task.noise_std", sigma)
        row = [f"n_t = {n_train}, σ = {sigma}"]
        bound = None
        for name, value in zip(COLUMNS_51, published):
            entry = ex51_line(store, name, sweep)
            runs = [r["test/mse"] for r in (entry or {"records": []})["records"] if np.isclose(float(r["overrides"][axis]), at)]
            if not runs:
                row.append(f"not run / {value}")
                continue
            bound = next(r["bound/mse"] for r in entry["records"] if np.isclose(float(r["overrides"][axis]), at))
            mean, std = statistics.fmean(runs), statistics.stdev(runs) if len(runs) > 1 else float("nan")
            rounding = 5e-5 if sigma < 0.1 else 5e-4  # half the notebook's last printed digit (4 or 3 decimals)
            z = (value - mean) / (std**2 + rounding**2 / 3) ** 0.5  # its rounding error: uniform, variance r²/3
            digits = 5 if sigma < 0.1 else 3
            row.append(f"{mean:.{digits}f} ± {std:.{digits}f} / {value} ({z:+.1f}σ)")
        row.append("" if bound is None else f"{bound:.4f}")
        cells.append(row)
    return markdown(["point", *(f"{name} (ours / notebook)" for name in COLUMNS_51), "MMSE closed form (bound)"], cells)


def ex51_section(store: dict[str, Any]) -> str:
    figures = ex51_figures(store)
    return f"""## Book Ex. 5.1: linear Gaussian, n = m = 30 (`task=linear_gaussian`)

The notebook's setup (`s ~ N(0, toeplitz(0.2 e^-k))`, `x = H s + w`, its `H`: `np.random.seed(12); randn(30, 30)`),
10 000 test draws per run, MSE summed over the 30 entries. The methods are told μ_s, C_ss (or I) and σ; generative
learning fits H and the measurement mean by least squares and runs the MMSE rule with the told prior
(`method=model_based regime=generative`); discriminative learning is the least-squares fit of s on x,
Ĉ_sx Ĉ_xx⁻¹ (x − x̄) + s̄ (`method=black_box`, a linear layer fitted in closed form). The notebook's column "MMSE" is
the Monte-Carlo MSE of the MMSE estimator on its test draws: here `method=model_based task.mismatch.H=0` (H told
exactly); the bound is the closed form. Each cell: our mean ± std over {len(SEEDS_51)} seeds (each one training and one
test set, as one run of the notebook) / the notebook's value (its single run, printed to 3 or 4 decimals), and
(notebook − mean)/σ with σ² = std² + the variance of that rounding.

{ex51_table(store)}
![MSE vs σ, the notebook's figure 1]({figures[0].name})
![MSE vs training size, the notebook's figure 2]({figures[1].name})

{command_table(EX51, store)}"""


# ---------------------------------------------------------------- tracking, sparse recovery, DoA


def task_chart(task: str, store: dict[str, Any]) -> Path:
    metric, ylabel, _ = TASKS[task]
    figure, ax = plt.subplots(figsize=(7, 4))
    bound = None
    for i, line in enumerate(LINES[task]):
        entry = store.get(line.key)
        if entry is None:
            continue
        x, mean, std = points(entry, "regime.n_train", metric)
        ax.errorbar(x, mean, yerr=std, color=f"C{i}", marker="o", ms=3, capsize=2, label=line.label)
        bound = points(entry, "regime.n_train", metric, "bound")
    if bound is not None:
        ax.plot(bound[0], bound[1], "k--", label="bound")
    ax.set_xscale("log")
    if metric == "position_mse" or metric == "rmspe_deg":
        ax.set_yscale("log")
    ax.set_xlabel("training trajectories (200 steps each)" if task == "tracking" else "training samples (labelled pairs)")
    ax.set_ylabel(f"test {ylabel}, mean ± std over {len(SEEDS)} seeds")
    ax.grid(True, which="both", alpha=0.3)
    if bound is not None:
        ax.legend(fontsize=7)
    figure.tight_layout()
    path = RESULTS / f"generative_{task}_data_efficiency.png"
    figure.savefig(path, dpi=80)
    plt.close(figure)
    return path


TASK_NOTES = {
    "tracking": "Book Ex. 5.2 (`experiment=book_learned_v`: 1-D kinematics, 200 steps, the methods told V = I, R known); "
    "bound: the KF with the true model (full knowledge) on the same test trajectories. The book: 0.24 full knowledge, "
    "1.42 with V = I, 0.44 with V learned from 20 trajectories.",
    "sparse_recovery": "`task=sparse_recovery task.mismatch=0.3` (150 × 200, k = 4, σ = 0.01; the methods told H + 0.3 E, "
    "E_ij ~ N(0, 1/150)); ISTA with 100 iterations, λ = 0.01; the generative fit of H is ridge least squares toward the told "
    "H with ρ = 0.1 (`method.ridge`, about the MAP weight σ²n/ε² = 0.17 of this perturbation); bound: oracle least squares "
    "on the true support with the true H.",
    "doa": "`experiment=doa_calibration` (N = 8, M = 3, T = 200, 20 dB, DoAs in ±60°; the true array has gain errors "
    "η = 0.2 and phase errors η = 0.3 rad, the methods are told the nominal ULA); bound: the stochastic CRB on the true array.",
}


def task_table(task: str, store: dict[str, Any]) -> str:
    metric, label, _ = TASKS[task]
    cells, bound = [], {}
    for line in LINES[task]:
        entry = store.get(line.key)
        if entry is None:
            cells.append([line.label, *("not run" for _ in SIZES)])
            continue
        x, mean, std = points(entry, "regime.n_train", metric)
        by = dict(zip(x, zip(mean, std)))
        cells.append([line.label, *(format_value(*by[n]) if n in by else "" for n in SIZES)])
        bound.update(dict(zip(*points(entry, "regime.n_train", metric, "bound")[:2])))
    cells.append(["bound", *(format_value(bound.get(n)) for n in SIZES)])
    return markdown([f"test {label} at n_train =", *map(str, SIZES)], cells)


def task_section(task: str, store: dict[str, Any]) -> str:
    chart = task_chart(task, store)
    return f"""## {task}: generative vs discriminative vs the bound

{TASK_NOTES[task]} Mean ± std over seeds {', '.join(map(str, SEEDS))}.

{task_table(task, store)}
![{task}: data efficiency]({chart.name})

{command_table(LINES[task], store)}"""


SECTIONS = {"ex51": EX51, **LINES}


def write(store: dict[str, Any]) -> None:
    """``generative.md`` and its figures in :data:`RESULTS`, from every stored line."""
    header = (
        "# Generative versus discriminative learning: results\n\n"
        "Written by `.venv/bin/python scripts/reproduce_generative.py` (see [../generative.md](../generative.md)); each line "
        "is the `python -m mbdl -m` multirun shown (plus `threads=1 ~logger trainer.enable_progress_bar=false`, the basic "
        f"launcher: one process). Machine: {platform.machine()}, {os.cpu_count()} cores shared with other jobs, one torch "
        f"thread per run; last written {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.\n\n"
    )
    body = [ex51_section(store), *(task_section(task, store) for task in LINES)]
    (RESULTS / "generative.md").write_text(header + "\n".join(body))


def main() -> None:
    global RESULTS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", nargs="+", choices=list(SECTIONS), default=list(SECTIONS))
    parser.add_argument("--skip-done", action="store_true", help="skip the lines already in generative.json")
    parser.add_argument("--quick", action="store_true", help="one seed, two sizes, small test sets; nothing is written unless --results is given")
    parser.add_argument("--results", type=Path, default=None, help="folder of generative.md, its figures and generative.json (default: docs/results)")
    args = parser.parse_args()
    RESULTS = args.results or RESULTS
    RESULTS.mkdir(parents=True, exist_ok=True)
    keep = not args.quick or args.results is not None
    records = RESULTS / "generative.json"
    store = json.loads(records.read_text()) if records.exists() else {}
    with tempfile.TemporaryDirectory(prefix="mbdl_generative_") as scratch:
        for section in args.sections:
            for index, line in enumerate(SECTIONS[section]):
                if args.skip_done and line.key in store:
                    continue
                entry = run_line(line, args.quick, QUICK[section], Path(scratch) / f"{section}_{index}")
                print(f"{section}: {line.label}: {len(entry['records'])} runs in {entry['wall_s']:.0f} s", flush=True)
                if keep:  # re-read: another invocation (other sections) may have added lines meanwhile
                    store = json.loads(records.read_text()) if records.exists() else {}
                    store[line.key] = entry
                    records.write_text(json.dumps(store, indent=1))
                    write(store)
    if keep:
        write(json.loads(records.read_text()) if records.exists() else {})


if __name__ == "__main__":
    main()
