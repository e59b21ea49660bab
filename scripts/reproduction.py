"""What the reproduction scripts share: one ``python -m mbdl`` job (or one multirun) in a fresh process, its records
back, and a record's bound or reference.

    from reproduction import figure_path, fmt, montage, reference, row_folder, run_job, run_sweep      # scripts/ is on sys.path when a script runs
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from mbdl.results.record import FIGURE_NAME, RECORD_NAME, read_records

ROOT = Path(__file__).resolve().parents[1]

#: every reproduction job: one torch thread, no logger, no progress bar (and seed 0 unless a sweep sets the seeds).
SWEEP_OPTIONS = ("threads=1", "~logger", "trainer.enable_progress_bar=false")
JOB_OPTIONS = ("seed=0", *SWEEP_OPTIONS)


def reference(record: dict[str, Any], metric: str) -> tuple[float, str]:
    """The record's bound or reference for ``metric`` and which the task declared it: ``("bound" | "reference")``."""
    kind = "bound" if f"bound/{metric}" in record else "reference"
    return record[f"{kind}/{metric}"], kind


def _mbdl(args: list[str]) -> None:
    """``python -m mbdl ARGS`` in a fresh process, W&B disabled; raises with its stderr when it fails."""
    env = {**os.environ, "WANDB_MODE": "disabled"}
    done = subprocess.run([sys.executable, "-m", "mbdl", *args], cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{done.stderr[-3000:]}")


def run_job(overrides: tuple[str, ...] | list[str], run_dir: Path) -> dict[str, Any]:
    """Run ``python -m mbdl OVERRIDES`` (plus :data:`JOB_OPTIONS`) into ``run_dir``; return its ``metrics.json``."""
    _mbdl([*overrides, *JOB_OPTIONS, f"hydra.run.dir={run_dir}"])
    return json.loads((run_dir / RECORD_NAME).read_text())


def run_sweep(overrides: tuple[str, ...] | list[str], sweep_dir: Path) -> list[dict[str, Any]]:
    """Run the multirun ``python -m mbdl -m OVERRIDES`` (plus :data:`SWEEP_OPTIONS`; the basic launcher, one process)
    into ``sweep_dir``; return the records of its jobs, all of which must have finished ``ok``."""
    _mbdl(["-m", *overrides, *SWEEP_OPTIONS, f"hydra.sweep.dir={sweep_dir}"])
    records = read_records(sweep_dir)
    failed = [r for r in records if r.get("status") != "ok"]
    if failed:
        raise RuntimeError(f"{len(failed)} jobs of {' '.join(overrides)} failed, e.g. {failed[0].get('error')}")
    return records



def fmt(value: float | None, digits: int = 2) -> str:
    """A table cell: ``value`` to ``digits`` decimals with a typographic minus; ``-`` for a missing or NaN value."""
    return "-" if value is None or value != value else f"{value:.{digits}f}".replace("-", "−")


def row_folder(parent: Path, prefix: str, command: str) -> Path:
    """The run folder of the row run by ``command``: named by a digest of the command, so that a row keeps its folder
    (and its record its figure) when rows are added or reordered."""
    return parent / f"{prefix}_{hashlib.sha1(command.encode()).hexdigest()[:10]}"


def figure_path(run_dir: Path) -> str:
    """Where a record keeps its run's figure: relative to the repository when the run is inside it (records stay
    valid in another clone), else absolute (a ``--quick`` scratch folder)."""
    path = (Path(run_dir) / FIGURE_NAME).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def montage(shown: list[tuple[str, str]], path: Path, columns: int = 1, panel_in: tuple[float, float] = (10.0, 5.2), dpi: int = 70) -> None:
    """The run figures ``(title, file)`` (files relative to the repository, or absolute), ``columns`` to a row, each
    panel ``panel_in`` inches, into ``path``. When some files are gone (their run folders deleted) and ``path`` already
    exists, it is kept as it is rather than redrawn with fewer panels."""
    import matplotlib.pyplot as plt  # the calling script has chosen the Agg backend

    files = [(title, ROOT / f) for title, f in shown]  # an absolute f stays as it is
    missing = [title for title, f in files if not f.is_file()]
    if missing and path.exists():
        print(f"kept {path}: the run figures of {len(missing)} of its {len(files)} panels are gone ({', '.join(missing)})", flush=True)
        return
    shown = [(title, f) for title, f in files if f.is_file()]
    if not shown:
        return
    columns = min(columns, len(shown))
    rows = -(-len(shown) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(panel_in[0] * columns, panel_in[1] * rows), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, (title, f) in zip(axes.flat, shown):
        ax.imshow(plt.imread(f))
        ax.set_title(title, fontsize=10 if columns == 1 else 8)
    figure.tight_layout()
    figure.savefig(path, dpi=dpi)
    plt.close(figure)
