"""``mbdl compare DIR ...``: aggregate run records over seeds, print a table, write CSV, Markdown and a dashboard.

Runs are grouped by task, method, regime and every *swept* key (see :mod:`mbdl.results.aggregate`);
each group has the mean and standard deviation over its seeds, and a ``rank`` among the methods at
the same sweep point, by the primary test metric in the direction the task declares. Failed runs are
counted per group and listed.

Writes ``summary.csv``, ``summary.md`` and ``dashboard.html`` (see :mod:`mbdl.results.dashboard`)
to ``--out`` (default: the first DIR).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from mbdl.results.aggregate import IDENTITY, aggregate, label, load_runs, rank, result_columns, text_rows
from mbdl.results.dashboard import write_dashboard
from mbdl.results.tables import fixed_width, markdown, write_csv


def write_summary_csv(path: Path, rows: list[dict[str, Any]], by: list[str]) -> Path:
    """One row per group: the group fields, counts, rank, and ``<key>`` / ``<key>_std`` for every result column."""
    results = result_columns(rows)
    header = [*map(label, by), "runs", "failed", "rank", *(name for c in results for name in (c, f"{c}_std"))]
    cells = [[r.get(k) for k in by] + [r["runs"], r["failed"], r.get("rank")] + [v for c in results for v in (r.get(c), r.get(f"{c}:std"))] for r in rows]
    return write_csv(path, header, cells)


def failures(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The runs whose status is not ``ok``."""
    return [r for r in runs if r.get("status") != "ok"]


def compare(dirs: list[str | Path], out: str | Path | None = None, by: list[str] | None = None) -> dict[str, Any]:
    """Aggregate the runs under ``dirs``, write ``summary.csv``, ``summary.md`` and ``dashboard.html`` to ``out``.

    Raises :class:`FileNotFoundError` when there is no run record. Returns ``runs``, ``swept`` (the swept keys), ``by`` (the grouping fields), ``rows`` (the
    aggregated groups), ``table`` (the printed text) and ``paths`` (the files written).
    """
    runs, swept = load_runs(*dirs)
    if not runs:
        raise FileNotFoundError(f"no run records (metrics.json) under {', '.join(map(str, dirs))}")
    group_by = [*IDENTITY, *swept, *(f"override:{k}" for k in by or [] if f"override:{k}" not in swept)]
    rows = aggregate(runs, group_by)
    rank(rows, runs, group_by)
    header, cells = text_rows(rows, group_by)
    out = Path(out or dirs[0])
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out / "summary.csv", "markdown": out / "summary.md", "dashboard": out / "dashboard.html"}
    write_summary_csv(paths["csv"], rows, group_by)
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
