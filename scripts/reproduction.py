"""What the reproduction scripts share: one ``python -m mbdl`` job in a fresh process, its record back, and a
record's bound or reference.

    from reproduction import reference, run_job      # scripts/ is on sys.path when a script runs
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from mbdl.results.record import RECORD_NAME

ROOT = Path(__file__).resolve().parents[1]

#: every reproduction job: seed 0, one torch thread, no logger, no progress bar.
JOB_OPTIONS = ("seed=0", "threads=1", "~logger", "trainer.enable_progress_bar=false")


def reference(record: dict[str, Any], metric: str) -> tuple[float, str]:
    """The record's bound or reference for ``metric`` and which the task declared it: ``("bound" | "reference")``."""
    kind = "bound" if f"bound/{metric}" in record else "reference"
    return record[f"{kind}/{metric}"], kind


def run_job(overrides: tuple[str, ...] | list[str], run_dir: Path) -> dict[str, Any]:
    """Run ``python -m mbdl OVERRIDES`` (plus :data:`JOB_OPTIONS`) into ``run_dir``; return its ``metrics.json``."""
    args = [*overrides, *JOB_OPTIONS, f"hydra.run.dir={run_dir}"]
    env = {**os.environ, "WANDB_MODE": "disabled"}
    done = subprocess.run([sys.executable, "-m", "mbdl", *args], cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return json.loads((run_dir / RECORD_NAME).read_text())
