"""Reproduce the imaging experiments and write ``docs/results/imaging.md`` (and ``imaging_reconstructions.png``).

Sections: Set11 block CS at 10/25/40 % with ISTA-Net's Φ, brain MRI at 20/30 % with ISTA-Net's pseudo-radial
masks, Set11 deblurring (Gaussian σ = 1.6 px, noise σ = 0.01). Every row is one ``python -m mbdl`` command (listed
in the table with the data folder written ``$MBDL_DATA``), beside ISTA-Net's anchors measured with its released
weights; its record is kept in ``docs/results/imaging.json`` so that rows can be re-run alone. Rows marked
"λ on validation" first run their λ grid on validation crops of the training images (``task.n_test=1``: the one
test image those runs also score is never looked at) and keep the best validation PSNR. The plug-and-play rows
share one denoiser file (trained once by ``scripts/train_denoiser.py`` if missing). Usage::

    .venv/bin/python scripts/reproduce_imaging.py --data $MBDL_DATA [--sections cs25 mri20 ...] [--match LABEL ...]
        [--skip-done] [--quick] [--adopt 'LABEL=RUN_DIR' ...]

``--adopt`` files the ``metrics.json`` of a run made by hand with a row's exact command (a long training started
in the background) under that row. ``--quick`` runs every row on two small test images, one short epoch
(a smoke test; nothing is written).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
from reproduction import ROOT, figure_path, fmt, montage, row_folder, run_job  # noqa: E402

from mbdl.results.tables import markdown  # noqa: E402

RESULTS = ROOT / "docs" / "results" / "imaging.md"
RECORDS = ROOT / "docs" / "results" / "imaging.json"
FIGURE = ROOT / "docs" / "results" / "imaging_reconstructions.png"
DATA = "$MBDL_DATA"
#: the λ grids searched on validation crops.
TV_GRID = (0.001, 0.003, 0.01, 0.03, 0.1)
PNP_GRID = (3e-6, 1e-5, 3e-5, 1e-4, 3e-4)  # (earlier rows searched from 3e-5 or 1e-5: the table shows each row's own grid)

#: ISTA-Net-PyTorch's released weights, measured on this machine (docs/imaging.md): setup -> (linear start, ISTA-Net+).
ANCHORS = {
    "cs10": ("Qinit 23.20 dB", "ISTA-Net⁺ 26.49 dB / 0.804"),
    "cs25": ("Qinit 26.92 dB / 0.800", "ISTA-Net⁺ 32.44 dB / 0.924"),
    "cs40": ("Qinit 29.74 dB", "ISTA-Net⁺ 36.02 dB / 0.958"),
    "mri20": ("zero-filled 30.41 dB", "ISTA-Net⁺ 38.70 dB / 0.948"),
    "mri30": ("zero-filled 33.01 dB", "ISTA-Net⁺ 40.97 dB / 0.964"),
    "deblur": ("", ""),
}
#: the trained rows' budget: 3 epochs of fresh crops, 3200 an epoch; MRI's crops are whole 256 × 256 k-space grids
#: (60× the pixels of a 33 × 33 block: 3200 of them took the DnCNN 1933 s), so 400 there (still 7.5× CS's pixels),
#: and 100 for learned TV (3 scalars through 100 unrolled iterations: ~2 s a crop; 4 a batch, as 32 held 15 GB).
TRAINED_CROPS = {"cs": 3200, "mri": 400, "deblur": 3200}
LEARNED_TV_CROPS = {"mri": 100}


def trained(section: str, crops: dict[str, int] = TRAINED_CROPS) -> tuple[str, ...]:
    """The overrides of a trained row of ``section``: ``crops`` per epoch by operator (else ``TRAINED_CROPS``'s)."""
    operator = section.rstrip("0123456789")
    return ("regime.fresh_data=true", f"task.n_train={crops.get(operator, TRAINED_CROPS[operator])}", "method.optim.epochs=3")


#: the targets' set-ups: the ISTA-Net⁺ recipe in bf16-mixed at these epochs (about an hour of one core, docs/imaging.md).
BF16_EPOCHS = {"cs25": (40, 50), "mri20": (24,)}


def setups() -> dict[str, tuple[str, tuple[str, ...]]]:
    """Section -> (title, the task overrides)."""
    out = {}
    for ratio in (10, 25, 40):
        out[f"cs{ratio}"] = (f"Set11, block CS {ratio} % (ISTA-Net's Φ, noiseless)", ("task=imaging", "task/operator=cs", f"task.operator.ratio={ratio}", f"task.operator.phi={DATA}/istanet/sampling_matrix/phi_0_{ratio}_1089.mat", f"task.test_dir={DATA}/istanet/Set11"))
    for ratio in (20, 30):
        out[f"mri{ratio}"] = (f"brain MRI {ratio} % (ISTA-Net's pseudo-radial mask, noiseless)", ("task=imaging", "task/operator=mri", f"task.operator.ratio={ratio}", f"task.operator.mask={DATA}/istanet/sampling_matrix/mask_{ratio}.mat", f"task.test_dir={DATA}/istanet/brain_test", "task.n_val=16"))
    out["deblur"] = ("Set11 deblurring, Gaussian σ = 1.6 px, noise σ = 0.01 (circular boundary)", ("task=imaging", "task/operator=deblur", "task.operator.sigma_px=1.6", "task.noise_std=0.01", f"task.test_dir={DATA}/istanet/Set11"))
    return out


def rows(section: str, denoiser: str) -> list[tuple[str, str, tuple[str, ...], tuple[float, ...]]]:
    """(label, anchor, overrides, λ grid searched on validation or ``()``) of one section."""
    _, task = setups()[section]
    linear, unfolded = ANCHORS[section]
    mri = section.startswith("mri")
    experiment = ("experiment=istanet_mri" if mri else "experiment=istanet_cs", *task[2:])
    val_crop = () if mri else ("task.crop=132", "task.n_val=64")
    budget = trained(section)
    return [
        ("TV, primal-dual, 100 it., λ on validation", linear, (*task, *val_crop, "method=model_based", "method.algorithm=tv", "method.iterations=100"), TV_GRID),
        ("wavelet-ℓ1 (Haar, 3 levels), FISTA 100 it., λ on validation", "", (*task, *val_crop, "method=model_based", "method.algorithm=wavelet_fista", "method.iterations=100"), TV_GRID),
        ("learned TV: 100 it. from the TV row, shared τ, σ, λ trained", "", (*task, "method=learned_optimizer", *trained(section, LEARNED_TV_CROPS), *(("method.optim.batch_size=4",) if mri else ())), ()),
        ("DnCNN on the linear start (black box)", "", (*task, "method=black_box", "method.channels=16", *budget), ()),
        *(
            [
                ("ISTA-Net⁺, 9 phases × 16 channels, 3 epochs", unfolded, (*experiment, "method.optim.epochs=3"), ()),
                ("ISTA-Net⁺, 9 phases × 16 channels, 12 epochs (the experiment's default)", unfolded, experiment, ()),
            ]
            if section != "deblur"  # the ISTA-Net⁺ experiments are block CS and MRI set-ups; deblurring's unfolded row is MoDL
            else []
        ),
        *[
            (f"ISTA-Net⁺, 9 phases × 16 channels, {epochs} epochs in bf16-mixed", unfolded, (*experiment, "trainer.precision=bf16-mixed", f"method.optim.epochs={epochs}"), ())
            for epochs in BF16_EPOCHS.get(section, ())
        ],
        ("MoDL, 5 it., shared DnCNN", "", (*task, "method=unfolded", "method.algorithm=modl", "method.iterations=5", "method.channels=16", *budget), ()),
        *(
            [("unrolled PnP-HQS, 10 it., the PnP denoiser fine-tuned, 6 epochs", unfolded, ("experiment=unrolled_pnp_mri", *task[2:], f"method.denoiser={denoiser}"), ())]
            if mri  # an experiment of the MRI set-ups (docs/imaging.md)
            else []
        ),
        ("PnP-HQS, 30 it., one denoiser for every operator, λ on validation", "", (*task, *val_crop, "method=dnn_aided", "method.algorithm=pnp", "method.iterations=30", f"method.denoiser={denoiser}"), PNP_GRID),
        ("neural proximal gradient, 5 it., shared DnCNN", "", (*task, "method=dnn_aided", "method.iterations=5", "method.channels=16", *budget), ()),
    ]


QUICK = ("task.test_size=64", "task.n_test=2", "task.n_train=64", "task.n_val=16", "++method.optim.epochs=1", "task.reference_samples=2000")


def expand(overrides: tuple[str, ...], data: str) -> list[str]:
    return [o.replace(DATA, data) for o in overrides]


def run_row(overrides: tuple[str, ...], grid: tuple[float, ...], data: str, scratch: Path, quick: bool) -> dict:
    """One row: (λ on validation, then) the command; the record with the load before and after."""
    extra = QUICK if quick else ()
    chosen: dict = {}
    if grid:
        scores = {}
        for index, lam in enumerate(grid):
            trial = run_job([*expand(overrides, data), f"method.lam={lam}", "task.n_test=1", *extra], scratch / f"lam_{index}")
            scores[lam] = trial["val/psnr_db"]
        best = max(scores, key=scores.get)
        chosen = {"lam": best, "val_psnr_db_by_lam": scores}
        overrides = (*overrides, f"method.lam={best}")
    load_before = os.getloadavg()
    record = run_job([*expand(overrides, data), *extra], scratch / "row")
    record.update(chosen, load_before=load_before, load_after=os.getloadavg(), command=" ".join(overrides))
    return record


def keep(record: dict) -> dict:
    """The parts of a record the tables use."""
    wanted = ("params", "train_time_s", "infer_ms_per_sample", "lam", "val_psnr_db_by_lam", "load_before", "load_after", "command", "reference_names", "figure", "torch_threads", "ran_as")
    return {k: v for k, v in record.items() if k.startswith(("test/", "reference/", "val/", "curve/")) or k in wanted}


def data_folder(command: str) -> str:
    """The data folder in a hand-run command (the part before ``/istanet/``), to write it ``$MBDL_DATA``."""
    return command.split("/istanet/")[0].split("=")[-1] if "/istanet/" in command else DATA


def table(section: str, records: dict, denoiser: str) -> str:
    title, _ = setups()[section]
    header = ["method", "PSNR (dB)", "SSIM", "NMSE (dB)", "linear reference PSNR / SSIM", "anchor (ISTA-Net, its weights)", "params", "train time (s)", "load (1-min avg) before → after", "command"]
    cells = []
    for label, anchor, overrides, grid in rows(section, denoiser):
        key = " ".join(overrides)
        r = records.get(key)
        searched = [float(lam) for lam in r["val_psnr_db_by_lam"]] if r is not None and "val_psnr_db_by_lam" in r else list(grid)
        command = f"`python -m mbdl {key}`" + (f" with method.lam from {searched} on validation" if grid else "")
        if r is not None and "ran_as" in r:
            command += f" (run by hand as `python -m mbdl {r['ran_as'].replace(data_folder(r['ran_as']), DATA)}`, the same config)"
        if r is None:
            cells.append([label, "not run", "", "", "", anchor, "", "", "", command])
            continue
        lam = f" (λ = {r['lam']:g})" if "lam" in r else ""
        load = f"{r['load_before'][0]:.1f} → {r['load_after'][0]:.1f}" if "load_before" in r else "-"
        cells.append([
            label + lam, fmt(r["test/psnr_db"]), fmt(r["test/ssim"], 3), fmt(r["test/nmse_db"]),
            f"{fmt(r.get('reference/psnr_db'))} / {fmt(r.get('reference/ssim'), 3)}", anchor, str(r["params"]), f"{r['train_time_s']:.0f}", load, command,
        ])  # fmt: skip
    return f"## {title}\n\n" + markdown(header, cells)


def plot(records: dict, denoiser: str) -> None:
    """The run figures (truth, back-projection, reconstruction of three test images) of the CS 25 % rows that ran, side by side."""
    shown = [(label, records[" ".join(o)]["figure"]) for label, _, o, _ in rows("cs25", denoiser) if " ".join(o) in records]
    montage(shown, FIGURE, columns=3, panel_in=(4.5, 4.5), dpi=60)


def write(records: dict, denoiser: str) -> None:
    header = (
        "# Imaging results\n\n"
        "Written by `.venv/bin/python scripts/reproduce_imaging.py --data $MBDL_DATA` (every command is run with "
        "`seed=0 threads=1 ~logger`; see [../imaging.md](../imaging.md)). PSNR and SSIM on the whole test images (ISTA-Net's "
        "conventions: output clipped to [0, 1], peak 255, scikit-image's SSIM with data range 255), averaged per image; "
        "the linear reference is the task's (Qinit fitted on scikit-image's images, Wiener, zero-filled), the anchors are "
        "ISTA-Net-PyTorch's released weights (trained for 200 epochs on 88 912 blocks on a GPU) measured on this machine. "
        "Training images: scikit-image's bundled images (no Set11 or brain image); λ and every other choice on validation "
        "crops of those. "
        f"Machine: {platform.machine()}, {os.cpu_count()} cores shared with other engineers' jobs (the load column), one "
        f"torch thread, `nice -n 10`; last written {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.\n\n"
    )
    body = "\n".join(table(s, records, denoiser) for s in setups())
    figure = f"\n![reconstructions at CS 25 %]({FIGURE.name})\n" if FIGURE.exists() else ""
    RESULTS.write_text(header + body + figure)


def ensure_denoiser(path: Path, minutes: float) -> None:
    path = ROOT / path
    if not path.is_file():
        subprocess.run([sys.executable, str(ROOT / "scripts" / "train_denoiser.py"), "--out", str(path), "--minutes", str(minutes)], check=True, cwd=ROOT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("MBDL_DATA"), help="the folder holding istanet/ (default: $MBDL_DATA)")
    parser.add_argument("--sections", nargs="+", choices=list(setups()), default=list(setups()))
    parser.add_argument("--match", nargs="+", default=None, help="run only the rows whose label contains one of these")
    parser.add_argument("--skip-done", action="store_true", help="skip the rows already in docs/results/imaging.json")
    parser.add_argument("--quick", action="store_true", help="two small test images, one short epoch; nothing is written")
    parser.add_argument("--denoiser", default="outputs/imaging_denoiser.pt", help="the PnP denoiser file, relative to the repository (trained if missing)")
    parser.add_argument("--denoiser-minutes", type=float, default=20.0, help="its training budget when it is trained here")
    parser.add_argument("--adopt", nargs="+", default=[], metavar="SECTION:LABEL=RUN_DIR", help="file a hand-run record under a row")
    args = parser.parse_args()
    if args.data is None or not (Path(args.data) / "istanet").is_dir():
        parser.error("--data (or $MBDL_DATA) must name the folder holding istanet/")
    records = json.loads(RECORDS.read_text()) if RECORDS.exists() else {}
    for item in args.adopt:
        name, run_dir = item.split("=", 1)
        section, label = name.split(":", 1)
        overrides = next(o for lab, _, o, _ in rows(section, args.denoiser) if lab.startswith(label))
        record = json.loads((Path(run_dir) / "metrics.json").read_text())
        record.update(command=" ".join(overrides), ran_as=" ".join(record["overrides"]), figure=figure_path(Path(run_dir)))
        records[" ".join(overrides)] = keep(record)
    if args.adopt:
        RECORDS.write_text(json.dumps(records, indent=1))
    with tempfile.TemporaryDirectory() as scratch:
        for section in args.sections:
            for label, _, overrides, grid in rows(section, args.denoiser):
                key = " ".join(overrides)
                if (args.match and not any(m in label for m in args.match)) or (args.skip_done and key in records):
                    continue
                if "method.algorithm=pnp" in overrides:  # trained once, only when a PnP row runs
                    ensure_denoiser(Path(args.denoiser), args.denoiser_minutes)
                run_dir = row_folder(Path(scratch) if args.quick else ROOT / "outputs" / "imaging_rows", section, key)
                record = run_row(overrides, grid, args.data, run_dir, args.quick)
                record["figure"] = figure_path(run_dir / "row")
                print(f"{section}: {label}: {record['test/psnr_db']:.2f} dB ({record['train_time_s']:.0f} s)", flush=True)
                if not args.quick:  # re-read: another invocation (other --match) may have added rows meanwhile
                    records = json.loads(RECORDS.read_text()) if RECORDS.exists() else {}
                    records[key] = keep(record)
                    RECORDS.write_text(json.dumps(records, indent=1))
                    write(records, args.denoiser)
    if not args.quick:
        records = json.loads(RECORDS.read_text()) if RECORDS.exists() else {}
        plot(records, args.denoiser)
        write(records, args.denoiser)


if __name__ == "__main__":
    main()
