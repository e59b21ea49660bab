"""The run record: ``metrics.json`` in each run directory (the contract in DESIGN.md).

Keys: ``task``, ``method``, ``regime``, ``seed``, ``status`` (``"ok"``, ``"failed"``, or ``"interrupted"``
by SIGTERM/SIGINT), ``error`` (runs that are not ok), ``primary_metric`` (the metric that summarises the run),
``metric_info`` (each metric's label, unit and whether higher is better, as the task declares
them), ``val/<metric>`` (model selection and the sweeper's objective), ``test/<metric>``,
``bound/<metric>`` or ``reference/<metric>`` (what the task declares each to be) with
``reference_names``, ``curve/<metric>`` (iterative methods), ``params``, ``train_time_s``,
``train_cpu_s``, ``epochs_trained``, ``infer_ms_per_sample``, ``flops_per_sample`` and ``flops_uncounted``
(:mod:`mbdl.training.flops`), ``processes`` and ``test_samples_per_process`` (DDP ranks and their shares of the test
set), ``torch_threads`` and ``overrides`` (the command-line overrides of the job).

Readers never fail on one bad directory: a ``metrics.json`` that cannot be read (empty, truncated, not an
object) reads as a record with status ``"unreadable"``, and a job directory that Hydra started (it holds
``.hydra/config.yaml``) but that has no record, as status ``"missing"`` (a job killed by SIGKILL, the
out-of-memory killer, a lost node, or still running); both carry the job's identity from its saved config,
count as not ok, and ``resume=true`` runs them again.

The names of the files in a run directory are defined here and nowhere else.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from mbdl.config import same_job

#: the run record.
RECORD_NAME = "metrics.json"
#: the per-run figure the runner saves.
FIGURE_NAME = "figure.png"
#: the trained method's weights (its ``state_dict``) in a run directory, for ``weights=`` of a later run.
WEIGHTS_NAME = "weights.pt"
#: the job's composed config, as Hydra saves it before the job starts.
CONFIG_PATH = Path(".hydra") / "config.yaml"
#: the job's command-line overrides, as Hydra saves them before the job starts.
OVERRIDES_PATH = Path(".hydra") / "overrides.yaml"
#: a multirun's progress: one JSON line when it starts, then one per finished job (in the sweep directory).
PROGRESS_NAME = "progress.jsonl"
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


def write_record(run_dir: str | Path, record: dict[str, Any], *, overwrite: bool = True) -> bool:
    """Write ``record`` to ``run_dir/metrics.json`` atomically (a temporary file, then a rename); with
    ``overwrite=False`` only when the run has no record yet (a link that fails if one appeared meanwhile).
    Returns whether it was written."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    clean = {key: _finite_or_none(value) for key, value in record.items()}
    fd, tmp = tempfile.mkstemp(dir=run_dir, prefix=".metrics.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(clean, f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, run_dir / RECORD_NAME)
            return True
        try:
            os.link(tmp, run_dir / RECORD_NAME)
            return True
        except FileExistsError:
            return False
    finally:
        Path(tmp).unlink(missing_ok=True)


def load_record(path: Path) -> dict[str, Any]:
    """The record in ``path``; :class:`ValueError` saying why when it is not a readable JSON object."""
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{type(error).__name__}: {error}" if str(error) else type(error).__name__) from None
    if not isinstance(record, dict):
        raise ValueError(f"a JSON {type(record).__name__}, not an object")
    return record


def _saved(run_dir: Path, name: Path) -> Any:
    """The YAML file Hydra saved in ``run_dir`` (``None`` when missing or unreadable)."""
    try:
        return yaml.safe_load((run_dir / name).read_text())
    except (OSError, yaml.YAMLError):
        return None


def job_identity(run_dir: str | Path) -> dict[str, Any]:
    """``task``, ``method``, ``regime``, ``seed`` and ``overrides`` of a job, from the config Hydra saved when it started."""
    run_dir = Path(run_dir)
    config = _saved(run_dir, CONFIG_PATH)
    config = config if isinstance(config, dict) else {}
    name = lambda group: (config.get(group) or {}).get("name") if isinstance(config.get(group), dict) else None  # noqa: E731
    overrides = _saved(run_dir, OVERRIDES_PATH)
    return {"task": name("task"), "method": name("method"), "regime": name("regime"), "seed": config.get("seed"), "overrides": overrides if isinstance(overrides, list) else []}


def lost_record(run_dir: str | Path, status: str, error: str) -> dict[str, Any]:
    """The stand-in record of a job whose own record is unreadable or missing: its identity, ``status`` and ``error``."""
    return {**job_identity(run_dir), "status": status, "error": error, "run_dir": str(run_dir)}


#: the error of a job directory without a record.
MISSING = "no run record: the job was killed (SIGKILL, the out-of-memory killer, a lost node) or is still running"


def read_records(*roots: str | Path) -> list[dict[str, Any]]:
    """Every run record under ``roots`` (searched recursively), each with its ``run_dir``.

    A record that cannot be read is reported on stderr in one line naming the file and read as status
    ``"unreadable"``; a job directory without a record reads as status ``"missing"`` (see the module's docstring).
    """
    records = []
    for root in roots:
        root = Path(root)
        for run_dir in sorted({p.parent for p in root.rglob(RECORD_NAME)} | {p.parent.parent for p in root.rglob(str(CONFIG_PATH))}):
            path = run_dir / RECORD_NAME
            if not path.is_file():
                records.append(lost_record(run_dir, "missing", MISSING))
                continue
            try:
                record = load_record(path)
            except ValueError as error:
                print(f"warning: {path}: unreadable run record ({error}); counted as failed", file=sys.stderr)
                records.append(lost_record(run_dir, "unreadable", f"unreadable {RECORD_NAME}: {error}"))
                continue
            record["run_dir"] = str(run_dir)
            records.append(record)
    return records


def finished_record(run_dir: str | Path, overrides: list[str]) -> dict[str, Any] | None:
    """The record in ``run_dir`` if that run finished ``ok`` with the same ``overrides`` (``resume`` ignored), else
    ``None`` (also for a record that cannot be read: the job runs again)."""
    path = Path(run_dir) / RECORD_NAME
    try:
        record = load_record(path)
    except ValueError:
        return None
    return record if record.get("status") == "ok" and same_job(record.get("overrides", [])) == same_job(overrides) else None
