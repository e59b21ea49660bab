"""The bad-input table of docs/reliability.md: every case run as ``python -m mbdl ARGS``, one fresh process each.

For each case: the exit status, the message (the last line on stderr), the wall time of the whole process to
the error, whether a run or sweep directory was left behind, and whether torch was imported by then (the cases
refused before the imports). Rewrites the table between its markers in docs/reliability.md:

    .venv/bin/python scripts/bad_inputs.py            # ~2 min on 2 shared cores
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "reliability.md"
BEGIN, END = "<!-- bad-inputs:begin -->", "<!-- bad-inputs:end -->"

#: ``(arguments, what is wrong)``; ``OUTPUTS`` in an argument is replaced by a scratch folder.
CASES: list[tuple[list[str], str]] = [
    (["method.optim.lr=inf"], "an infinite learning rate"),
    (["task.snr_db=-inf", "method=model_based"], "an SNR of -inf dB (noise-free by accident)"),
    (["task=doa", "task.snr_db=nan"], "a NaN SNR"),
    (["seed=99999999999999999999"], "a seed beyond numpy's 32 bits"),
    (["seed=-1"], "a negative seed"),
    (["resume=maybe"], "a resume that is not true or false"),
    (["sweep=seeds"], "a sweep grid without -m"),
    (["hparams_search=unfolded"], "an Optuna search without -m"),
    (["trainer.gradient_clip_val=-1"], "a negative gradient clip"),
    (["+trainer.max_epochs=1"], "a trainer key that method.optim.epochs sets"),
    (["threads=0"], "no torch threads"),
    (["method.algorithm=lsta"], "a typo in a method's choice"),
    (["method.iterations=0"], "no layers"),
    (["task.n=0"], "a task without measurements"),
    (["regime.n_train=0"], "an empty training set"),
    (["method.optim.batch_size=0"], "an empty batch"),
    (["method.optim.epochs=-1"], "negative epochs"),
    (["task=doa", "method=dnn_aided", "method.train_algorithm=music"], "a non-differentiable estimator to train through"),
    (["paths.root=OUTPUTS/file.txt/outputs"], "an output folder under a file"),
    (["paths.root=/sys/mbdl-outputs"], "an output folder that cannot be written"),
    (["method.iteratons=5"], "a typo in an option's name (Hydra's message)"),
    (["method=nonsense"], "an unknown method (Hydra's message)"),
    (["task.k=300"], "more non-zeros than unknowns (a condition between options)"),
    (["task.n_train=10000000000"], "a training set that cannot fit in memory"),
    (["regime=layerwise", "method=black_box"], "layer-wise training of a method without layers"),
    (["regime=layerwise", "method=model_based"], "layer-wise training of a method with nothing to train"),
    (["+method.hidden=[64]"], "an option of another method"),
    (["method.optim.optimizer._target_=torch.optim.Nope"], "an optimizer that does not exist"),
    (["task=doa", "method=dnn_aided", "method.lags=200"], "more lags than snapshots"),
]

#: runs one case like ``python -m mbdl`` and prints, last, whether torch was imported.
DRIVER = """
import runpy, sys
sys.argv = ["mbdl", *sys.argv[1:]]
try:
    runpy.run_module("mbdl", run_name="__main__", alter_sys=True)
except SystemExit as stop:
    code = stop.code
    if isinstance(code, str):
        print(code, file=sys.stderr)
        code = 1
    print("torch imported:", "torch" in sys.modules)
    sys.stdout.flush()
    raise SystemExit(code)
"""


def run_case(args: list[str]) -> dict:
    """One case in a fresh process: exit status, message, seconds, directories left, torch imported."""
    with tempfile.TemporaryDirectory() as scratch:
        outputs = Path(scratch) / "outputs"
        (Path(scratch) / "file.txt").write_text("")
        args = [a.replace("OUTPUTS", scratch) for a in args]
        env = {**os.environ, "MBDL_OUTPUTS": str(outputs), "WANDB_MODE": "disabled", "HYDRA_FULL_ERROR": "0"}
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", DRIVER, *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
        seconds = time.perf_counter() - start
        lines = [line for line in done.stderr.splitlines() if line.strip() and "Warning" not in line and not line.startswith(("INFO:", "  warnings.warn"))]
        message = next((line for line in reversed(lines) if line.startswith("error: ")), lines[0] if lines else "").replace(scratch, "OUTPUTS")
        left = outputs.exists()  # MBDL_OUTPUTS did not exist: any run or sweep directory would have created it
        return {
            "args": args, "exit": done.returncode, "message": message, "seconds": seconds, "left": left,
            "torch": "torch imported: True" in done.stdout,
        }


def table(cases: list[tuple[list[str], str]], results: list[dict]) -> str:
    """The Markdown table of the results."""
    from mbdl.results.tables import markdown

    header = ["what", "command", "exit", "message", "s to the error", "run dir left", "torch imported"]
    rows = [
        [what, "`python -m mbdl " + " ".join(args) + "`", str(r["exit"]), f"`{r['message']}`", f"{r['seconds']:.2f}", "yes" if r["left"] else "no", "yes" if r["torch"] else "no"]
        for (args, what), r in zip(cases, results)
    ]
    return markdown(header, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    args = parser.parse_args()
    results = []
    for case, what in CASES:
        results.append(run_case(case))
        print(json.dumps(results[-1]), flush=True)
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, load average {os.getloadavg()[0]:.1f}"
    section = f"{BEGIN}\n*Written by `scripts/bad_inputs.py` on {when} ({machine}); each case one fresh process.*\n\n{table(CASES, results)}\n{END}"
    print(section)
    if not args.no_write:
        text = DOC.read_text()
        head, rest = text.split(BEGIN, 1)
        DOC.write_text(head + section + rest.split(END, 1)[1])


if __name__ == "__main__":
    main()
