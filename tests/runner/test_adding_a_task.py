"""docs/adding_a_task.md builds and runs: its files, written out as they stand in the page, make a task that
``python -m mbdl`` runs with no change to the runner."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from tests.helpers import ROOT

PAGE = ROOT / "docs" / "adding_a_task.md"


def page_files() -> dict[str, str]:
    """The page's files: each code block that follows a bold ``path`` heading."""
    pattern = re.compile(r"\*\*`([^`]+)`\*\*[^\n]*\n+```\w*\n(.*?)```", re.S)
    return {path: text for path, text in pattern.findall(PAGE.read_text())}


def test_the_page_shows_one_module_and_its_config_files():
    files = page_files()
    assert sorted(files) == ["configs/spectrum/denoising/black_box.yaml", "configs/spectrum/denoising/model_based.yaml", "configs/task/denoising.yaml", "mytasks/denoising.py"]


def test_the_toy_task_runs_with_every_method_of_the_page(tmp_path):
    for path, text in page_files().items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "MBDL_OUTPUTS": str(tmp_path / "outputs"), "WANDB_MODE": "disabled"}
    args = ["-m", "task=denoising", "method=model_based,black_box", f"hydra.searchpath=[file://{tmp_path / 'configs'}]", "~logger", "threads=1"]
    done = subprocess.run([sys.executable, "-m", "mbdl", *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    records = {r["method"]: r for r in (json.loads(p.read_text()) for p in (tmp_path / "outputs").rglob("metrics.json"))}
    assert sorted(records) == ["black_box", "model_based"] and all(r["status"] == "ok" for r in records.values())
    thresholded = records["model_based"]
    assert thresholded["bound/nmse_db"] < thresholded["test/nmse_db"] < -3.0, "soft thresholding denoises, the oracle does better"
    assert thresholded["metric_info"]["nmse_db"] == {"label": "NMSE", "unit": "dB", "higher_is_better": False}
    assert records["black_box"]["params"] > 0 and Path(records["black_box"]["run_dir"] if "run_dir" in records["black_box"] else tmp_path).exists()
