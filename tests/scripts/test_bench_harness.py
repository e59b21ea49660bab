"""The benchmark harness (scripts/bench_harness.py): interleaved timing, ratios, peak memory, tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from bench_harness import Timing, compare, fmt_ratio, markdown_table, peak_memory_mib, ratio, write_section


def allocate_mib(mib: int):  # noqa: ANN201 - a factory for peak_memory_mib
    def call() -> float:
        block = np.ones(mib * 2**20 // 8)  # touched, so resident
        return float(block[-1])

    return call


def test_compare_interleaves_rounds_and_rotates_the_order() -> None:
    calls: list[str] = []
    timings = compare({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, repeats=3, warmup=1)
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"]
    assert all(len(t.samples) == 3 and t.median >= 0 for t in timings.values())


def test_ratio_is_taken_round_by_round() -> None:
    r = ratio(Timing([2.0, 4.0, 9.0]), Timing([1.0, 1.0, 3.0]))
    assert r.samples == [2.0, 4.0, 3.0] and r.median == 3.0
    assert fmt_ratio(r) == "3× [2-4]"


def allocate_tensors_mib(mib: int):  # noqa: ANN201 - a factory for peak_memory_mib
    def call() -> float:
        a = torch.ones(mib * 2**20 // 4)
        b = a * 2  # a and b alive together: the peak is twice mib
        del a
        return float((b + 1)[-1])

    return call


def test_peak_memory_counts_numpy_and_torch_temporaries() -> None:
    assert 47.5 <= peak_memory_mib(allocate_mib, 48) <= 48.5
    assert 15.9 <= peak_memory_mib(allocate_tensors_mib, 8) <= 16.1


def test_write_section_replaces_its_own_section_only(tmp_path: Path) -> None:
    path = tmp_path / "bench.md"
    write_section("one", "One", markdown_table(["x"], [[1]]), path=path, command="cmd 1", machine="m")
    write_section("two", "Two", "second", path=path, command="cmd 2", machine="m")
    write_section("one", "One", markdown_table(["x"], [[5]]), path=path, command="cmd 1", machine="m")
    text = path.read_text()
    assert text.count("## One") == 1 and "| 5 |" in text and "| 1 |" not in text
    assert text.index("## One") < text.index("## Two") and "second" in text
