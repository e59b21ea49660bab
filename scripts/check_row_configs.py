"""Does every reproduction row still compose to the settings it ran with? Each row of ``scripts/reproduce_*.py`` is
composed with the configs of git revision ``--base`` (when its table was written) and with today's; the task, method,
regime, trainer and seed must be equal, and a row that trains must not stop early (``~early_stopping``; early
stopping did not exist before). Run it after changing a default in ``configs/``::

    .venv/bin/python scripts/check_row_configs.py --base 9ea456d      # prints the rows that differ, exits 1 if any
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

import reproduce_doa as doa
import reproduce_sparse_recovery as sparse
import reproduce_tracking as tracking
from mbdl.results.record import flatten
from reproduction import ROOT

#: the parts of a composed config that decide a row's numbers.
COMPARED = ("task", "method", "regime", "trainer", "seed")
#: settings that cannot change the numbers of a row that trains nothing.
UNUSED_WITHOUT_TRAINING = ("task.n_train", "regime.n_train")


def rows() -> list[tuple[str, tuple[str, ...]]]:
    """``(name, overrides)`` of every row of the three reproduction scripts."""
    found = [(f"sparse/{section}: {label}", o) for section, items in sparse.SECTIONS.items() for label, _, o in items]
    found += [(f"tracking: {setting}, {label}", o) for setting, label, _, o in tracking.ROWS + tracking.BUDGET_ROWS + tracking.SWEEP_ROWS]
    found += [(f"doa/{row[0]}: {row[1]}", row[2]) for row in doa.ROWS]
    found += [(f"doa/sweep {snr} dB: {label}", (*doa.SWEEP, f"task.snr_db={snr}", *o)) for snr in doa.SNRS for label, o, _ in doa.SWEEP_METHODS]
    return found


def settings(configs: Path, overrides: tuple[str, ...]) -> tuple[dict, bool]:
    """The flat settings of :data:`COMPARED` and whether early stopping is on."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(configs), version_base="1.3"):
        cfg = compose("config", overrides=list(overrides))
    flat = flatten({k: OmegaConf.to_container(cfg[k], resolve=True) if OmegaConf.is_config(cfg[k]) else cfg[k] for k in COMPARED})
    return flat, cfg.get("early_stopping") is not None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", required=True, help="git revision whose configs the tables were written with")
    args = parser.parse_args()
    archive = subprocess.run(["git", "archive", args.base, "configs"], cwd=ROOT, capture_output=True, check=True).stdout
    differ = 0
    with tempfile.TemporaryDirectory() as old:
        tarfile.open(fileobj=BytesIO(archive)).extractall(old, filter="data")
        for name, overrides in rows():
            before, _ = settings(Path(old) / "configs", tuple(o for o in overrides if not o.lstrip("~").startswith("early_stopping")))
            after, stops_early = settings(ROOT / "configs", overrides)
            trains = after.get("method.name") != "model_based" and (after.get("method.optim.epochs") or 0) > 0
            unused = () if trains else UNUSED_WITHOUT_TRAINING  # a method with nothing to train never draws the training set
            changed = [f"{k}: {before.get(k)} -> {after.get(k)}" for k in sorted(set(before) | set(after)) if before.get(k) != after.get(k) and k not in unused]
            if changed or (trains and stops_early):
                differ += 1
                print(f"{name}: {'; '.join(changed)}{' early stopping on' if trains and stops_early else ''}")
        print(f"{differ} of {len(rows())} rows differ from {args.base}")
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
