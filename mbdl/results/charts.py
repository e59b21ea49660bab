"""Inline SVG charts (no JavaScript, no CDN): lines with error bars, and horizontal bars.

All text is escaped; every point carries a ``<title>`` tooltip with its exact value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape

#: colour-blind-safe palette (Okabe & Ito), cycled over the series.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
#: series with more points are drawn as plain lines (no markers).
MAX_MARKERS = 30
#: the dashed lines (bounds) in greys.
BOUND_COLOURS = ("#333333", "#888888", "#BBBBBB")
WIDTH, HEIGHT = 600, 320
LEFT, RIGHT, TOP, BOTTOM = 64, 200, 30, 46


@dataclass
class Series:
    """One line: points ``(x, y)`` with optional error bars ``err`` (± one std); ``dashed`` for bounds."""

    label: str
    x: list[float]
    y: list[float]
    err: list[float] = field(default_factory=list)
    dashed: bool = False


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values covering ``[low, high]``."""
    if high <= low:
        return [low]
    raw = (high - low) / count
    step = 10 ** math.floor(math.log10(raw))
    step *= next(m for m in (1, 2, 5, 10) if step * m >= raw)
    first = math.ceil(low / step - 1e-9) * step
    return [first + i * step for i in range(int((high - first) / step + 1e-9) + 1)]


def _log_ticks(low: float, high: float) -> list[float]:
    """Powers of ten (and 2, 5 × them when the range is short) within ``[low, high]``."""
    decades = range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)
    mantissas = (1, 2, 5) if math.log10(high / low) < 2.5 else (1,)
    ticks = [m * 10.0**d for d in decades for m in mantissas if low * (1 - 1e-9) <= m * 10.0**d <= high * (1 + 1e-9)]
    return ticks or [low, high]


class Colours:
    """The same colour for the same label on every chart of a page (first come, first served from :data:`PALETTE`)."""

    def __init__(self) -> None:
        self.assigned: dict[str, str] = {}

    def __call__(self, label: str) -> str:
        return self.assigned.setdefault(label, PALETTE[len(self.assigned) % len(PALETTE)])


def _fmt(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() and abs(value) < 1e7 else f"{value:.4g}"


def _short(text: str, length: int = 26) -> str:
    """``text`` cut to ``length`` characters (the full text stays in the tooltip)."""
    return text if len(text) <= length else text[: length - 1] + "\u2026"


def line_chart(title: str, xlabel: str, ylabel: str, series: list[Series], logx: bool = False, colours: Colours | None = None) -> str:
    """An SVG line chart of ``series`` (markers, error bars, legend on the right); ``logx`` for a log x axis.

    Markers (with tooltips) are drawn for series of at most :data:`MAX_MARKERS` points.
    """
    colours = colours or Colours()
    xs = [x for s in series for x in s.x]
    ys = [y + sign * e for s in series for y, e in zip(s.y, s.err or [0.0] * len(s.y)) for sign in (-1, 1)]
    logx = logx and all(x > 0 for x in xs)
    fx = math.log10 if logx else float
    x0, x1 = fx(min(xs)), fx(max(xs))
    y0, y1 = min(ys), max(ys)
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    pad = (y1 - y0) * 0.05 or abs(y0) * 0.1 or 1.0
    y0, y1 = y0 - pad, y1 + pad
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    px = lambda x: LEFT + (fx(x) - x0) / (x1 - x0) * plot_w  # noqa: E731
    py = lambda y: TOP + (y1 - y) / (y1 - y0) * plot_h  # noqa: E731
    parts = [f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" class="frame"/>']
    for tick in _log_ticks(10**x0, 10**x1) if logx else _ticks(x0, x1):
        parts.append(f'<line x1="{px(tick):.1f}" x2="{px(tick):.1f}" y1="{TOP}" y2="{TOP + plot_h}" class="grid"/>')
        parts.append(f'<text x="{px(tick):.1f}" y="{TOP + plot_h + 16}" class="tick" text-anchor="middle">{_fmt(tick)}</text>')
    for tick in _ticks(y0, y1):
        parts.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{py(tick):.1f}" y2="{py(tick):.1f}" class="grid"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{py(tick) + 4:.1f}" class="tick" text-anchor="end">{_fmt(tick)}</text>')
    for i, s in enumerate(series):
        bounds = sum(t.dashed for t in series[:i])
        colour = BOUND_COLOURS[bounds % len(BOUND_COLOURS)] if s.dashed else colours(s.label)
        order = sorted(range(len(s.x)), key=lambda j: s.x[j])
        points = " ".join(f"{px(s.x[j]):.1f},{py(s.y[j]):.1f}" for j in order)
        if s.dashed and len(set(s.x)) == 1:  # a bound known at one x only: a level across the whole plot
            points = f"{LEFT},{py(s.y[0]):.1f} {LEFT + plot_w},{py(s.y[0]):.1f}"
        dash = ' stroke-dasharray="6 4"' if s.dashed else ""
        parts.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>')
        for j in order:
            err = s.err[j] if s.err else 0.0
            if err:
                parts.append(f'<line x1="{px(s.x[j]):.1f}" x2="{px(s.x[j]):.1f}" y1="{py(s.y[j] - err):.1f}" y2="{py(s.y[j] + err):.1f}" stroke="{colour}"/>')
            tip = escape(f"{s.label}: {xlabel}={_fmt(s.x[j])}, {ylabel}={_fmt(s.y[j])}" + (f" ± {_fmt(err)}" if err else ""))
            if not s.dashed and len(s.x) <= MAX_MARKERS:
                parts.append(f'<circle cx="{px(s.x[j]):.1f}" cy="{py(s.y[j]):.1f}" r="3.5" fill="{colour}"><title>{tip}</title></circle>')
        legend_y = TOP + 14 + 18 * i
        parts.append(f'<line x1="{WIDTH - RIGHT + 12}" x2="{WIDTH - RIGHT + 32}" y1="{legend_y - 4}" y2="{legend_y - 4}" stroke="{colour}" stroke-width="2"{dash}/>')
        parts.append(f'<text x="{WIDTH - RIGHT + 38}" y="{legend_y}" class="legend">{escape(_short(s.label))}<title>{escape(s.label)}</title></text>')
    parts.append(f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 8}" text-anchor="middle" class="axis">{escape(xlabel)}</text>')
    parts.append(f'<text transform="translate(14 {TOP + plot_h / 2}) rotate(-90)" text-anchor="middle" class="axis">{escape(ylabel)}</text>')
    return _svg(title, parts)


def bar_chart(title: str, unit: str, bars: list[tuple[str, float]], colours: Colours | None = None) -> str:
    """A horizontal SVG bar chart of ``(label, value)`` pairs (non-negative values), values written at the bars."""
    colours = colours or Colours()
    row, left = 22, 190
    height = TOP + row * len(bars) + 20
    top = max((v for _, v in bars), default=0.0) or 1.0
    parts = []
    for i, (name, value) in enumerate(bars):
        y = TOP + i * row
        width = max(value, 0.0) / top * (WIDTH - left - 140)
        parts.append(f'<text x="{left - 8}" y="{y + 14}" text-anchor="end" class="legend">{escape(_short(name))}<title>{escape(name)}</title></text>')
        parts.append(f'<rect x="{left}" y="{y + 2}" width="{width:.1f}" height="{row - 6}" fill="{colours(name)}"><title>{escape(f"{name}: {_fmt(value)} {unit}")}</title></rect>')
        parts.append(f'<text x="{left + width + 6:.1f}" y="{y + 14}" class="tick">{escape(_fmt(value))} {escape(unit)}</text>')
    return _svg(title, parts, height)


def _svg(title: str, parts: list[str], height: int = HEIGHT) -> str:
    head = f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" role="img">'
    return head + f'<title>{escape(title)}</title><text x="{LEFT}" y="18" class="title">{escape(title)}</text>' + "".join(parts) + "</svg>"
