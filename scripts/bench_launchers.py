"""Wall time of the same sweep under the basic launcher (one process) and joblib (parallel workers).

    .venv/bin/python scripts/bench_launchers.py [--out docs/results/launchers.md]

Every joblib worker imports torch and Lightning again (several seconds), so for tiny jobs the basic
launcher, which imports once, can win; joblib wins when each job runs long enough. Writes a Markdown
table with the commands, the machine's core count and load, and the times.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TINY = "task.n=20 task.m=30 task.k=2 task.n_train=64 task.n_val=32 task.n_test=32 ++method.optim.epochs=1"
SWEEPS = {
    "8 tiny jobs (~0.1 s of work each)": f"method=model_based,unfolded seed=0,1,2,3 {TINY}",
    "4 book-size LISTA jobs (n=150, m=200, 1000 training samples, 20 epochs)": "method=unfolded seed=0,1,2,3 method.optim.epochs=20",
}
LAUNCHERS = {"basic": "", "joblib, 2 workers": "hydra/launcher=joblib hydra.launcher.n_jobs=2"}


def wall_time(arguments: str) -> float:
    """Seconds that ``python -m mbdl -m ARGUMENTS`` takes, end to end (imports included)."""
    with tempfile.TemporaryDirectory() as outputs:
        env = {**os.environ, "MBDL_OUTPUTS": outputs, "WANDB_MODE": "disabled"}
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "mbdl", "-m", *arguments.split()], cwd=ROOT, env=env, capture_output=True, text=True)
        elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "results" / "launchers.md"))
    args = parser.parse_args()
    lines = [
        "# Basic launcher vs joblib: wall time of the same sweep",
        "",
        f"Measured by `.venv/bin/python scripts/bench_launchers.py` on {os.cpu_count()} cores "
        f"(1-minute load average before: {os.getloadavg()[0]:.1f}; the machine was shared). Each job uses 1 torch thread.",
        "",
        "| sweep | launcher | command | wall time (s) |",
        "|---|---|---|---|",
    ]
    for sweep, arguments in SWEEPS.items():
        for launcher, flags in LAUNCHERS.items():
            command = f"python -m mbdl -m {flags} {arguments}".replace("  ", " ")
            seconds = wall_time(f"{flags} {arguments}")
            lines.append(f"| {sweep} | {launcher} | `{command}` | {seconds:.1f} |")
            print(lines[-1], flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
