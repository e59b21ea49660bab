"""Reproduce the ultrasound experiments and write ``docs/results/ultrasound.md`` (with ``ultrasound.json`` and figures).

Sections: ``clutter`` (clutter removal on 16 × 16 × 20 patches: the SVD filter, RPCA by FISTA, the learned
optimizer, CORONA with 1, 2, 3, 5 and 10 layers, the DNN-aided RPCA and the Res3dC black box) and ``ulm``
(localization microscopy at three bubble densities: FISTA with 10 and 100 iterations, learned ISTA, the learned
convolutional ISTA with 10 layers, the neural proximal gradient and the Deep-ULM-style black box). Every row is one
``python -m mbdl`` command, listed in the table; its record is kept in ``docs/results/ultrasound.json`` so that rows
can be re-run alone. Rows marked "on validation" first run their grid (one multirun, ``task.n_test=1``: the one test
sample those runs also score is never looked at) and keep the best validation score (ULM: F1, ties broken by the
NMSE; clutter: NMSE of S).
Usage::

    .venv/bin/python scripts/reproduce_ultrasound.py [--sections clutter ulm] [--match TEXT ...] [--skip-done] [--quick]

``--match`` runs only the rows whose "group: label" contains one of the texts (e.g. ``'density 130'``).
``--quick`` runs every selected row on tiny data sets for one epoch, grids cut to two values, and prints the
tables (a smoke test; nothing under docs/ is written).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from reproduction import JOB_OPTIONS, ROOT, figure_path, fmt, montage, reference, row_folder, run_job, run_sweep  # noqa: E402

from mbdl.results.tables import markdown  # noqa: E402

RESULTS = ROOT / "docs" / "results"
NAME = "ultrasound"
#: the reduced settings on 2 CPU cores (CORONA: 2400 training / 800 validation patches of 32 × 32 × 20, 50 epochs).
CLUTTER = ("task=clutter", "task.shape=[16,16]", "task.n_train=400")
DEPTHS = (1, 2, 3, 5, 10)
DENSITIES = (50.0, 130.0, 300.0)
ULM_TRAIN = 500
#: ULM's trained rows: fresh simulations in every batch (500 an epoch; at 50/cm² an image holds ~1.8 bubbles, so a
#: fixed set of 500 is ~900 bubbles) for 40 epochs, chosen on validation at 50/cm² for the unfolded network at lr 1
#: (validation F1: fixed 500 for 20 epochs 0.903, fresh for 20 epochs 0.916, for 40 epochs 0.951).
ULM_TRAINED = ("regime.fresh_data=true", "method.optim.epochs=40")
FISTA_GRID = {"method.lam": (0.1, 0.3, 1.0, 3.0, 10.0, 30.0)}
UNFOLDED_LR = {"method.optim.lr": (0.1, 0.3, 1.0)}
#: clutter's trained rows: the learning rate on validation (CORONA's 2e-3 is the top of the networks' grid: on these
#: patches it leaves CORONA's ISTA start worse after every epoch, docs/ultrasound.md); the learned optimizer trains
#: three thresholds of order 1, the networks ~10³-10⁴ weights.
NET_LR = {"method.optim.lr": (2e-4, 6e-4, 2e-3)}
THRESHOLD_LR = {"method.optim.lr": (1e-3, 1e-2, 1e-1)}
#: CORONA with the sparse update reading the new L, started as alternating minimisation (step 1) at the λ's whose
#: 10 untrained iterations were best on a separate simulator draw (not the test set) among λ_L 1, 3, 10 × λ_S 0.1, 0.3.
GAUSS_SEIDEL = "CORONA (unfolded), Gauss–Seidel"
GAUSS_SEIDEL_START = ("method.order=gauss_seidel", "method.step=1.0", "method.lam_low_rank=10", "method.lam_sparse=0.3")

#: (section, group, label, overrides, grid searched on validation: option -> values, or {})
Row = tuple[str, str, str, tuple[str, ...], dict[str, tuple]]


def ulm_task(density: float) -> tuple[str, ...]:
    return ("task=ulm", f"task.n_train={ULM_TRAIN}", f"task.density={density:g}")


def all_rows() -> list[Row]:
    rows: list[Row] = [
        ("clutter", "clutter", "SVD filter, rank on validation", (*CLUTTER, "method=model_based", "method.algorithm=svd"), {"method.rank": (1, 2, 3, 4, 5, 6, 8)}),
        ("clutter", "clutter", "RPCA, FISTA 100 it., λ_L, λ_S on validation", (*CLUTTER, "method=model_based"), {"method.lam_low_rank": (1.0, 3.0, 10.0), "method.lam_sparse": (0.03, 0.1, 0.3)}),
        ("clutter", "clutter", "learned optimizer: RPCA-FISTA 10 it., shared μ, λ_L, λ_S trained, lr on validation", (*CLUTTER, "method=learned_optimizer"), THRESHOLD_LR),
        *[("clutter", "clutter", f"CORONA (unfolded), {d} layer{'s' if d > 1 else ''}, lr on validation", (*CLUTTER, "method=unfolded", f"method.iterations={d}"), NET_LR) for d in DEPTHS],
        *[("clutter", "clutter", f"{GAUSS_SEIDEL}, {d} layer{'s' if d > 1 else ''}, lr on validation", (*CLUTTER, "method=unfolded", f"method.iterations={d}", *GAUSS_SEIDEL_START), NET_LR) for d in DEPTHS],
        ("clutter", "clutter", "DNN-aided: RPCA 10 it., CNN sparse prox, lr on validation", (*CLUTTER, "method=dnn_aided"), NET_LR),
        ("clutter", "clutter", "Res3dC (black box), lr on validation", (*CLUTTER, "method=black_box"), NET_LR),
    ]
    for density in DENSITIES:
        group, task = f"density {density:g}/cm²", ulm_task(density)
        rows += [
            ("ulm", group, "FISTA, 10 it., λ on validation", (*task, "method=model_based", "method.iterations=10"), FISTA_GRID),
            ("ulm", group, "FISTA, 100 it., λ on validation", (*task, "method=model_based", "method.iterations=100"), FISTA_GRID),
            ("ulm", group, "learned ISTA: 10 it., shared step and threshold", (*task, "method=learned_optimizer", *ULM_TRAINED), {}),
            ("ulm", group, "learned convolutional ISTA (unfolded), 10 layers, lr on validation", (*task, "method=unfolded", *ULM_TRAINED), UNFOLDED_LR),
            ("ulm", group, "neural proximal gradient (DNN-aided), 5 it.", (*task, "method=dnn_aided", *ULM_TRAINED), {}),
            ("ulm", group, "Deep-ULM-style sub-pixel CNN (black box)", (*task, "method=black_box", *ULM_TRAINED), {}),
        ]
    # CORONA and Res3dC with three times the epochs (is the gap to RPCA-FISTA the training budget?)
    rows += [
        ("clutter", "clutter", "CORONA (unfolded), 10 layers, 30 epochs", (*CLUTTER, "method=unfolded", "method.iterations=10", "method.optim.epochs=30"), {}),
        ("clutter", "clutter", "Res3dC (black box), 30 epochs", (*CLUTTER, "method=black_box", "method.optim.epochs=30"), {}),
    ]
    return rows


QUICK = ("task.n_train=16", "task.n_val=8", "task.n_test=8", "++method.optim.epochs=1")
#: the validation score of each section and whether higher is better, then the score that breaks its ties.
SCORE = {"clutter": (("val/nmse_s_db", False),), "ulm": (("val/f1", True), ("val/nmse_db", False))}


def key(overrides: tuple[str, ...]) -> str:
    return " ".join(overrides)


def grid_choice(section: str, overrides: tuple[str, ...], grid: dict[str, tuple], scratch: Path, quick: bool) -> dict:
    """Run the grid on validation (one multirun) and return the chosen values and every value's score."""
    values = {option: vals[:2] if quick else vals for option, vals in grid.items()}
    sweep = [*overrides, *(f"{o}={','.join(map(str, v))}" for o, v in values.items()), "seed=0", "task.n_test=1", *(QUICK if quick else ())]
    records = run_sweep(sweep, scratch / "grid")
    scores = SCORE[section]

    def chosen(record: dict) -> dict[str, str]:
        return dict(o.split("=", 1) for o in record["overrides"] if o.split("=", 1)[0] in grid)

    best = max(records, key=lambda r: tuple(r[metric] if higher else -r[metric] for metric, higher in scores))
    return {"chosen": chosen(best), "val_by_choice": {" ".join(f"{o}={v}" for o, v in chosen(r).items()): [r[metric] for metric, _ in scores] for r in records}}


def run_row(section: str, overrides: tuple[str, ...], grid: dict[str, tuple], scratch: Path, quick: bool) -> dict:
    """One row: (the grid on validation, then) the command; the record with the load before and after."""
    chosen = grid_choice(section, overrides, grid, scratch, quick) if grid else {}
    final = (*overrides, *(f"{o}={v}" for o, v in chosen.get("chosen", {}).items()))
    load_before = os.getloadavg()
    record = run_job([*final, *(QUICK if quick else ())], scratch / "row")
    record.update(chosen, load_before=load_before, load_after=os.getloadavg(), command=key(overrides), figure=figure_path(scratch / "row"))
    return record


def keep(record: dict) -> dict:
    """The parts of a record the tables use."""
    wanted = ("params", "train_time_s", "epochs_trained", "infer_ms_per_sample", "chosen", "val_by_choice", "load_before", "load_after", "command", "reference_names", "figure", "torch_threads")
    return {k: v for k, v in record.items() if k.startswith(("test/", "reference/", "bound/", "val/", "calibration/")) or k in wanted}


def command(overrides: tuple[str, ...], grid: dict[str, tuple], record: dict | None) -> str:
    text = f"`python -m mbdl {key(overrides)}`"
    if grid:
        text += " with " + ", ".join(f"{o} from {list(v)}" for o, v in grid.items()) + " on validation"
        if record is not None:
            text += " (chose " + ", ".join(f"{o}={v}" for o, v in record["chosen"].items()) + ")"
    return text


def cost(record: dict) -> list[str]:
    load = f"{record['load_before'][0]:.1f} → {record['load_after'][0]:.1f}"
    return [str(record["params"]), f"{record['train_time_s']:.0f}", str(record.get("epochs_trained", "-")), load]


def clutter_table(records: dict) -> str:
    header = ["method", "NMSE S (dB)", "NMSE L (dB)", "CNR (dB)", "CORONA's loss", "val NMSE S (dB)", "params", "train time (s)", "epochs", "load (1-min avg) before → after", "command"]
    cells, bound = [], None
    for _, _, label, overrides, grid in (r for r in all_rows() if r[0] == "clutter"):
        r = records.get(key(overrides))
        if r is None:
            cells.append([label, "not run", "", "", "", "", "", "", "", "", command(overrides, grid, None)])
            continue
        bound = r
        cells.append([label, fmt(r["test/nmse_s_db"]), fmt(r["test/nmse_l_db"]), fmt(r["test/cnr_db"]), f"{r['test/corona_loss']:.3g}", fmt(r["val/nmse_s_db"]), *cost(r), command(overrides, grid, r)])
    if bound is not None:
        cells.append([
            f"oracle bound ({bound['reference_names']['nmse_s_db']}); CNR: {bound['reference_names']['cnr_db']}", fmt(reference(bound, "nmse_s_db")[0]),
            fmt(reference(bound, "nmse_l_db")[0]), fmt(reference(bound, "cnr_db")[0]), f"{reference(bound, 'corona_loss')[0]:.3g}", "", "", "", "", "", "",
        ])  # fmt: skip
    return markdown(header, cells)


def ulm_table(records: dict, group: str) -> str:
    header = ["method", "F1", "precision", "recall", "RMSE (µm)", "NMSE (dB)", "val F1", "params", "train time (s)", "epochs", "load (1-min avg) before → after", "command"]
    cells, last = [], None
    for _, _, label, overrides, grid in (r for r in all_rows() if r[1] == group):
        r = records.get(key(overrides))
        if r is None:
            cells.append([label, "not run", "", "", "", "", "", "", "", "", "", command(overrides, grid, None)])
            continue
        last = r
        cells.append([label, fmt(r["test/f1"], 3), fmt(r["test/precision"], 3), fmt(r["test/recall"], 3), fmt(r["test/rmse_um"], 1), fmt(r["test/nmse_db"]), fmt(r["val/f1"], 3), *cost(r), command(overrides, grid, r)])
    if last is not None:
        names = last["reference_names"]
        cells.append([f"bound: {names['nmse_db']} (NMSE); reference: {names['rmse_um']} (RMSE)", "", "", "", fmt(reference(last, "rmse_um")[0], 1), fmt(reference(last, "nmse_db")[0]), "", "", "", "", "", ""])
    return markdown(header, cells)


def find(records: dict, section: str, group: str, start: str) -> dict | None:
    """The record of the row of ``group`` whose label starts with ``start``."""
    return next((records.get(key(o)) for s, g, label, o, _ in all_rows() if s == section and g == group and label.startswith(start)), None)


def clutter_claims(records: dict) -> str:
    black = find(records, "clutter", "clutter", "Res3dC")
    lines = []
    for variant, name in (("CORONA (unfolded)", "CORONA (Jacobi, as published)"), (GAUSS_SEIDEL, "CORONA, Gauss–Seidel")):
        depth = {d: find(records, "clutter", "clutter", f"{variant}, {d} layer") for d in DEPTHS}
        s = {d: r["test/nmse_s_db"] for d, r in depth.items() if r is not None}
        if s:
            lines.append(f"{name}: NMSE of S by depth: " + ", ".join(f"{d} layer{'s' if d > 1 else ''} {fmt(v)} dB" for d, v in s.items()) + " (CORONA's validation loss: 1 layer 2.29e-3, 2: 1.04e-3, 3: 7.56e-4, 5: 6.36e-4, 10: 6.77e-4).")
        if all(d in s for d in (1, 3, 5, 10)):
            early, late = s[1] - min(s[3], s[5]), s[10] - min(s[3], s[5])
            met = early >= 1.0 and late > -1.0
            lines.append(
                f"{name}: depth trend (criterion: 1 → 3–5 layers gains ≥ 1 dB and 3–5 → 10 layers gains < 1 dB): 1 → best of 3, 5 gains {fmt(early)} dB, "
                f"best of 3, 5 → 10 gains {fmt(-late)} dB: **{'met' if met else 'not met'}**."
            )
        if black is not None and 10 in s:
            gap = black["test/nmse_s_db"] - s[10]
            ratio = black["params"] / max(depth[10]["params"], 1)
            lines.append(
                f"{name}, 10 layers, against the black box on S at equal training data: {fmt(s[10])} dB against {fmt(black['test/nmse_s_db'])} dB, "
                f"{fmt(gap)} dB better (claim ≥ 3 dB: **{'met' if gap >= 3.0 else 'not met'}**), with {depth[10]['params']} against {black['params']} weights ({ratio:.1f}× fewer)."
            )
    long_unfolded, long_black = (find(records, "clutter", "clutter", f"{name}, 30 epochs") for name in ("CORONA (unfolded), 10 layers", "Res3dC (black box)"))
    if long_unfolded is not None and long_black is not None:
        gap = long_black["test/nmse_s_db"] - long_unfolded["test/nmse_s_db"]
        lines.append(f"With 30 epochs: CORONA 10 layers {fmt(long_unfolded['test/nmse_s_db'])} dB, Res3dC {fmt(long_black['test/nmse_s_db'])} dB ({'CORONA' if gap >= 0 else 'Res3dC'} {fmt(abs(gap))} dB better).")
    return "".join(f"* {line}\n" for line in lines)


def ulm_claims(records: dict) -> str:
    lines, margins = [], []
    for density in DENSITIES:
        group = f"density {density:g}/cm²"
        unf, f10, f100 = (find(records, "ulm", group, start) for start in ("learned convolutional", "FISTA, 10", "FISTA, 100"))
        if None in (unf, f10, f100):
            continue
        margin = unf["test/f1"] - max(f10["test/f1"], f100["test/f1"])
        margins.append(margin)
        lines.append(
            f"{group}: unfolded F1 {fmt(unf['test/f1'], 3)} against FISTA 10 {fmt(f10['test/f1'], 3)} and FISTA 100 {fmt(f100['test/f1'], 3)} (margin {fmt(margin, 3)}); "
            f"RMSE {fmt(unf['test/rmse_um'], 1)} µm against {fmt(f10['test/rmse_um'], 1)} and {fmt(f100['test/rmse_um'], 1)} µm."
        )
    if margins:
        every = len(margins) == len(DENSITIES)
        verdict = "not met" if min(margins) <= 0 else "met" if every else f"met at the {len(margins)} of {len(DENSITIES)} densities that ran"
        lines.append(f"Unfolded 10 layers beats FISTA 10 and 100 on F1 at every density: **{verdict}**.")
    for density in DENSITIES:
        tuned = find(records, "ulm", f"density {density:g}/cm²", "learned convolutional")
        if tuned is not None:
            lines.append(f"Unfolded at {density:g}/cm², validation F1 by lr: " + ", ".join(f"{c.split('=')[1]}: {fmt(v[0], 3)}" for c, v in tuned["val_by_choice"].items()) + f" (chose {tuned['chosen']['method.optim.lr']}).")
    ratios = []
    for density in DENSITIES:
        group = f"density {density:g}/cm²"
        unf, black = find(records, "ulm", group, "learned convolutional"), find(records, "ulm", group, "Deep-ULM")
        if unf is not None and black is not None:
            ratios.append((black["params"], unf["params"]))
    if ratios:
        big, small = ratios[0]
        lines.append(f"Weights: black box {big}, unfolded {small}, {big / small:.1f}× fewer (claim ≥ 10×: **{'met' if big >= 10 * small else 'not met'}**).")
    return "".join(f"* {line}\n" for line in lines)


def plot(records: dict, out: Path) -> None:
    """The maps (ULM at 130/cm²; clutter), and F1 vs density and NMSE of S vs CORONA's depth."""
    group = f"density {DENSITIES[1]:g}/cm²"
    ulm = [(label, records[key(o)]["figure"]) for s, g, label, o, _ in all_rows() if g == group and key(o) in records and label.startswith(("FISTA, 100", "learned conv", "Deep-ULM"))]
    montage([(f"{label}, {group}", f) for label, f in ulm], out / f"{NAME}_ulm_maps.png")
    clutter = [(label, records[key(o)]["figure"]) for s, g, label, o, _ in all_rows() if s == "clutter" and key(o) in records and label.startswith(("SVD filter", "CORONA (unfolded), 10 layers, lr", "Res3dC (black box), lr"))]
    montage(clutter, out / f"{NAME}_clutter.png")
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for start in ("FISTA, 10", "FISTA, 100", "learned ISTA", "learned convolutional", "neural proximal", "Deep-ULM"):
        points = [(d, r["test/f1"]) for d in DENSITIES if (r := find(records, "ulm", f"density {d:g}/cm²", start)) is not None]
        if points:
            left.plot(*zip(*points), marker="o", label=start)
    left.set_xlabel("bubble density (per cm²)")
    left.set_ylabel("detection F1 (test)")
    left.set_ylim(0, 1)
    left.grid(alpha=0.3)
    if left.get_legend_handles_labels()[0]:
        left.legend(fontsize=7)
    for variant, name in (("CORONA (unfolded)", "CORONA (Jacobi)"), (GAUSS_SEIDEL, "CORONA, Gauss–Seidel")):
        points = [(d, r["test/nmse_s_db"]) for d in DEPTHS if (r := find(records, "clutter", "clutter", f"{variant}, {d} layer")) is not None]
        if points:
            right.plot(*zip(*points), marker="o", label=name)
    for start, style in (("Res3dC", "--"), ("SVD", ":"), ("RPCA", "-.")):
        r = find(records, "clutter", "clutter", start)
        if r is not None:
            right.axhline(r["test/nmse_s_db"], ls=style, c="gray", label=start)
    right.set_xlabel("layers")
    right.set_ylabel("NMSE of S (dB, test)")
    right.grid(alpha=0.3)
    if right.get_legend_handles_labels()[0]:
        right.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(out / f"{NAME}_curves.png", dpi=80)
    plt.close(figure)


HEADER = """# Ultrasound results

Written by `.venv/bin/python scripts/reproduce_ultrasound.py` (every command is run with `{options}`; see
[../ultrasound.md](../ultrasound.md)). Every choice is made on validation data: the grids of the model-based rows
(the chosen value is in the command column) and the best weights of every trained row (early stopping on the
validation loss, patience 5, as configured). Machine: {machine}, {cores} cores shared with other engineers' jobs
(the load column), one torch thread, `nice -n 10`; last written {when} UTC.

**Reduced settings** (2 CPU cores, ≤ ~15 min a row), against CORONA's 2400 training / 800 validation patches of
32 × 32 × 20 and 50 epochs on a GPU: clutter patches of 16 × 16 pixels × 20 frames, 400 training, 100 validation and
100 test sequences, 10 epochs (the configs' default; CORONA's Res3dC anchor is also after 10 epochs; two rows repeat
CORONA with 10 layers and Res3dC with 30); ULM 16 × 16 coarse images (q = 4: 64 × 64 fine), 200 validation and
500 test images; the trained rows see 500 fresh simulated images an epoch for 40 epochs (20 000 in all; the unfolded
network's learning rate chosen on validation at each density). ULM's detection threshold is chosen on the validation
maps of each row (`task.threshold_on_validation`), as each method's maps have their own amplitude scale. Unfolded, DNN-aided
and black-box rows of a section train on the same data (same seed and size). The numbers are not CORONA's: its
anchors are validation losses on its own simulation at full size. The CNR averages the test patches that have a
background (pixels no bubble reaches in 20 frames): on 16 × 16 patches the blood covers nearly everything, and only
about a third have one (30 of a 100-patch draw), so the CNR column is a noisy figure here.
"""


def write(records: dict, out: Path) -> str:
    header = HEADER.format(options=" ".join(JOB_OPTIONS), machine=platform.machine(), cores=os.cpu_count(), when=f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M}")
    body = "## Clutter removal (`task=clutter`)\n\n" + clutter_table(records) + "\n" + clutter_claims(records)
    if (out / f"{NAME}_clutter.png").exists():
        body += f"\n![clutter: a frame of D, L and S, true and recovered, and the blood map of Ŝ]({NAME}_clutter.png)\n"
    body += "\n## Localization microscopy (`task=ulm`)\n\n"
    body += "F1, precision and recall after matching the detections to the true bubbles within 60 µm; RMSE of the matched pairs.\n\n"
    for density in DENSITIES:
        group = f"density {density:g}/cm²"
        body += f"### {group}\n\n" + ulm_table(records, group) + "\n"
    body += ulm_claims(records)
    if (out / f"{NAME}_ulm_maps.png").exists():
        body += f"\n![ULM at {DENSITIES[1]:g}/cm²: coarse image, true and recovered fine maps]({NAME}_ulm_maps.png)\n"
    if (out / f"{NAME}_curves.png").exists():
        body += f"\n![F1 vs density; NMSE of S vs CORONA's depth]({NAME}_curves.png)\n"
    text = header + "\n" + body
    (out / f"{NAME}.md").write_text(text)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", nargs="+", choices=("clutter", "ulm"), default=["clutter", "ulm"])
    parser.add_argument("--match", nargs="+", default=None, help="run only the rows whose 'group: label' contains one of these")
    parser.add_argument("--skip-done", action="store_true", help=f"skip the rows already in docs/results/{NAME}.json")
    parser.add_argument("--quick", action="store_true", help="tiny data, one epoch, grids of two values; prints the tables, writes nothing")
    args = parser.parse_args()
    records_file = RESULTS / f"{NAME}.json"
    load = lambda: json.loads(records_file.read_text()) if records_file.exists() else {}  # noqa: E731
    records = {} if args.quick else load()
    with tempfile.TemporaryDirectory() as scratch:
        for section, group, label, overrides, grid in all_rows():
            name = f"{group}: {label}"
            if section not in args.sections or (args.match and not any(m in name for m in args.match)) or (args.skip_done and key(overrides) in records):
                continue
            run_dir = row_folder(Path(scratch) if args.quick else ROOT / "outputs" / "ultrasound_rows", section, key(overrides))
            record = run_row(section, overrides, grid, run_dir, args.quick)
            print(f"{name}: {record[SCORE[section][0][0].replace('val/', 'test/')]:.3f} ({record['train_time_s']:.0f} s)", flush=True)
            if not args.quick:  # re-read: another invocation (other --match) may have added rows meanwhile
                records = load()
            records[key(overrides)] = keep(record)
            if not args.quick:
                records_file.write_text(json.dumps(records, indent=1))
                write(records, RESULTS)
        out = Path(scratch) if args.quick else RESULTS
        plot(records, out)
        text = write(records, out)
        if args.quick:
            print(text)


if __name__ == "__main__":
    main()
