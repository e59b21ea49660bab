"""``mbdl compare DIR ...``: aggregate run records over seeds, print a table, write CSV, Markdown and a dashboard.

Runs are grouped by task, method, regime and every *swept* key (an override whose value differs
between the runs, the seed excepted); each group holds the seeds. For every numeric result
(``test/<m>``, ``bound/<m>``, ``params``, ``train_time_s``, ``infer_ms_per_sample``) a group has the
mean and the standard deviation over its ``ok`` runs (``ddof=1``; none for one run), and for every
``curve/<m>`` the mean per iteration. Failed runs are counted per group and listed.

Writes ``summary.csv``, ``summary.md`` and ``dashboard.html`` (see :mod:`mbdl.results.dashboard`)
to ``--out`` (default: the first DIR).
"""

from __future__ import annotations

import argparse
import csv
import math
import statistics
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from mbdl.results.record import flatten, read_records

#: the fields that identify a group in every comparison.
IDENTITY = ("task", "method", "regime")
#: overrides that never define a group: the seed is what is averaged over; resume changes no result.
NOT_SWEPT = ("seed", "resume")
#: numeric results aggregated besides ``test/*`` and ``bound/*``.
COSTS = ("params", "train_time_s", "infer_ms_per_sample")
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
    path = Path(run_dir) / ".hydra" / "config.yaml"
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


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _sort_key(value: Any) -> tuple:
    """Numbers before strings, numbers in numeric order; ``None`` last."""
    if value is None:
        return (2, "")
    return (0, value, "") if _finite(value) else (1, str(value))


def aggregate(runs: Iterable[dict[str, Any]], by: list[str]) -> list[dict[str, Any]]:
    """One row per distinct value of the fields ``by``: run counts, mean and std over the ok runs.

    A row has ``runs``, ``failed``, ``seeds``; ``<key>`` (mean) and ``<key>:std`` for every numeric
    ``test/``, ``bound/`` and cost key; ``<curve key>`` as the mean per iteration over the runs
    whose curves have the most common length.
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
        names = sorted({k for r in ok for k in r if k.startswith(("test/", "bound/")) or k in COSTS})
        for name in names:
            values = [r[name] for r in ok if _finite(r.get(name))]
            if values:
                row[name] = statistics.fmean(values)
                row[f"{name}:std"] = statistics.stdev(values) if len(values) > 1 else None
        for name in sorted({k for r in ok for k in r if k.startswith("curve/")}):
            curves = [r[name] for r in ok if isinstance(r.get(name), list) and r[name] and all(map(_finite, r[name]))]
            if curves:
                length = statistics.mode(len(c) for c in curves)
                row[name] = [statistics.fmean(step) for step in zip(*(c for c in curves if len(c) == length))]
        rows.append(row)
    return rows


def result_columns(rows: list[dict[str, Any]]) -> list[str]:
    """The aggregated numeric columns present in ``rows``: test metrics and bounds (by metric), then costs."""
    metrics = sorted({k for r in rows for k in r if k.startswith(("test/", "bound/")) and ":" not in k}, key=lambda k: (k.split("/", 1)[1], k))
    return [*metrics, *(c for c in COSTS if any(c in r for r in rows))]


def format_value(value: Any, std: Any = None) -> str:
    """``mean ± std`` with 4 significant digits; ``-`` when missing."""
    if value is None:
        return "-"
    if not _finite(value):
        return str(value)
    text = f"{value:.0f}" if float(value).is_integer() and abs(value) < 1e7 else f"{value:.4g}"
    return f"{text} ± {std:.2g}" if _finite(std) else text


def label(key: str) -> str:
    """Column label of a field: overrides shown by their key (``regime.n_train``)."""
    return key.split(":", 1)[1] if key.startswith("override:") else key


def text_rows(rows: list[dict[str, Any]], by: list[str]) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the summary table (``mean ± std`` per result column)."""
    results = result_columns(rows)
    header = [*map(label, by), "runs", "failed", *results]
    cells = [[format_value(r.get(k)) for k in by] + [str(r["runs"]), str(r["failed"])] + [format_value(r.get(c), r.get(f"{c}:std")) for c in results] for r in rows]
    return header, cells


def fixed_width(header: list[str], cells: list[list[str]]) -> str:
    """A plain-text table with aligned columns."""
    widths = [max(len(h), *(len(row[i]) for row in cells)) if cells else len(h) for i, h in enumerate(header)]
    line = lambda values: "  ".join(v.ljust(w) for v, w in zip(values, widths)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, cells)])


def markdown(header: list[str], cells: list[list[str]]) -> str:
    """A GitHub-flavoured Markdown table (``|`` in cells escaped)."""
    escape = lambda v: v.replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(map(escape, header)) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(map(escape, row)) + " |" for row in cells]) + "\n"


def write_csv(path: Path, rows: list[dict[str, Any]], by: list[str]) -> None:
    """One row per group: the group fields, counts, and ``<key>`` / ``<key>_std`` for every result column."""
    results = result_columns(rows)
    header = [*map(label, by), "runs", "failed", *(name for c in results for name in (c, f"{c}_std"))]
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for r in rows:
            writer.writerow([r.get(k) for k in by] + [r["runs"], r["failed"]] + [v for c in results for v in (r.get(c), r.get(f"{c}:std"))])


def failures(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The runs whose status is not ``ok``."""
    return [r for r in runs if r.get("status") != "ok"]


def compare(dirs: list[str | Path], out: str | Path | None = None, by: list[str] | None = None) -> dict[str, Any]:
    """Aggregate the runs under ``dirs``, write ``summary.csv``, ``summary.md`` and ``dashboard.html`` to ``out``.

    Raises :class:`FileNotFoundError` when there is no run record. Returns ``runs``, ``swept`` (the swept keys), ``by`` (the grouping fields), ``rows`` (the
    aggregated groups), ``table`` (the printed text) and ``paths`` (the files written).
    """
    from mbdl.results.dashboard import write_dashboard

    runs, swept = load_runs(*dirs)
    if not runs:
        raise FileNotFoundError(f"no run records (metrics.json) under {', '.join(map(str, dirs))}")
    group_by = [*IDENTITY, *swept, *(f"override:{k}" for k in by or [] if f"override:{k}" not in swept)]
    rows = aggregate(runs, group_by)
    header, cells = text_rows(rows, group_by)
    out = Path(out or dirs[0])
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out / "summary.csv", "markdown": out / "summary.md", "dashboard": out / "dashboard.html"}
    write_csv(paths["csv"], rows, group_by)
    paths["markdown"].write_text(markdown(header, cells))
    write_dashboard(paths["dashboard"], runs, swept, rows, group_by)
    failed = failures(runs)
    lines = [fixed_width(header, cells), ""]
    if failed:
        lines += [f"{len(failed)} of {len(runs)} runs failed:"] + [f"  {r['run_dir']}: {r.get('error', '')}" for r in failed] + [""]
    lines += [f"{len(runs)} runs, {len(rows)} groups; wrote " + ", ".join(str(p) for p in paths.values())]
    return {"runs": runs, "swept": swept, "by": group_by, "rows": rows, "table": "\n".join(lines), "paths": paths}


def main(argv: list[str] | None = None) -> None:
    """``mbdl compare DIR ... [--out DIR] [--by KEY ...]``."""
    parser = argparse.ArgumentParser(prog="mbdl compare", description=__doc__.split("\n\n")[0].split(": ", 1)[1])
    parser.add_argument("dirs", nargs="+", help="run or sweep directories (searched recursively for metrics.json)")
    parser.add_argument("--out", "-o", help="where to write summary.csv, summary.md and dashboard.html (default: the first DIR)")
    parser.add_argument("--by", nargs="*", default=[], metavar="KEY", help="also group by these override keys (swept keys are found by themselves)")
    args = parser.parse_args(argv)
    missing = [d for d in args.dirs if not Path(d).is_dir()]
    if missing:
        parser.error(f"not a directory: {', '.join(missing)}")
    try:
        result = compare(args.dirs, args.out, args.by)
    except FileNotFoundError as error:
        parser.error(str(error))
    print(result["table"])


if __name__ == "__main__":
    main()
