"""Lightning's per-step overhead: a training step inside ``Trainer.fit`` against the same step in a plain torch loop.

For every trained method of the spectrum (each task at its defaults, the method's own batch size, ``regime.n_train``
set to 20 batches), in one process, interleaved: ``mbdl.run.fit`` (Lightning: the fit loop, ``self.log``, the
callbacks, a validation pass per epoch) and a plain loop doing the same work (zero_grad, the method's loss,
backward, the optimizer step; one validation pass per epoch), each at 1 and at 4 epochs. The difference of the two
epoch counts divided by the extra steps is the cost of one step (validation included, 1/20 of a pass per step);
what Lightning adds per step is the difference of the two loops, and its share is that over Lightning's step.
Times are this process's CPU time (one torch thread): on a machine shared with other work the wall clock of a
process that gets a fraction of a core says little, its CPU time much more.

    .venv/bin/python scripts/bench_steps.py [--label before|after] [--methods sparse_recovery/unfolded ...]
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable

import torch
from bench_harness import Timing, compose_config, fmt_seconds, markdown_table, parser, report, setup_torch

#: the trained points of each task's spectrum.
METHODS = [f"{task}/{method}" for task in ("sparse_recovery", "tracking", "doa") for method in ("learned_optimizer", "unfolded", "dnn_aided", "black_box")]
#: training batches per epoch in every case.
BATCHES = 20
#: the two epoch counts; their difference times BATCHES is the number of steps the per-step cost is taken over.
EPOCHS = (1, 4)


def cases(name: str, workdir: str) -> dict[str, Callable[[], None]]:
    """The Lightning fit and the plain loop of ``task/method`` at both epoch counts."""
    from mbdl.run import build, fit

    task, method = name.split("/")
    batch = compose_config(f"task={task}", f"method={method}").method.optim.batch_size
    made = {}
    for epochs in EPOCHS:
        cfg = compose_config(f"task={task}", f"method={method}", f"regime.n_train={BATCHES * batch}", f"method.optim.epochs={epochs}", "~logger", "trainer.enable_progress_bar=false", "threads=1")
        _, _, data, module = build(cfg)
        made[f"Lightning fit, {epochs} epochs"] = lambda cfg=cfg, module=module, data=data: fit(cfg, module, data, workdir)
        made[f"plain loop, {epochs} epochs"] = plain_loop(module, data, epochs)
    return made


def plain_loop(module, data, epochs: int) -> Callable[[], None]:  # noqa: ANN001 - an Experiment and its SimulatedData
    """The work of ``fit`` without Lightning: per epoch, every training batch stepped, then one validation pass."""
    optimizer = module.optimizer_factory([p for p in module.method.parameters() if p.requires_grad], lr=module.lr)
    method = module.method

    def loop() -> None:
        for _ in range(epochs):
            method.train()
            for batch in data.train_dataloader():
                optimizer.zero_grad()
                loss = method.loss(batch["x"], module.objective(batch))
                loss.backward()
                optimizer.step()
            method.eval()
            with torch.no_grad():
                for batch in data.val_dataloader():
                    method.loss(batch["x"], module.objective(batch))

    return loop


def cpu_rounds(cases: dict[str, Callable[[], None]], repeats: int) -> dict[str, Timing]:
    """One warm-up call of each case, then ``repeats`` interleaved rounds (rotated order), timed in CPU seconds."""
    names = list(cases)
    for name in names:
        cases[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names[r % len(names):] + names[: r % len(names)]:
            start = time.process_time()
            cases[name]()
            samples[name].append(time.process_time() - start)
    return {name: Timing(values) for name, values in samples.items()}


def per_step(timings: dict[str, Timing], loop: str) -> Timing:
    """The cost of one step of ``loop`` (validation share included), round by round."""
    short, long = (timings[f"{loop}, {e} epochs"].samples for e in EPOCHS)
    return Timing([(b - a) / ((EPOCHS[1] - EPOCHS[0]) * BATCHES) for a, b in zip(short, long)])


def main() -> None:
    p = parser(__doc__.split("\n")[0])
    p.set_defaults(repeats=5)
    p.add_argument("--methods", nargs="+", default=METHODS, help="task/method pairs")
    p.add_argument("--label", default="now", help="the name of this measurement's section (before, after, ...)")
    args = p.parse_args()
    setup_torch(args.device, args.threads)
    methods = args.methods[:2] if args.quick else args.methods
    repeats = 1 if args.quick else args.repeats
    rows = []
    with tempfile.TemporaryDirectory(prefix="mbdl_steps_") as workdir:
        for name in methods:
            timings = cpu_rounds(cases(name, workdir), repeats)
            lightning, plain = per_step(timings, "Lightning fit"), per_step(timings, "plain loop")
            overhead = Timing([a - b for a, b in zip(lightning.samples, plain.samples)])
            share = Timing([(a - b) / a for a, b in zip(lightning.samples, plain.samples)])
            fixed = Timing([t - e * s for t, s, e in zip(timings[f"Lightning fit, {EPOCHS[0]} epochs"].samples, lightning.samples, [EPOCHS[0] * BATCHES] * repeats)])
            rows.append([name, str(lightning), str(plain), str(overhead), f"{100 * share.median:.0f} % [{100 * min(share.samples):.0f}-{100 * max(share.samples):.0f}]", fmt_seconds(fixed.median)])
            print(rows[-1], flush=True)
    body = (
        f"Label: **{args.label}**. {BATCHES} training batches per epoch at each method's batch size, fits of {EPOCHS[0]} and {EPOCHS[1]} epochs, "
        f"{repeats} interleaved rounds in one process, CPU time, medians [min-max]; a step's cost includes 1/{BATCHES} of a validation pass.\n\n"
        + markdown_table(["task/method", "Lightning step (CPU)", "plain torch step (CPU)", "Lightning's overhead per step", "its share of the step", "fixed cost per fit"], rows)
    )
    report(args, f"steps_{args.label}", f"Lightning's per-step overhead ({args.label})", body)


if __name__ == "__main__":
    main()
