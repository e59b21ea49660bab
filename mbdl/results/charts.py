"""Interactive charts drawn by plotly, whose JavaScript the page inlines once (:func:`plotly_script`): no CDN, works offline.

A line chart has, per series, the mean over seeds with ± one standard deviation as error bars and, faint behind
it, every run's own value; hovering a mean shows its value, spread and seeds, hovering a run its directory,
overrides and value. Bounds and references are dashed lines named by what they are. Clicking a legend entry
hides or shows a series (with its runs); an axis is logarithmic where the swept values are (:func:`is_logarithmic`).
Every text taken from a record is HTML-escaped before plotly sees it.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from functools import cache
from html import escape

import plotly.graph_objects as go
import plotly.io as pio

#: colour-blind-safe palette (Okabe & Ito), cycled over the series.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
#: the dashed lines (bounds, references) in greys.
BOUND_COLOURS = ("#333333", "#888888", "#BBBBBB")
WIDTH, HEIGHT = 580, 440
#: plotly's options for every chart: no link to plotly's cloud, no logo; the modebar's PNG export stays.
CONFIG = {"displaylogo": False, "displayModeBar": "hover", "responsive": False, "modeBarButtonsToRemove": ["sendDataToCloud"]}


@dataclass
class Run:
    """One run behind a point: its directory's name, its overrides and its value."""

    name: str
    overrides: str
    x: float
    y: float


@dataclass
class Series:
    """One line: points ``(x, y)`` (means over seeds) with their spread ``err`` (± one std) and ``seeds`` (how many),
    the ``runs`` behind them, and ``notes`` shown on hover per point; ``dashed`` for a bound or reference."""

    label: str
    x: list[float]
    y: list[float]
    err: list[float] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    runs: list[Run] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    dashed: bool = False
    open_markers: list[bool] = field(default_factory=list)


class Colours:
    """The same colour for the same label on every chart of a page (first come, first served from :data:`PALETTE`)."""

    def __init__(self) -> None:
        self.assigned: dict[str, str] = {}

    def __call__(self, label: str) -> str:
        return self.assigned.setdefault(label, PALETTE[len(self.assigned) % len(PALETTE)])


@cache
def plotly_script() -> str:
    """plotly.js (the bundle the installed plotly package ships) for one inline ``<script>`` of the page."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def is_logarithmic(values: list[float]) -> bool:
    """Whether swept values are spaced logarithmically: all positive and spanning at least a decade, with consecutive
    ratios more even than consecutive differences (10, 30, 100, 300, 1000 is; 0, 10, 20, 30 is not; two values a
    decade or more apart are)."""
    distinct = sorted(set(values))
    if not distinct or distinct[0] <= 0 or distinct[-1] / distinct[0] < 10:
        return False
    if len(distinct) < 3:
        return True
    differences = [b - a for a, b in zip(distinct, distinct[1:])]
    ratios = [b / a for a, b in zip(distinct, distinct[1:])]
    spread = lambda steps: statistics.pstdev(steps) / statistics.fmean(steps)  # noqa: E731
    return spread(ratios) < spread(differences)


def _fmt(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() and abs(value) < 1e7 else f"{value:.4g}"


def _layout(title: str, xlabel: str, ylabel: str, logx: bool, height: int = HEIGHT) -> dict:
    return {
        "title": {"text": escape(title), "font": {"size": 14}},
        "width": WIDTH,
        "height": height,
        "margin": {"l": 64, "r": 16, "t": 48, "b": 40},
        "xaxis": {"title": {"text": escape(xlabel)}, "type": "log" if logx else "linear", "gridcolor": "#eee", "zeroline": False},
        "yaxis": {"title": {"text": escape(ylabel)}, "gridcolor": "#eee", "zeroline": False},
        "legend": {"font": {"size": 11}, "groupclick": "togglegroup", "orientation": "h", "yanchor": "top", "y": -0.22, "xanchor": "left", "x": 0},
        "hoverlabel": {"align": "left"},
        "plot_bgcolor": "#fff",
        "paper_bgcolor": "#fcfcfc",
    }


def line_chart(title: str, xlabel: str, ylabel: str, series: list[Series], logx: bool = False, colours: Colours | None = None, lines: bool = True) -> go.Figure:
    """``series`` as lines (``lines=False``: markers only) with error bars and their runs' points behind them."""
    colours = colours or Colours()
    figure = go.Figure(layout=_layout(title, xlabel, ylabel, logx))
    xs = [x for s in series for x in s.x]
    bounds = 0
    for s in series:
        label = escape(s.label)
        if s.dashed:
            colour = BOUND_COLOURS[bounds % len(BOUND_COLOURS)]
            bounds += 1
            low, high = min(xs), max(xs)
            if low == high:  # every series at one x: a short level around it
                low, high = (low / 1.5, high * 1.5) if logx or low > 0 else (low - 1, high + 1)
            x, y = (s.x, s.y) if len(set(s.x)) > 1 else ([low, high], [s.y[0]] * 2)  # one value: a level across the chart
            figure.add_trace(go.Scatter(
                x=x, y=y, name=label, mode="lines", line={"color": colour, "dash": "dash", "width": 2},
                hovertemplate=f"{label}<br>{escape(ylabel)}: %{{y:.4g}}<extra></extra>",
            ))
            continue
        colour = colours(s.label)
        order = sorted(range(len(s.x)), key=lambda j: s.x[j])
        err = [s.err[j] if s.err else 0.0 for j in order]
        seeds = [s.seeds[j] if s.seeds else 1 for j in order]
        notes = [s.notes[j] if s.notes else "" for j in order]
        symbols = ["circle-open" if s.open_markers and s.open_markers[j] else "circle" for j in order]
        custom = [[f" ± {_fmt(e)}" if e else "", n, note] for e, n, note in zip(err, seeds, notes)]
        figure.add_trace(go.Scatter(
            x=[s.x[j] for j in order], y=[s.y[j] for j in order], name=label, legendgroup=label,
            mode="lines+markers" if lines else "markers", line={"color": colour, "width": 2}, marker={"size": 8 if lines else 11, "color": colour, "symbol": symbols},
            error_y={"type": "data", "array": err, "visible": any(err), "color": colour, "thickness": 1.2},
            customdata=custom,
            hovertemplate=f"<b>{label}</b><br>{escape(xlabel)} = %{{x}}<br>{escape(ylabel)}: %{{y:.4g}}%{{customdata[0]}}<br>mean over %{{customdata[1]}} seed(s)%{{customdata[2]}}<extra></extra>",
        ))
        if s.runs:
            figure.add_trace(go.Scatter(
                x=[r.x for r in s.runs], y=[r.y for r in s.runs], name=f"{label}: runs", legendgroup=label, showlegend=False,
                mode="markers", marker={"size": 5, "color": colour, "opacity": 0.35},
                customdata=[[escape(r.name), escape(r.overrides)] for r in s.runs],
                hovertemplate=f"run %{{customdata[0]}}<br>overrides: %{{customdata[1]}}<br>{escape(ylabel)}: %{{y:.4g}}<extra></extra>",
            ))
    return figure


def bar_chart(title: str, unit: str, bars: list[tuple[str, float]], colours: Colours | None = None, logx: bool = False) -> go.Figure:
    """Horizontal bars of ``(label, value)`` pairs, each value written at its bar."""
    colours = colours or Colours()
    names = [escape(name) for name, _ in bars]
    values = [value for _, value in bars]
    figure = go.Figure(layout=_layout(title, unit, "", logx, height=100 + 26 * len(bars)))
    figure.add_trace(go.Bar(
        y=names, x=values, orientation="h", marker={"color": [colours(name) for name, _ in bars]},
        text=[f"{_fmt(v)} {escape(unit)}" for v in values], textposition="auto",
        hovertemplate=f"%{{y}}: %{{x:.4g}} {escape(unit)}<extra></extra>", showlegend=False,
    ))
    figure.update_layout(yaxis={"autorange": "reversed", "automargin": True}, margin={"l": 8})
    return figure


def chart_html(figure: go.Figure, div_id: str) -> str:
    """The ``<div>`` of one chart and its call of ``Plotly.newPlot`` (plotly.js itself is inlined once, by the page)."""
    return f'<div class="chart">{pio.to_html(figure, include_plotlyjs=False, full_html=False, div_id=div_id, config=CONFIG, validate=True)}</div>'
