"""The dashboard in a real headless Chromium (DevTools protocol): no console message, no request leaving the page,
every chart drawn, a hover over a point shows its value, a legend click hides a series, sorting works, a screenshot."""

from __future__ import annotations

import json
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from mbdl.results.compare import compare  # noqa: E402
from tests.browser import Page  # noqa: E402
from tests.helpers import make_sweep  # noqa: E402

TITLES = ("the spectrum: error vs training-set size", "error vs iterations/layers", "error vs SNR", "error vs inference FLOPs", "trainable parameters", "inference time")


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("dashboard")
    make_sweep(root / "sweep", snr_db=(0.0, 10.0, 20.0))
    for path in (root / "sweep").rglob("metrics.json"):  # what a run of today records beside make_sweep's keys
        record = json.loads(path.read_text())
        costs = {"flops_per_sample": 6e4, "flops_uncounted": []} if record["method"] == "unfolded" else {"flops_per_sample": 1.2e6, "flops_uncounted": ["linalg_eigh"]}
        path.write_text(json.dumps({**record, "metric_info": {"nmse_db": {"label": "error", "unit": "dB", "higher_is_better": False}}, **costs}))
    figure, axes = plt.subplots(figsize=(4, 2))
    axes.plot([0, 1], [1, 0])
    figure.savefig(next((root / "sweep").glob("0_*")) / "figure.png", dpi=60)
    plt.close(figure)
    return compare([root / "sweep"], root / "out")["paths"]["dashboard"]


@pytest.fixture
def page(tmp_path):
    page = Page(tmp_path / "profile")
    yield page
    page.close()


def test_dashboard_draws_every_chart_offline_and_a_hover_shows_the_value(dashboard, page):
    page.open(f"{dashboard.as_uri()}#sort=test/nmse_db:desc")
    page.wait_for("document.querySelectorAll('.js-plotly-plot .main-svg').length > 0")
    assert not page.console, page.console
    assert page.requests and all(url.startswith(("file://", "data:")) for url in page.requests), page.requests
    assert dashboard.stat().st_size < 8e6, "one copy of plotly.js per page"
    titles = page.evaluate("Array.from(document.querySelectorAll('.gtitle')).map(t => t.textContent)")
    for expected in TITLES:
        assert any(title.startswith(expected) for title in titles), (expected, titles)
    flops = page.evaluate("Array.from(document.querySelectorAll('.js-plotly-plot')).find(p => p.layout.title.text.includes('FLOPs')).data.filter(t => t.showlegend !== false).map(t => [t.name, t.x[0], t.marker.symbol[0]])")
    points = sorted((name.split()[0], x, symbol) for name, x, symbol in flops)
    assert points == [("model_based", 1.2e6, "circle-open")] * 3 + [("unfolded", 6e4, "circle")] * 3, "one point per method and SNR; an incomplete count (eigh) open"
    spectrum = page.evaluate("document.querySelectorAll('.js-plotly-plot')[0].layout.xaxis.type")
    assert spectrum == "log", "n_train 10, 100 is a logarithmic sweep"
    snr = page.evaluate("Array.from(document.querySelectorAll('.js-plotly-plot')).find(p => p.layout.title.text.includes('SNR')).layout.xaxis.type")
    assert snr == "linear", "SNR 0, 10, 20 is not"

    # hover as a user would: over a run's point in the spectrum chart, then over a mean of the per-iteration chart
    text = hover(page, chart=0, trace=1, point=2)
    run = re.search(r"run (\d+_model_based)overrides: method=model_based regime.n_train=(\d+) seed=(\d) task.snr_db=([\d.]+)error", text)
    assert run, text
    record = json.loads((dashboard.parents[1] / "sweep" / run.group(1) / "metrics.json").read_text())
    assert record["overrides"] == ["method=model_based", f"regime.n_train={run.group(2)}", f"seed={run.group(3)}", f"task.snr_db={run.group(4)}"]
    assert float(re.search(r"better: (-?[\d.]+)", text).group(1)) == pytest.approx(record["test/nmse_db"], abs=5e-3), text
    text = hover(page, chart=1, trace=0, point=0)
    assert "iteration / layer = 1" in text and "error (dB), lower is better: -1" in text and "mean over 3 seed(s)" in text, text

    # a click on the first legend entry hides that series (and its runs)
    page.click(*page.centre("document.querySelectorAll('.js-plotly-plot')[0].querySelector('.legend .traces .legendtoggle')"))
    page.wait_for("document.querySelectorAll('.js-plotly-plot')[0].data[0].visible === 'legendonly'")

    rows = page.evaluate(
        "(() => { const t = document.querySelectorAll('table.sortable')[1]; const i = Array.from(t.tHead.rows[0].cells).findIndex(c => c.dataset.key === 'test/nmse_db');"
        " return Array.from(t.tBodies[0].rows).map(r => r.cells[i].dataset.value); })()"
    )
    numbers = [float(v) for v in rows if v]
    assert len(numbers) == 2 * 2 * 3 * 3 and numbers == sorted(numbers, reverse=True), "#sort=test/nmse_db:desc sorted the run table"
    assert rows[-1] == "", "the failed run (no value) sorts last"
    assert 'src="data:image/png;base64,' in page.evaluate("document.body.innerHTML")
    assert not page.console, page.console


def hover(page: Page, chart: int, trace: int, point: int) -> str:
    """Move the mouse over point ``point`` of trace ``trace`` of chart ``chart``; the hover label's text."""
    page.hover(*page.centre(f"document.querySelectorAll('.js-plotly-plot')[{chart}].querySelectorAll('.scatterlayer .trace')[{trace}].querySelectorAll('.points path')[{point}]"))
    page.wait_for("document.querySelector('.hoverlayer .hovertext')")
    return page.evaluate("document.querySelector('.hoverlayer .hovertext').textContent")


def test_dashboard_screenshot(dashboard, page, tmp_path):
    page.open(dashboard.as_uri())
    page.wait_for("document.querySelectorAll('.js-plotly-plot .main-svg').length > 0")
    shot = page.screenshot(tmp_path / "dashboard.png")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
