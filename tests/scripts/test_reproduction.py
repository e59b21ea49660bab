"""scripts/reproduction.py: a row keeps its run folder when rows move, its record names the figure relative to the
repository, and a montage whose run folders are gone keeps the committed figure instead of shrinking it."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from reproduction import figure_path, montage, row_folder  # noqa: E402
from tests.helpers import ROOT  # noqa: E402


def test_a_row_folder_follows_its_command_not_its_position():
    parent = ROOT / "outputs" / "rows"
    first, second = row_folder(parent, "cs25", "task=imaging method=unfolded"), row_folder(parent, "cs25", "task=imaging method=black_box")
    assert first == row_folder(parent, "cs25", "task=imaging method=unfolded") and first != second
    assert first.parent == parent and first.name.startswith("cs25_")


def test_a_figure_inside_the_repository_is_recorded_relative_to_it(tmp_path):
    assert figure_path(ROOT / "outputs" / "rows" / "cs25_x" / "row") == "outputs/rows/cs25_x/row/figure.png"
    assert figure_path(tmp_path / "row") == str((tmp_path / "row" / "figure.png").resolve())


def panel(path: Path, value: float) -> str:
    plt.imsave(path, [[value, 1 - value]], cmap="gray")
    return str(path)


def test_a_montage_with_a_panel_gone_keeps_the_existing_figure(tmp_path, capsys):
    out = tmp_path / "montage.png"
    a, b = panel(tmp_path / "a.png", 0.2), panel(tmp_path / "b.png", 0.8)
    montage([("a", a), ("b", b)], out, columns=2)
    drawn, width = out.read_bytes(), plt.imread(out).shape[1]
    Path(b).unlink()
    montage([("a", a), ("b", b)], out, columns=2)
    assert out.read_bytes() == drawn
    assert "1 of its 2 panels are gone (b)" in capsys.readouterr().out
    out.unlink()  # no figure yet: the panels that exist are drawn
    montage([("a", a), ("b", b)], out, columns=2)
    assert plt.imread(out).shape[1] < width
