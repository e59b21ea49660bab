"""``mbdl compare``: grouping by swept keys, mean ± std over seeds (checked against numpy), CSV/Markdown, failures, escaping."""

from __future__ import annotations

import csv
import json
import re

import numpy as np
import pytest

from mbdl.results.compare import compare, load_runs, main
from mbdl.results.record import write_record
from tests.helpers import HOSTILE, METHODS, SEEDS, SIZES, make_sweep, nmse

def test_groups_by_swept_keys_and_averages_over_seeds(tmp_path):
    records = make_sweep(tmp_path / "sweep")
    result = compare([tmp_path / "sweep"], tmp_path / "out")
    assert result["swept"] == ["override:regime.n_train"], "the seed is averaged over, never a group"
    rows = {(r["method"], r["override:regime.n_train"]): r for r in result["rows"]}
    assert set(rows) == {(m, n) for m in METHODS for n in SIZES}
    for (method, n_train), row in rows.items():
        values = [r["test/nmse_db"] for r in records if r["method"] == method and f"regime.n_train={n_train}" in r["overrides"]]
        assert row["test/nmse_db"] == pytest.approx(np.mean(values))
        assert row["test/nmse_db:std"] == pytest.approx(np.std(values, ddof=1))
        assert row["seeds"] == list(SEEDS) and row["curve/nmse_db"] == pytest.approx([-1.0 - i for i in range(5)])
    assert rows[("unfolded", SIZES[0])]["runs"] == 4 and rows[("unfolded", SIZES[0])]["failed"] == 1
    assert "1 of 13 runs failed" in result["table"] and "99_unfolded_failed" in result["table"]


def test_writes_csv_and_markdown_with_mean_and_std(tmp_path):
    make_sweep(tmp_path / "sweep")
    compare([tmp_path / "sweep"], tmp_path / "out")
    with (tmp_path / "out" / "summary.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and {"test/nmse_db", "test/nmse_db_std", "bound/nmse_db", "params", "runs", "failed", "regime.n_train"} <= rows[0].keys()
    unfolded_100 = next(r for r in rows if r["method"] == "unfolded" and r["regime.n_train"] == "100")
    assert float(unfolded_100["test/nmse_db"]) == pytest.approx(np.mean([nmse("unfolded", 100, s) - 10 for s in SEEDS]))
    table = (tmp_path / "out" / "summary.md").read_text().splitlines()
    assert table[0].startswith("| task | method | regime | regime.n_train | runs | failed |") and len(table) == 2 + 4
    assert " ± " in table[2]


def test_n_train_comes_from_the_saved_config_when_not_overridden(tmp_path):
    run = tmp_path / "run"
    write_record(run, {"task": "t", "method": "m", "regime": "supervised", "seed": 0, "status": "ok", "overrides": []})
    (run / ".hydra").mkdir()
    (run / ".hydra" / "config.yaml").write_text("task:\n  n_train: 250\nregime:\n  n_train: null\nmethod:\n  iterations: 7\n")
    (loaded,), swept = load_runs(tmp_path)
    assert loaded["n_train"] == 250 and loaded["iterations"] == 7 and swept == []


def test_runs_from_several_directories_are_compared_together(tmp_path):
    make_sweep(tmp_path / "a")
    make_sweep(tmp_path / "b", snr_db=(0.0, 20.0))
    result = compare([tmp_path / "a", tmp_path / "b"], tmp_path / "out", by=["seed"])
    assert "override:task.snr_db" in result["swept"]
    assert "override:seed" in result["by"], "--by adds a grouping key"
    assert all(row["runs"] == 1 for row in result["rows"] if row["failed"] == 0)


def test_cli_refuses_a_directory_without_records(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main([str(tmp_path)])
    assert info.value.code == 2 and "no run records" in capsys.readouterr().err


def test_dashboard_escapes_names_and_needs_nothing_from_the_network(tmp_path):
    make_sweep(tmp_path / "sweep")
    record = json.loads(next((tmp_path / "sweep").glob("0_*/metrics.json")).read_text())
    write_record(tmp_path / "sweep" / "hostile", {**record, "method": HOSTILE, "run_dir": None})
    html = (compare([tmp_path / "sweep"], tmp_path / "out")["paths"]["dashboard"]).read_text()
    assert HOSTILE not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    library = re.search(r'<script id="plotly-js">.*?</script>', html, re.S)
    assert library and html.count(library.group(0)) == 1, "plotly.js inlined, once"
    page = html.replace(library.group(0), "")  # the library's source names its project's sites; the browser test checks it requests none
    assert "https://" not in page and "http://" not in page and "<script src" not in page
