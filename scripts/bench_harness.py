"""Shared benchmark harness: side-by-side timing, peak memory, and the results tables.

Every benchmark under ``scripts/bench_*.py`` compares implementations *in the same process*,
interleaving them round by round (round ``r`` runs every case once, in a rotated order) so that
the load of a shared machine hits all of them alike; it reports medians and the spread over the
rounds, and ratios taken per round. Peak memory of a call is counted at the allocators (torch's,
through the profiler's memory events, and Python's/numpy's through :mod:`tracemalloc`; on CUDA
``torch.cuda.max_memory_allocated``), since the resident size of a process moves too coarsely
and too late to see a peak of a few MiB; whole processes (runs, sweeps) report the peak resident
size of their process tree. Tables go into one markdown file,
``docs/results/benchmarks.md``, one marked section per benchmark.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import tracemalloc
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mbdl.results.tables import markdown

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


def compose_config(*overrides: str) -> Any:
    """The composed config (a ``DictConfig``) of ``overrides``, as ``python -m mbdl`` would see it."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        return compose("config", overrides=list(overrides))


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


def _torch_cpu_peak_bytes(call: Callable[[], Any]) -> tuple[int, Any]:
    """Peak of the bytes torch's CPU allocator held during ``call()`` beyond what it held before.

    Read from the profiler's memory events (``profile_memory=True``): each carries the running
    ``Total Allocated`` since the profiler started, so allocator reuse cannot hide a peak.
    """
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        result = call()
    with tempfile.TemporaryDirectory() as tmp:
        trace = Path(tmp) / "trace.json"
        prof.export_chrome_trace(str(trace))
        events = json.loads(trace.read_text())["traceEvents"]
    totals = [e["args"]["Total Allocated"] for e in events if e.get("name") == "[memory]" and e["args"].get("Device Type") == 0]
    return max(totals, default=0), result


def peak_memory_mib(factory: Callable[..., Callable[[], Any]], *args: Any, device: str = "cpu") -> float:
    """Peak memory (MiB) that a call of ``factory(*args)()`` allocates beyond its inputs (after one warm-up call).

    CPU: the peak of torch's allocator (profiler memory events, one call) plus the peak of
    Python/numpy allocations (:mod:`tracemalloc`, which numpy reports its buffers to; another
    call): exact for either kind alone, an upper bound when both peak together. CUDA: ``torch.cuda.max_memory_allocated``.
    """
    call = factory(*args)
    call()
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        call()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - before) / 2**20
    tracemalloc.start()  # a call of its own: the profiler's bookkeeping is Python memory too
    try:
        call()
        _, python_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    torch_peak, _ = _torch_cpu_peak_bytes(call)
    return (torch_peak + python_peak) / 2**20


def _tree_rss_kib(root: int) -> int:
    """Resident size (KiB) of process ``root`` and all its descendants, from ``/proc``."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            statm = (entry / "statm").read_text().split()
        except OSError:  # the process ended meanwhile
            continue
        pid, ppid = int(entry.name), int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(pid)
        rss[pid] = int(statm[1]) * os.sysconf("SC_PAGE_SIZE") // 1024
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack += children.get(pid, [])
    return total


@dataclass
class Process:
    """A finished command: wall time (s), peak resident size of its process tree (MiB), exit code, output."""

    wall: float
    peak_mib: float
    returncode: int
    stdout: str
    stderr: str


def run_process(command: Sequence[str], env: dict[str, str] | None = None, interval: float = 0.2, timeout: float | None = None) -> Process:
    """Run ``command`` from the repository root; sample its process tree's resident size every ``interval`` s.

    After ``timeout`` seconds its whole process group is killed (``returncode`` is then negative).
    """
    start = time.perf_counter()
    child = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    peak = [0]

    def sample() -> None:
        while child.poll() is None:
            peak[0] = max(peak[0], _tree_rss_kib(child.pid))
            time.sleep(interval)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        stdout, stderr = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        stdout, stderr = child.communicate()
    wall = time.perf_counter() - start
    sampler.join()
    return Process(wall, peak[0] / 1024, child.returncode, stdout, stderr)


def fmt_mib(mib: float) -> str:
    return f"{mib:.3g} MiB" if mib >= 1 else f"{1024 * mib:.3g} KiB"


# ---------------------------------------------------------------------------------- tables


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub markdown table (:func:`mbdl.results.tables.markdown`, without its final newline)."""
    return markdown(headers, rows).rstrip("\n")


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
