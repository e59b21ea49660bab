"""The dashboard in a real headless Chromium: no console errors, charts and tables shown, sorting works, a screenshot."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from mbdl.results.compare import compare  # noqa: E402
from tests.test_compare import make_sweep  # noqa: E402

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def browser() -> str:
    """The headless browser: fails in CI (the test setup installs Debian's chromium), skips elsewhere without one."""
    found = next((path for name in BROWSERS if (path := shutil.which(name))), None)
    if found is None:
        message = "chromium not found: `make test` installs Debian's chromium package (apt-get install chromium)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def headless(url: str, profile: Path, *flags: str) -> subprocess.CompletedProcess:
    """Run Chromium headless on ``url`` with the console logged to stderr."""
    command = [browser(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--enable-logging=stderr", "--v=0",
               f"--user-data-dir={profile}", "--window-size=1280,1800", *flags, url]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=profile)


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("dashboard")
    make_sweep(root / "sweep", snr_db=(0.0, 10.0, 20.0))
    figure, axes = plt.subplots(figsize=(4, 2))
    axes.plot([0, 1], [1, 0])
    figure.savefig(next((root / "sweep").glob("0_*")) / "figure.png", dpi=60)
    plt.close(figure)
    return compare([root / "sweep"], root / "out")["paths"]["dashboard"]


def test_dashboard_loads_without_console_errors_and_shows_charts_and_tables(dashboard, tmp_path):
    done = headless(f"{dashboard.as_uri()}#sort=test/nmse_db:desc", tmp_path, "--dump-dom")
    assert done.returncode == 0, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    assert not console, console
    dom = done.stdout
    assert 'data-ready="true"' in dom, "the page's script ran to its end"
    titles = re.findall(r'<text[^>]*class="title">([^<]*)</text>', dom)
    for expected in ("the spectrum: error vs training-set size", "error vs iterations/layers", "error vs SNR", "trainable parameters", "inference time"):
        assert any(title.startswith(expected) for title in titles), (expected, titles)
    assert dom.count("<polyline") >= 6 and 'src="data:image/png;base64,' in dom
    runs_table = dom.split("<h2>runs</h2>", 1)[1]
    header = re.findall(r'<th data-key="([^"]*)"', runs_table)
    column = header.index("test/nmse_db")
    values = [re.findall(r'<td data-value="([^"]*)"', row)[column] for row in re.findall(r"<tr class=[^>]*>(.*?)</tr>", runs_table)]
    numbers = [float(v) for v in values if v]
    assert len(numbers) == 2 * 2 * 3 * 3 and numbers == sorted(numbers, reverse=True), "#sort=test/nmse_db:desc sorted the run table"
    assert values[-1] == "", "the failed run (no value) sorts last"


def test_dashboard_screenshot(dashboard, tmp_path):
    shot = tmp_path / "dashboard.png"
    done = headless(dashboard.as_uri(), tmp_path, f"--screenshot={shot}")
    assert done.returncode == 0, done.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
