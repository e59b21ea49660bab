"""Check generative versus discriminative learning with the algorithms alone (before the task/method wiring).

1. MBDL book Ex. 5.1 (linear Gaussian, n = m = 30, the notebook's H = ``np.random.seed(12); randn(30, 30)``):
   discriminative, generative, MMSE and generative with the prior told as I at the five points whose
   values the notebook's own code gave, over several seeds (one training set and 10 000 test draws
   each, as one run of the notebook), printed beside the notebook's.
2. MBDL book Ex. 5.2 (1-D kinematics, V told as I): the KF with Q (and R) fitted from 20 labelled
   trajectories, and by EM from the 20 trajectories' measurements only, against the KF with full
   knowledge on the same test trajectories (targets: within 2 % and 5 % of its position MSE).

    python scripts/check_generative_ex51.py [--seeds 20] [--tracking-seeds 5]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch

from mbdl.algorithms.kalman import kalman_filter
from mbdl.algorithms.linear_gaussian import BOOK_EX51_PUBLISHED, book_ex51, book_ex51_H, discriminative_estimator, generative_estimator, mmse_estimator
from mbdl.algorithms.state_space_fit import fit_em, fit_labelled
from mbdl.tasks.state_space import LinearGaussian, kinematics_1d

COLUMNS = ("discriminative", "generative", "MMSE", "generative, prior I")
D = torch.float64


def ex51(seeds: int) -> None:
    H = book_ex51_H()
    print(f"## Book Ex. 5.1: MSE summed over the 30 entries, mean ± std over {seeds} seeds (one training set, 10 000 test draws each)")
    print("(in brackets: (notebook − our mean) / our std, the notebook's single run against the spread of one run)\n")
    print("| n_t, σ | " + " | ".join(f"{c} (ours / notebook)" for c in COLUMNS) + " |")
    print("|---|" + "---|" * len(COLUMNS))
    for (n_train, noise_std), published in BOOK_EX51_PUBLISHED.items():
        model = book_ex51(noise_std, H)
        g = torch.Generator().manual_seed(n_train + round(1000 * noise_std))
        s, x = model.simulate(n_train, g, (seeds,))
        s_test, x_test = model.simulate(10000, g, (seeds,))
        estimators = (
            discriminative_estimator(s, x),
            generative_estimator(s, x, model.prior_mean, model.prior_covariance, model.noise_var),
            model.mmse_estimator(),
            generative_estimator(s, x, model.prior_mean, torch.eye(30, dtype=D), model.noise_var),
        )
        cells = []
        for estimator, value in zip(estimators, published):
            mse = (estimator(x_test) - s_test).square().sum(-1).mean(-1)
            digits = 4 if noise_std < 0.1 else 3
            cells.append(f"{mse.mean():.{digits}f} ± {mse.std():.{digits}f} / {value} ({(value - mse.mean()) / mse.std():+.1f}σ)")
        print(f"| {n_train}, {noise_std} | " + " | ".join(cells) + " |")
    closed = book_ex51(0.3, H)
    stall = mmse_estimator(H, closed.prior_mean, torch.eye(30, dtype=D), closed.noise_var).mse(closed)
    print(f"\nclosed-form MMSE at σ = 0.3: {closed.mmse():.4f}; at σ = 1: {book_ex51(1.0, H).mmse():.4f}; at σ = 0.01: {book_ex51(0.01, H).mmse():.5f}")
    print(f"n_t → ∞ with the prior told as I (the MMSE rule with the true H and C_ss = I), σ = 0.3: {stall:.4f}, {stall - closed.mmse():.4f} above the MMSE")


def position_mse(model: LinearGaussian, x: torch.Tensor, s: torch.Tensor, Q: torch.Tensor, R: torch.Tensor) -> float:
    return (kalman_filter(x, model.F, model.H, Q, R, model.s0, model.P0).s[..., 0] - s[..., 0]).square().mean().item()


def tracking_fits(model: LinearGaussian, s: torch.Tensor, x: torch.Tensor, plain_em: bool) -> dict[str, Callable[[], tuple[torch.Tensor, torch.Tensor]]]:
    """The ``(Q, R)`` each KF is told, as calls to time: V = I, labelled ML, EM (over-relaxed; plain EM with ``plain_em``)."""
    identity = torch.eye(2, dtype=D)
    em = lambda iterations, **options: fit_em(x, model.F, model.H, identity, model.R, model.s0, model.P0, iterations, **options)
    fits = {
        "KF told V = I": lambda: (identity, model.R),
        "labelled ML, Q": lambda: (fit_labelled(s, x, model.F, model.H, model.s0).Q, model.R),
        "labelled ML, Q and R": lambda: fit_labelled(s, x, model.F, model.H, model.s0)[2:4],
        "EM, Q (over-relaxed, 100 it.)": lambda: (em(100, fit_R=False, acceleration=1.5).Q, model.R),
        "EM, Q and R (over-relaxed, 100 it.)": lambda: em(100, acceleration=1.5)[2:4],
    }
    if plain_em:
        fits["EM, Q (plain, 500 it.)"] = lambda: (em(500, fit_R=False).Q, model.R)
    return fits


def ex52(seeds: int, train: int = 20, test: int = 1000) -> None:
    model = kinematics_1d().to(torch.zeros((), dtype=D))
    rows: dict[str, list[float]] = {}
    times: dict[str, list[float]] = {}
    for seed in range(seeds):
        g = torch.Generator().manual_seed(seed)
        s, x = model.simulate(train, 200, g)
        s_test, x_test = model.simulate(test, 200, g)
        full = position_mse(model, x_test, s_test, model.Q, model.R)
        fits = tracking_fits(model, s, x, plain_em=seed == 0)
        rows.setdefault("KF, full knowledge", []).append(full)
        for name, fit in fits.items():
            start = time.perf_counter()
            Q, R = fit()
            times.setdefault(name, []).append(time.perf_counter() - start)
            rows.setdefault(name, []).append(position_mse(model, x_test, s_test, Q, R) / full)
    print(f"\n## Book Ex. 5.2: position MSE, {train} training trajectories, {test} test trajectories, {seeds} seeds\n")
    print("| KF with | position MSE / full knowledge (mean, max over seeds) | fit time (s) |")
    print("|---|---|---|")
    full = np.array(rows.pop("KF, full knowledge"))
    print(f"| full knowledge | {full.mean():.4f} (absolute; book ≈ 0.24) | |")
    for name, ratios in rows.items():
        r = np.array(ratios)
        print(f"| {name} | {r.mean():.4f}, {r.max():.4f} ({len(r)} seed{'s' if len(r) > 1 else ''}) | {np.mean(times[name]):.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20, help="Ex. 5.1 training/test sets per point")
    parser.add_argument("--tracking-seeds", type=int, default=5, help="Ex. 5.2 training/test sets")
    args = parser.parse_args()
    torch.set_num_threads(1)
    ex51(args.seeds)
    ex52(args.tracking_seeds)


if __name__ == "__main__":
    main()
