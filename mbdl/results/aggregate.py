"""Run records aggregated over seeds: grouping by swept keys, mean and spread, and the metric declarations they carry.

Runs are grouped by task, method, regime and every *swept* key (an override whose value differs
between the runs, the seed excepted); each group holds the seeds. For every numeric result
(``val/<m>``, ``test/<m>``, ``bound/<m>``, ``reference/<m>``, ``params``, ``train_time_s``,
``infer_ms_per_sample``, ``flops_per_sample``) a group has the mean and the standard deviation over its ``ok`` runs
(``ddof=1``; none for one run), and for every ``curve/<m>`` the mean per iteration.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from mbdl.results.record import CONFIG_PATH, RESULT_PREFIXES, flatten, read_records
from mbdl.results.tables import format_value, is_number

#: the fields that identify a group in every comparison.
IDENTITY = ("task", "method", "regime")
#: overrides that never define a group: the seed is what is averaged over; resume changes no result.
NOT_SWEPT = ("seed", "resume")
#: numeric results aggregated besides ``test/*`` and ``bound/*``.
COSTS = ("params", "train_time_s", "infer_ms_per_sample", "flops_per_sample")
#: config keys read from each run's ``.hydra/config.yaml`` as derived fields: training-set size and depth.
DERIVED = {"n_train": ("regime.n_train", "task.n_train"), "iterations": ("method.iterations",)}


def _number(text: Any) -> Any:
    """``text`` as an int or float when it is one, else unchanged (override values are strings)."""
    if not isinstance(text, str):
        return text
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _overrides(record: dict[str, Any]) -> dict[str, Any]:
    """The record's overrides as ``{key: value}`` (``+``/``~`` prefixes dropped, numbers parsed)."""
    pairs = (o.split("=", 1) for o in record.get("overrides", []) if "=" in o)
    return {key.lstrip("+~"): _number(value) for key, value in pairs}


def _saved_config(run_dir: str) -> dict[str, Any]:
    """The run's composed config (``.hydra/config.yaml``) flattened to dotted keys; empty when absent."""
    path = Path(run_dir) / CONFIG_PATH
    return flatten(yaml.safe_load(path.read_text())) if path.is_file() else {}


def load_runs(*dirs: str | Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Every run record under ``dirs`` with its overrides and derived fields, and the swept keys.

    Each run gets one field per override (``regime.n_train``, ...) and the derived fields of
    :data:`DERIVED` (``n_train``, ``iterations``: from the overrides, else the saved config).
    """
    runs = []
    for record in read_records(*dirs):
        overrides = _overrides(record)
        config = _saved_config(record["run_dir"])
        for name, keys in DERIVED.items():
            values = [overrides.get(k, config.get(k)) for k in keys]
            record[name] = next((v for v in values if isinstance(v, int) and not isinstance(v, bool)), None)
        runs.append({**{f"override:{k}": v for k, v in overrides.items()}, **record})
    keys = sorted({k for r in runs for k in r if k.startswith("override:")})
    swept = [k for k in keys if k.split(":", 1)[1] not in (*IDENTITY, *NOT_SWEPT) and len({repr(r.get(k)) for r in runs}) > 1]
    return runs, swept


def _sort_key(value: Any) -> tuple:
    """Numbers before strings, numbers in numeric order; ``None`` last."""
    if value is None:
        return (2, "")
    return (0, value, "") if is_number(value) else (1, str(value))


def aggregate(runs: Iterable[dict[str, Any]], by: list[str]) -> list[dict[str, Any]]:
    """One row per distinct value of the fields ``by``: run counts, mean and std over the ok runs.

    A row has ``runs``, ``failed``, ``seeds``, ``primary_metric``; ``<key>`` (mean) and ``<key>:std`` for every
    numeric result and cost key; ``<curve key>`` as the mean per iteration over the runs whose curves have
    the most common length.
    """
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        groups[tuple(run.get(k) for k in by)].append(run)
    rows = []
    for key in sorted(groups, key=lambda values: tuple(map(_sort_key, values))):
        members = groups[key]
        ok = [r for r in members if r.get("status") == "ok"]
        row: dict[str, Any] = dict(zip(by, key))
        row.update(runs=len(members), failed=len(members) - len(ok), seeds=sorted({r.get("seed") for r in ok}, key=_sort_key))
        row["primary_metric"] = next((r["primary_metric"] for r in ok if "primary_metric" in r), None)
        names = sorted({k for r in ok for k in r if k.startswith(RESULT_PREFIXES) or k in COSTS})
        for name in names:
            values = [r[name] for r in ok if is_number(r.get(name))]
            if values:
                row[name] = statistics.fmean(values)
                row[f"{name}:std"] = statistics.stdev(values) if len(values) > 1 else None
        for name in sorted({k for r in ok for k in r if k.startswith("curve/")}):
            curves = [r[name] for r in ok if isinstance(r.get(name), list) and r[name] and all(map(is_number, r[name]))]
            if curves:
                length = statistics.mode(len(c) for c in curves)
                row[name] = [statistics.fmean(step) for step in zip(*(c for c in curves if len(c) == length))]
        rows.append(row)
    return rows


def metric_info(runs: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The metric declarations (label, unit, ``higher_is_better``) that the runs' records carry, by metric name."""
    info: dict[str, dict[str, Any]] = {}
    for run in runs:
        for name, declaration in (run.get("metric_info") or {}).items():
            info.setdefault(name, declaration)
    return info


def higher_is_better(info: dict[str, dict[str, Any]], metric: str) -> bool:
    """Whether a higher ``metric`` is better, as declared (undeclared metrics read as errors: lower is better)."""
    return bool(info.get(metric, {}).get("higher_is_better", False))


def axis_label(info: dict[str, dict[str, Any]], metric: str) -> str:
    """``"NMSE (dB), lower is better"`` from the declaration of ``metric`` (its name when undeclared)."""
    declared = info.get(metric)
    if declared is None:
        return metric
    unit = f" ({declared['unit']})" if declared.get("unit") else ""
    return f"{declared['label']}{unit}, {'higher' if declared.get('higher_is_better') else 'lower'} is better"


def rank(rows: list[dict[str, Any]], runs: Iterable[dict[str, Any]], by: list[str]) -> None:
    """Set each row's ``rank``: its place by the mean test value of its primary metric, best first in the declared
    direction, among the rows of the same task that share every other grouping field (the methods and regimes
    compared at one point of the sweep). Rows without that value get no rank."""
    info = metric_info(runs)
    compared = [k for k in by if k not in ("method", "regime")]
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if is_number(row.get(f"test/{row.get('primary_metric')}")):
            groups[tuple(repr(row.get(k)) for k in compared)].append(row)
    for members in groups.values():
        metric = members[0]["primary_metric"]
        sign = -1.0 if higher_is_better(info, metric) else 1.0
        for place, row in enumerate(sorted(members, key=lambda r: sign * r[f"test/{metric}"]), 1):
            row["rank"] = place


def result_columns(rows: list[dict[str, Any]]) -> list[str]:
    """The aggregated numeric columns present in ``rows``: by metric its val, test, bound and reference values, then costs."""
    order = {prefix: i for i, prefix in enumerate(RESULT_PREFIXES)}
    metrics = sorted(
        {k for r in rows for k in r if k.startswith(RESULT_PREFIXES) and ":" not in k},
        key=lambda k: (k.split("/", 1)[1], order[k.split("/", 1)[0] + "/"]),
    )
    return [*metrics, *(c for c in COSTS if any(c in r for r in rows))]


def label(key: str) -> str:
    """Column label of a field: overrides shown by their key (``regime.n_train``)."""
    return key.split(":", 1)[1] if key.startswith("override:") else key


def text_rows(rows: list[dict[str, Any]], by: list[str]) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the summary table (``mean ± std`` per result column; call :func:`rank` first for the ranks)."""
    results = result_columns(rows)
    header = [*map(label, by), "runs", "failed", "rank", *results]
    cells = [
        [format_value(r.get(k)) for k in by] + [str(r["runs"]), str(r["failed"]), format_value(r.get("rank"))] + [format_value(r.get(c), r.get(f"{c}:std")) for c in results]
        for r in rows
    ]
    return header, cells
