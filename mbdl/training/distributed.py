"""What a data-parallel (DDP) run needs beyond one process: which process writes, and the test set put back together.

Under ``trainer=ddp`` Lightning starts ``devices - 1`` more processes by re-running the command; every process
builds the same task, data and method (same seed), trains on its share of each batch (gradients averaged over
the ranks) and evaluates its share of each split (a ``DistributedSampler``, padded to equal shares). The
estimates of all ranks are gathered and put back in split order, each sample once, so that the metrics are
computed over the whole split exactly as one process would; only rank 0 writes the run's files.
"""

from __future__ import annotations

import lightning as L
import torch
from lightning.fabric.utilities.rank_zero import rank_zero_only
from torch import Tensor


def is_rank_zero() -> bool:
    """Whether this process writes the run's files: the only process, or rank 0 of a DDP run (Lightning's rank,
    from ``RANK``, ``LOCAL_RANK`` or ``SLURM_PROCID``)."""
    return rank_zero_only.rank == 0


def gather_rows(module: L.LightningModule, rows: Tensor) -> Tensor:
    """``rows`` (shape ``(n_rank, ...)``, the same on every rank) of every rank, rank after rank, on the CPU:
    ``(world_size * n_rank, ...)``; ``rows`` itself in a single process."""
    if module.trainer.world_size == 1:
        return rows
    gathered = module.all_gather(rows.to(module.device))  # (world_size, n_rank, ...); NCCL needs device tensors
    return gathered.flatten(0, 1).cpu()


def first_occurrences(index: Tensor, rows: Tensor) -> tuple[Tensor, Tensor]:
    """The split positions in ``index`` (a sampler's padding repeats some), sorted and each once, and their ``rows``
    (the first occurrence of a repeated one)."""
    order = torch.argsort(index, stable=True)
    index, rows = index[order], rows[order]
    first = torch.ones_like(index, dtype=torch.bool)
    first[1:] = index[1:] != index[:-1]
    return index[first], rows[first]


def in_split_order(index: Tensor, rows: Tensor, size: int) -> Tensor:
    """The ``rows`` whose split positions are ``index`` (each position at least once; a sampler's padding repeats
    some) as one row per position ``0 .. size - 1``, the first occurrence of a repeated one.

    Raises :class:`RuntimeError` when a position is missing (a split not covered by the ranks)."""
    positions, rows = first_occurrences(index, rows)
    if len(positions) != size or not torch.equal(positions, torch.arange(size)):
        raise RuntimeError(f"the evaluated samples cover {len(positions)} of the split's {size} positions")
    return rows


def total(module: L.LightningModule, value: float) -> float:
    """``value`` summed over the ranks (itself in a single process)."""
    if module.trainer.world_size == 1:
        return value
    return float(module.trainer.strategy.reduce(torch.tensor(value, dtype=torch.float64, device=module.device), reduce_op="sum"))
