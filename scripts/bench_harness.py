"""Shared benchmark harness: side-by-side timing, peak memory, and the results tables.

Every benchmark under ``scripts/bench_*.py`` compares implementations *in the same process*,
interleaving them round by round (round ``r`` runs every case once, in a rotated order) so that
the load of a shared machine hits all of them alike; it reports medians and the spread over the
rounds, and ratios taken per round. Peak memory is measured in a fresh (spawned) process per
case: the peak resident set size is reset (``/proc/self/clear_refs``) once the inputs are built,
one call is made, and the rise of ``VmHWM`` above the resident size before the call is reported
(on CUDA: ``torch.cuda.max_memory_allocated``). Tables go into one markdown file,
``docs/results/benchmarks.md``, one marked section per benchmark.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results" / "benchmarks.md"
HEADER = """# Benchmark results

Written by the scripts under `scripts/bench_*.py` (see [../benchmarks.md](../benchmarks.md) for
the method and the goals); each section names the command that produced it, the machine and the
date. Timings are medians over interleaved rounds with the spread (min-max over rounds) in
brackets; ratios are taken round by round in the same process. The machine was shared with
other busy processes while these were taken: absolute times are loaded times, ratios are what
to compare.
"""


def parser(description: str) -> argparse.ArgumentParser:
    """The options every benchmark takes: ``--device``, ``--threads``, ``--repeats``, ``--quick``, ``--no-write``."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--device", default="cpu", help="torch device (cpu or cuda)")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    p.add_argument("--repeats", type=int, default=7, help="timed rounds per case")
    p.add_argument("--quick", action="store_true", help="small sizes and few rounds (a smoke test; nothing written)")
    p.add_argument("--no-write", action="store_true", help="print the table only; do not update docs/results/benchmarks.md")
    return p


def setup_torch(device: str, threads: int) -> Callable[[], None]:
    """Set the thread count and return the synchronisation to call around timed regions."""
    import torch

    torch.set_num_threads(threads)
    if device.startswith("cuda"):
        return torch.cuda.synchronize
    return lambda: None


@dataclass
class Timing:
    """Wall times (seconds) of one case over the rounds."""

    samples: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    def __str__(self) -> str:
        return f"{fmt_seconds(self.median)} [{fmt_seconds(min(self.samples))}-{fmt_seconds(max(self.samples))}]"


def fmt_seconds(t: float) -> str:
    """``t`` seconds with a unit that keeps three significant digits."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if abs(t) >= scale:
            return f"{t / scale:.3g} {unit}"
    return f"{t / 1e-9:.3g} ns"


def compare(
    cases: dict[str, Callable[[], Any]],
    repeats: int = 7,
    warmup: int = 1,
    sync: Callable[[], None] = lambda: None,
    number: dict[str, int] | None = None,
) -> dict[str, Timing]:
    """Time ``cases`` side by side: ``warmup`` untimed calls each, then ``repeats`` interleaved rounds.

    Args:
        cases: name -> a call with no argument.
        repeats: rounds; each round calls every case once, starting from a rotated position.
        warmup: untimed calls of each case before the first round.
        sync: called before reading the clock (``torch.cuda.synchronize`` on a GPU).
        number: calls per timing for a case (the time reported is per call); default 1.

    Returns:
        name -> :class:`Timing` with one sample per round.
    """
    number = number or {}
    names = list(cases)
    for name in names:
        for _ in range(warmup):
            cases[name]()
    sync()
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names[r % len(names):] + names[: r % len(names)]:
            n = number.get(name, 1)
            start = time.perf_counter()
            for _ in range(n):
                cases[name]()
            sync()
            samples[name].append((time.perf_counter() - start) / n)
    return {name: Timing(s) for name, s in samples.items()}


def ratio(numerator: Timing, denominator: Timing) -> Timing:
    """Round-by-round ratio ``numerator / denominator`` (a :class:`Timing` of unitless samples)."""
    return Timing([a / b for a, b in zip(numerator.samples, denominator.samples, strict=True)])


def fmt_ratio(r: Timing, digits: int = 3) -> str:
    """A ratio as ``median× [min-max]``."""
    return f"{r.median:.{digits}g}× [{min(r.samples):.{digits}g}-{max(r.samples):.{digits}g}]"


def fmt_share(r: Timing) -> str:
    """A ratio in [0, 1] as a percentage with its spread."""
    return f"{100 * r.median:.0f} % [{100 * min(r.samples):.0f}-{100 * max(r.samples):.0f}]"


# ---------------------------------------------------------------------------------- memory


#: glibc settings of the measuring process: blocks >= 64 KiB are mmap-ed and unmapped on free.
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "65536"}


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def _peak_child(factory: Callable[..., Callable[[], Any]], args: tuple, device: str, threads: int, queue: Any) -> None:
    try:
        setup_torch(device, threads)
        call = factory(*args)
        call()  # warm-up: lazy initialisation is not part of the peak
        if device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            before = torch.cuda.memory_allocated()
            call()
            torch.cuda.synchronize()
            queue.put((torch.cuda.max_memory_allocated() - before) / 2**20)
            return
        before = _status_kib("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current resident size
        call()
        queue.put((_status_kib("VmHWM") - before) / 1024)
    except BaseException as error:  # noqa: BLE001 - reported to the parent
        queue.put(error)


def peak_memory_mib(factory: Callable[..., Callable[[], Any]], *args: Any, device: str = "cpu", threads: int = 1) -> float:
    """Peak memory (MiB) of one call of ``factory(*args)()`` above what its inputs already hold.

    Runs in a freshly spawned process (``factory`` must be a module-level function) whose
    ``malloc`` returns every block of 64 KiB or more to the system when it is freed
    (``MALLOC_MMAP_THRESHOLD_``), so that the resident size follows the live tensors and memory
    freed by the warm-up call or by earlier cases cannot hide the peak of the measured call.
    """
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_peak_child, args=(factory, args, device, threads, queue))
    saved = {k: os.environ.get(k) for k in MALLOC_ENV}
    os.environ.update(MALLOC_ENV)
    try:
        process.start()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key)
            else:
                os.environ[key] = value
    result = queue.get()
    process.join()
    if isinstance(result, BaseException):
        raise result
    return float(result)


def fmt_mib(mib: float) -> str:
    return f"{mib:.3g} MiB" if mib >= 1 else f"{1024 * mib:.3g} KiB"


# ---------------------------------------------------------------------------------- tables


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def machine_line(device: str = "cpu", threads: int = 1) -> str:
    """Date, CPU, core count, load average, Python/torch versions and the thread count of this measurement."""
    import torch

    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")]
        cpu = names[0] if names else cpu
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    where = torch.cuda.get_device_name() if device.startswith("cuda") else f"{cpu}, {os.cpu_count()} cores"
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"{date}; {where}; load average {load}; Python {platform.python_version()}, torch {torch.__version__}; {threads} torch thread(s)"


def command_line() -> str:
    """The command that is running, relative to the repository root."""
    script = Path(sys.argv[0]).resolve()
    try:
        script = script.relative_to(ROOT)
    except ValueError:
        pass
    return shlex.join([".venv/bin/python", str(script), *sys.argv[1:]])


def write_section(name: str, title: str, body: str, path: Path = RESULTS, command: str | None = None, machine: str | None = None) -> None:
    """Replace (or append) the section ``name`` of ``path`` with ``title``, the command, the machine and ``body``."""
    start, end = f"<!-- bench:{name}:start -->", f"<!-- bench:{name}:end -->"
    section = "\n".join(
        [start, f"## {title}", "", f"Command: `{command or command_line()}`", "", f"Machine: {machine or machine_line()}", "", body.strip(), end]
    )
    text = path.read_text() if path.exists() else HEADER
    if start in text and end in text:
        before, rest = text.split(start, 1)
        text = before + section + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def report(args: argparse.Namespace, name: str, title: str, body: str) -> None:
    """Print ``body`` and, unless ``--quick`` or ``--no-write``, write it as section ``name``."""
    print(f"## {title}\n\n{body}\n")
    if not (args.quick or args.no_write):
        write_section(name, title, body, machine=machine_line(args.device, args.threads))
        print(f"written to {RESULTS.relative_to(ROOT)}")
