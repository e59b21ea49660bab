"""Plain-text tables of run records, and the progress lines of a multirun."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from mbdl.results.record import RESULT_PREFIXES, read_records
from mbdl.results.tables import fixed_width, format_value

#: the keys that identify a run in every line and table (the other overrides are shown after them).
IDENTITY = ("task", "method", "regime", "seed")


def results_table(records: list[dict[str, Any]]) -> str:
    """A fixed-width table: one row per run, its identity, status, and by metric its val, test, bound and reference values."""
    if not records:
        return "(no runs)"
    order = {prefix: i for i, prefix in enumerate(RESULT_PREFIXES)}
    metrics = sorted({k for r in records for k in r if k.startswith(RESULT_PREFIXES)}, key=lambda k: (k.split("/")[1], order[k.split("/")[0] + "/"]))
    columns = ["task", "method", "regime", "seed", "status", *metrics, "params", "train_time_s", "infer_ms_per_sample", "overrides"]
    rows = [[format_value(r.get(c) if c != "overrides" else " ".join(r.get("overrides", []))) for c in columns] for r in records]
    return fixed_width(columns, rows)


def job_line(record: dict[str, Any], note: str | None = None) -> str:
    """One line for a finished job: status, identity, its own overrides and the primary test metric against its bound."""
    status = note or record.get("status", "?")
    swept = " ".join(o for o in record.get("overrides", []) if o.split("=", 1)[0].lstrip("+~") not in IDENTITY)
    head = f"[{status}] {record.get('task')} {record.get('method')} {record.get('regime')} seed={record.get('seed')}"
    head += f" {swept}" if swept else ""
    if record.get("status") != "ok":
        return f"{head}  error: {record.get('error', '')}"
    name = record.get("primary_metric")
    if f"test/{name}" not in record:
        name = next((k.split("/", 1)[1] for k in record if k.startswith("test/")), None)
    if name is None:
        return head
    kind = next((k for k in ("bound", "reference") if f"{k}/{name}" in record), "bound")
    return f"{head}  {name}={format_value(record['test/' + name])} ({kind} {format_value(record.get(f'{kind}/{name}'))})"


class SweepProgress(Callback):
    """Hydra callback: one line per finished job, and the table of all jobs when a multirun ends."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        records = read_records(sweep_dir)
        print(f"\n{results_table(records)}\n\n{failure_summary(records)}sweep directory: {sweep_dir}", flush=True)


def failure_summary(records: list[dict[str, Any]]) -> str:
    """``"N of M jobs failed:"`` and one line per failed job with its run directory, or ``""`` when none failed."""
    failed = [r for r in records if r.get("status") != "ok"]
    if not failed:
        return ""
    lines = [f"{len(failed)} of {len(records)} jobs failed:"]
    lines += [f"  {job_line(r)}\n    {r.get('run_dir', '')}" for r in failed]
    return "\n".join(lines) + "\n\n"
