"""The comparison dashboard: one self-contained HTML file (plotly charts with plotly.js inlined once, CSS, a little
JavaScript for the tables; works offline, requests nothing).

Per task: the spectrum chart (the primary test metric vs training-set size per method, the bound or
reference as a dashed line named by what it is), the metric vs iterations/layers (the per-iteration
curves), vs SNR (``task.snr_db``, every task's noise axis) and vs every other
swept numeric key, the metric against inference FLOPs per sample, trainable parameters and inference
time per method, and one example figure per method. Then the summary over seeds and the sortable table of
every run (click a header;
``dashboard.html#sort=<column>:desc`` sorts on load). Every name from a record is escaped.
"""

from __future__ import annotations

import base64
import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

from mbdl.results.aggregate import aggregate, axis_label, label, metric_info, result_columns, text_rows
from mbdl.results.charts import Colours, Run, Series, bar_chart, chart_html, is_logarithmic, line_chart, plotly_script
from mbdl.results.record import FIGURE_NAME, RECORD_NAME
from mbdl.results.tables import format_value, is_number

#: swept keys that set the training-set size (the spectrum chart's x axis, field ``n_train``).
N_TRAIN_KEYS = ("override:regime.n_train", "override:task.n_train")
#: the noise axis every task declares (``task.snr_db``, the SNR in dB in the task's own definition).
SNR_KEY = "override:task.snr_db"
#: what a record may hold beside a test metric, drawn dashed and named by what it is.
REFERENCE_KINDS = ("bound", "reference")
#: series beyond this many on one chart are dropped (and the drop is said under the chart).
MAX_SERIES = 10

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd}
.meta,.note{color:#555;font-size:13px}.charts{display:flex;flex-wrap:wrap;gap:12px}
.chart{border:1px solid #e3e3e3;border-radius:6px;background:#fcfcfc}
table{border-collapse:collapse;font-size:12px;margin:8px 0}th,td{border:1px solid #ddd;padding:3px 6px;text-align:left;white-space:nowrap}
th{background:#f3f3f3;cursor:pointer;user-select:none;position:sticky;top:0}th[aria-sort=ascending]::after{content:" \\25B2"}
th[aria-sort=descending]::after{content:" \\25BC"}tr.failed td{background:#fff0f0}.figures{display:flex;flex-wrap:wrap;gap:12px}
.scroll{overflow-x:auto;max-width:100%}figure{margin:0}figure img{max-width:420px;border:1px solid #e3e3e3}figcaption{font-size:12px;color:#555}
"""

SCRIPT = """
(function () {
  function key(row, i) {
    var v = row.cells[i].getAttribute('data-value');
    if (v === null || v === '') return [2, ''];
    return isNaN(Number(v)) ? [1, v] : [0, Number(v)];
  }
  function sortTable(table, i, dir) {
    var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a, i), y = key(b, i);
      if (x[0] !== y[0]) return x[0] - y[0];
      var d = x[1] < y[1] ? -1 : x[1] > y[1] ? 1 : 0;
      return dir === 'asc' ? d : -d;
    });
    rows.forEach(function (r) { body.appendChild(r); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, j) {
      th.setAttribute('aria-sort', j === i ? (dir === 'asc' ? 'ascending' : 'descending') : 'none');
    });
  }
  var tables = document.querySelectorAll('table.sortable');
  Array.prototype.forEach.call(tables, function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, i) {
      th.addEventListener('click', function () {
        sortTable(table, i, th.getAttribute('aria-sort') === 'ascending' ? 'desc' : 'asc');
      });
    });
  });
  var m = /sort=([^:&]+)(?::(asc|desc))?/.exec(decodeURIComponent(location.hash));
  if (m) Array.prototype.forEach.call(tables, function (table) {
    var heads = Array.prototype.slice.call(table.tHead.rows[0].cells);
    var i = heads.findIndex(function (th) { return th.getAttribute('data-key') === m[1]; });
    if (i >= 0) sortTable(table, i, m[2] || 'asc');
  });
  document.body.setAttribute('data-ready', 'true');
})();
"""


def _series_label(row: dict[str, Any], fields: list[str]) -> str:
    """``method regime key=value ...`` for a row of :func:`aggregate` (keys by their last part: ``n_train=10``)."""
    parts = (str(row.get(f)) if not f.startswith("override:") else f"{label(f).rsplit('.', 1)[-1]}={'default' if row.get(f) is None else row[f]}" for f in fields)
    return " ".join(parts)


def _run_points(runs: list[dict[str, Any]], fields: list[str], x: str, y: str) -> dict[str, list[Run]]:
    """Every ok run's ``(x, y)`` by the label of its series: what a mean point is the mean of."""
    points: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        if run.get("status") == "ok" and is_number(run.get(x)) and is_number(run.get(y)):
            overrides = " ".join(run.get("overrides") or [])
            points[_series_label(run, fields)].append(Run(Path(run["run_dir"]).name, overrides, run[x], run[y]))
    return points


def _series(rows: list[dict[str, Any]], fields: list[str], x: str, y: str, runs: list[dict[str, Any]] | None = None) -> list[Series]:
    """One :class:`Series` per distinct value of ``fields``: ``x`` against the mean ``y`` ± its std over the seeds,
    with the ``runs`` behind each point."""
    lines: dict[str, Series] = {}
    points = _run_points(runs or [], fields, x, y)
    for row in rows:
        if isinstance(row.get(x), (int, float)) and y in row:
            name = _series_label(row, fields)
            line = lines.setdefault(name, Series(name, [], [], runs=points.get(name, [])))
            line.x.append(row[x])
            line.y.append(row[y])
            line.err.append(row.get(f"{y}:std") or 0.0)
            line.seeds.append(len(row.get("seeds") or []))
    return list(lines.values())


def _bound(runs: list[dict[str, Any]], metric: str, x: str, fields: list[str]) -> list[Series]:
    """The task's bound or reference for ``metric`` (mean over runs) against ``x``, a dashed line per value of the
    swept ``fields``, labelled with what it is (``bound: oracle least squares ...`` or ``reference: ...``)."""
    lines = []
    for kind in REFERENCE_KINDS:
        rows = [r for r in aggregate(runs, [*fields, x]) if f"{kind}/{metric}" in r and r[x] is not None]
        name = next((r["reference_names"][metric] for r in runs if metric in (r.get("reference_names") or {})), "")
        for line in _series(rows, fields, x, f"{kind}/{metric}"):
            line.label, line.err, line.dashed = " ".join([f"{kind}:", name, line.label]).strip(), [], True
            lines.append(line)
    return lines


class Charts:
    """Numbers the charts of a page as they are drawn (each one a ``<div id="chart-N">``)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, figure: Any) -> str:
        self.count += 1
        return chart_html(figure, f"chart-{self.count}")


def _note(title: str, text: str) -> str:
    return f'<p class="note">{escape(title)}: {escape(text)}</p>'


@dataclass
class TaskCharts:
    """The charts of one task's runs; a series is a method (and regime, when several) at each value of the other swept keys."""

    runs: list[dict[str, Any]]
    swept: list[str]
    draw: Charts
    colours: Colours = field(default_factory=Colours)

    def __post_init__(self) -> None:
        self.ok = [r for r in self.runs if r.get("status") == "ok"]
        self.metric = Counter(r["primary_metric"] for r in self.ok).most_common(1)[0][0] if self.ok else ""
        info = metric_info(self.ok)
        self.ylabel = axis_label(info, self.metric)
        self.name = info.get(self.metric, {}).get("label", self.metric)
        self.others = [k for k in self.swept if k not in N_TRAIN_KEYS and len({repr(r.get(k)) for r in self.runs}) > 1]
        self.identity = ["method", "regime"] if len({r["regime"] for r in self.runs}) > 1 else ["method"]
        self.largest = max((r["n_train"] for r in self.ok if r.get("n_train") is not None), default=None)
        self.at_largest = [r for r in self.runs if r.get("n_train") == self.largest]

    def all(self) -> list[str]:
        if not self.ok:
            return ['<p class="note">No finished run: nothing to chart.</p>']
        return [self.spectrum(), self.iterations(), *self.swept_keys(), self.error_vs_flops(), *self.costs()]

    def _lines(self, title: str, xlabel: str, series: list[Series], logx: bool = False) -> str:
        """A line chart, or a note when there is nothing to draw; says when series were dropped."""
        series = [s for s in series if s.x]
        if not series:
            return _note(title, "nothing to draw in these runs.")
        dropped = len(series) - MAX_SERIES
        chart = self.draw(line_chart(title, xlabel, self.ylabel, series[:MAX_SERIES], logx, self.colours))
        return chart + (f'<p class="note">{dropped} more series not drawn.</p>' if dropped > 0 else "")

    def spectrum_series(self) -> list[Series]:
        """The spectrum chart's lines: each series' mean test metric vs training-set size, and the bound or reference."""
        rows = aggregate(self.runs, [*self.identity, *self.others, "n_train"])
        fields = self.identity + self.others
        return _series(rows, fields, "n_train", f"test/{self.metric}", self.runs) + _bound(self.ok, self.metric, "n_train", self.others)

    def spectrum(self) -> str:
        """Test error vs training-set size (log axis where the sizes are log-spaced), the bound dashed."""
        series = self.spectrum_series()
        sizes = [r["n_train"] for r in self.ok if is_number(r.get("n_train"))]
        return self._lines(f"the spectrum: {self.name} vs training-set size", "n_train", series, is_logarithmic(sizes))

    def iterations(self) -> str:
        """The mean per-iteration curves at the largest training set, the bound dashed."""
        curve = f"curve/{self.metric}"
        groups = aggregate(self.at_largest, [*self.identity, *self.others])
        series = [Series(_series_label(r, self.identity + self.others), list(range(1, len(r[curve]) + 1)), r[curve], seeds=[len(r["seeds"])] * len(r[curve])) for r in groups if curve in r]
        depth = max((len(s.x) for s in series), default=0)
        if depth:
            series += [Series(line.label, [1, depth], [line.y[0]] * 2, dashed=True) for line in _bound(self.at_largest, self.metric, "n_train", self.others)]
        return self._lines(f"{self.name} vs iterations/layers (n_train={self.largest})", "iteration / layer", series, depth > 20)

    def swept_keys(self) -> list[str]:
        """Error vs each swept numeric key, SNR first (a note when no SNR was swept), the bound at each value."""
        numeric = [k for k in self.others if all(isinstance(r.get(k), (int, float)) for r in self.runs)]
        snr = [k for k in numeric if k == SNR_KEY]
        charts = [] if snr else [_note(f"{self.name} vs SNR", "no SNR sweep in these runs (every task has task.snr_db: sweep it, e.g. task.snr_db=0,10,20).")]
        for key in snr + [k for k in numeric if k not in snr]:
            rest = [k for k in self.others if k != key]
            rows = aggregate(self.at_largest, [*self.identity, *rest, key])
            series = _series(rows, self.identity + rest, key, f"test/{self.metric}", self.at_largest) + _bound(self.at_largest, self.metric, key, rest)
            title = f"{self.name} vs SNR ({label(key)})" if key in snr else f"{self.name} vs {label(key)}"
            charts.append(self._lines(title, label(key), series, is_logarithmic([r[key] for r in self.runs])))
        return charts

    def error_vs_flops(self) -> str:
        """Test error against FLOPs per sample at the largest training set, one point per series: the cost of each
        point of the spectrum. An open marker: a count without some operations (``flops_uncounted``, a lower bound)."""
        title = f"{self.name} vs inference FLOPs per sample (n_train={self.largest})"
        fields = self.identity + self.others
        rows = [r for r in aggregate(self.at_largest, fields) if is_number(r.get("flops_per_sample")) and r["flops_per_sample"] > 0]
        series = []
        for row in rows:
            name = _series_label(row, fields)
            uncounted = sorted({op for r in self.at_largest if _series_label(r, fields) == name for op in r.get("flops_uncounted") or []})
            note = f"<br>not counted (no formula in torch's counter): {escape(', '.join(uncounted))}: a lower bound" if uncounted else ""
            line = Series(name, [row["flops_per_sample"]], [row[f"test/{self.metric}"]], [row.get(f"test/{self.metric}:std") or 0.0], [len(row["seeds"])], notes=[note], open_markers=[bool(uncounted)])
            line.runs = _run_points(self.at_largest, fields, "flops_per_sample", f"test/{self.metric}").get(name, [])
            series.append(line)
        if not series:
            return _note(title, "no run records flops_per_sample.")
        chart = self.draw(line_chart(title, "FLOPs per sample (torch's counter; open marker: a lower bound)", self.ylabel, series[:MAX_SERIES], True, self.colours, lines=False))
        return chart

    def costs(self) -> list[str]:
        """Trainable parameters and inference time per series, at the largest training set."""
        groups = aggregate(self.at_largest, [*self.identity, *self.others])
        names = [_series_label(r, self.identity + self.others) for r in groups]
        return [
            self.draw(bar_chart(f"trainable parameters (n_train={self.largest})", "", [(n, r.get("params", 0.0)) for n, r in zip(names, groups)], self.colours)),
            self.draw(bar_chart(f"inference time (n_train={self.largest})", "ms/sample", [(n, r.get("infer_ms_per_sample", 0.0)) for n, r in zip(names, groups)], self.colours)),
        ]


def _figures(runs: list[dict[str, Any]], identity: list[str]) -> str:
    """One example figure (the run's figure.png, inlined) per method: the first finished run that saved one."""
    shown: dict[str, str] = {}
    for run in runs:
        name = " ".join(str(run[f]) for f in identity)
        path = Path(run["run_dir"]) / FIGURE_NAME
        if run.get("status") == "ok" and name not in shown and path.is_file():
            data = base64.b64encode(path.read_bytes()).decode()
            caption = escape(f"{name}, seed {run.get('seed')}: {Path(run['run_dir']).name}")
            shown[name] = f'<figure><img alt="{caption}" src="data:image/png;base64,{data}"><figcaption>{caption}</figcaption></figure>'
    return f'<div class="figures">{"".join(shown.values())}</div>' if shown else ""


def _cell(value: Any, text: str | None = None) -> str:
    sort = "" if value is None or isinstance(value, (list, dict)) else escape(str(value), quote=True)
    return f'<td data-value="{sort}">{escape(text if text is not None else format_value(value))}</td>'


def _table(header: list[tuple[str, str]], rows: list[str], css: str = "sortable") -> str:
    heads = "".join(f'<th data-key="{escape(key, quote=True)}" aria-sort="none">{escape(text)}</th>' for key, text in header)
    return f'<div class="scroll"><table class="{css}"><thead><tr>{heads}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'


def _summary_table(rows: list[dict[str, Any]], by: list[str]) -> str:
    """The groups of :func:`aggregate` with ``mean ± std`` and their rank; sorts by the mean."""
    header, cells = text_rows(rows, by)
    keys = [*by, "runs", "failed", "rank", *result_columns(rows)]
    body = []
    for row, texts in zip(rows, cells):
        body.append("<tr>" + "".join(_cell(row.get(k), t) for k, t in zip(keys, texts)) + "</tr>")
    return _table([(label(k), h) for k, h in zip(keys, header)], body)


def _run_table(runs: list[dict[str, Any]], swept: list[str], base: Path) -> str:
    """Every run: identity, status, swept keys, results, its directory (linked) and its error."""
    results = result_columns(runs)
    keys = ["task", "method", "regime", "seed", "status", *swept, *results]
    body = []
    for run in runs:
        cells = "".join(_cell(run.get(k)) for k in keys)
        target = Path(run["run_dir"]) / (FIGURE_NAME if (Path(run["run_dir"]) / FIGURE_NAME).is_file() else RECORD_NAME)
        link = escape(os.path.relpath(target, base), quote=True)
        name = Path(run["run_dir"]).name
        cells += f'<td data-value="{escape(name, quote=True)}"><a href="{link}">{escape(name)}</a></td>' + _cell(run.get("error", ""), run.get("error", ""))
        body.append(f'<tr class="{"ok" if run.get("status") == "ok" else "failed"}">{cells}</tr>')
    header = [(k, label(k)) for k in keys] + [("run", "run"), ("error", "error")]
    return _table(header, body)


def render(runs: list[dict[str, Any]], swept: list[str], rows: list[dict[str, Any]], by: list[str], base: Path) -> str:
    """The dashboard's HTML for ``runs`` (from :func:`~mbdl.results.aggregate.load_runs`) and their groups ``rows``."""
    failed = [r for r in runs if r.get("status") != "ok"]
    tasks: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        tasks[str(run.get("task"))].append(run)
    body = [
        "<h1>mbdl comparison</h1>",
        f'<p class="meta">{len(runs)} runs ({len(failed)} failed) in {len(rows)} groups; swept: {escape(", ".join(map(label, swept)) or "nothing")}. '
        "Each point: the mean over seeds with ± one std, the seeds\' own runs faint behind it (hover for run, overrides and value; "
        "click a legend entry to hide or show a series); each chart\'s axis says which direction is better; dashed: the task\'s bound or reference.</p>",
    ]
    draw = Charts()
    for task, task_runs in sorted(tasks.items()):
        body.append(f"<h2>{escape(task)}</h2>")
        body.append(f'<div class="charts">{"".join(TaskCharts(task_runs, swept, draw).all())}</div>')
        body.append(_figures(task_runs, ["method", "regime"]))
    body += ["<h2>summary over seeds</h2>", _summary_table(rows, by), "<h2>runs</h2>", _run_table(runs, swept, base)]
    if failed:
        items = "".join(f"<li>{escape(Path(r['run_dir']).name)}: {escape(str(r.get('error', '')))}</li>" for r in failed)
        body.append(f"<h2>failed runs</h2><ul>{items}</ul>")
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>mbdl comparison</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{STYLE}</style>'
        f'<script id="plotly-js">{plotly_script()}</script></head>'
        f'<body>{"".join(body)}<script>{SCRIPT}</script></body></html>\n'
    )


def write_dashboard(path: Path, runs: list[dict[str, Any]], swept: list[str], rows: list[dict[str, Any]], by: list[str]) -> Path:
    """Write :func:`render`'s HTML to ``path`` (links to run directories relative to it)."""
    path.write_text(render(runs, swept, rows, by, path.parent), encoding="utf-8")
    return path
