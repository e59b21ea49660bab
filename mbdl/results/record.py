"""The run record: ``metrics.json`` in each run directory (the contract in DESIGN.md).

Keys: ``task``, ``method``, ``regime``, ``seed``, ``status`` (``"ok"`` or ``"failed"``),
``error`` (failed runs), ``primary_metric`` (the metric that summarises the run),
``metric_info`` (each metric's label, unit and whether higher is better, as the task declares
them), ``val/<metric>`` (model selection and the sweeper's objective), ``test/<metric>``,
``bound/<metric>`` or ``reference/<metric>`` (what the task declares each to be) with
``reference_names``, ``curve/<metric>`` (iterative methods), ``params``, ``train_time_s``,
``train_cpu_s``, ``epochs_trained``, ``infer_ms_per_sample``, ``flops_per_sample`` and ``flops_uncounted``
(:mod:`mbdl.training.flops`), ``processes`` and ``test_samples_per_process`` (DDP ranks and their shares of the test
set), ``torch_threads`` and ``overrides`` (the command-line overrides of the job).

The names of the files in a run directory are defined here and nowhere else.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

#: the run record.
RECORD_NAME = "metrics.json"
#: the per-run figure the runner saves.
FIGURE_NAME = "figure.png"
#: the job's composed config, as Hydra saves it before the job starts.
CONFIG_PATH = Path(".hydra") / "config.yaml"
#: the prefixes of a record's result keys, in the order tables show them.
RESULT_PREFIXES = ("val/", "test/", "bound/", "reference/")


def _finite_or_none(value: Any) -> Any:
    """JSON has no NaN/inf: write them as ``null`` (strict parsers and browsers reject them)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [_finite_or_none(v) for v in value]
    return value


def flatten(tree: Any) -> dict[str, Any]:
    """A nested dict as one flat dict with dotted keys: ``{"task": {"n": 150}} -> {"task.n": 150}``."""
    flat: dict[str, Any] = {}

    def visit(node: Any, prefix: str) -> None:
        if isinstance(node, dict) and node:
            for key, value in node.items():
                visit(value, f"{prefix}{key}.")
        else:
            flat[prefix[:-1]] = node

    visit(tree, "")
    return flat


def write_record(run_dir: str | Path, record: dict[str, Any]) -> Path:
    """Write ``record`` to ``run_dir/metrics.json`` atomically (temporary file, then rename)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    clean = {key: _finite_or_none(value) for key, value in record.items()}
    fd, tmp = tempfile.mkstemp(dir=run_dir, prefix=".metrics.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(clean, f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, run_dir / RECORD_NAME)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return run_dir / RECORD_NAME


def read_records(*roots: str | Path) -> list[dict[str, Any]]:
    """Every run record under ``roots`` (searched recursively), each with its ``run_dir``."""
    records = []
    for root in roots:
        for path in sorted(Path(root).rglob(RECORD_NAME)):
            record = json.loads(path.read_text())
            record["run_dir"] = str(path.parent)
            records.append(record)
    return records


def finished_record(run_dir: str | Path, overrides: list[str]) -> dict[str, Any] | None:
    """The record in ``run_dir`` if that run finished ``ok`` with the same ``overrides`` (``resume`` ignored), else ``None``."""
    path = Path(run_dir) / RECORD_NAME
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    same = lambda items: sorted(o for o in items if not o.lstrip("+~").startswith("resume="))  # noqa: E731
    return record if record.get("status") == "ok" and same(record.get("overrides", [])) == same(overrides) else None
