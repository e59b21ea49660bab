"""Simulated data sets held in memory, split by seed, or (training) simulated batch by batch."""

from __future__ import annotations

from collections.abc import Iterator

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset

from mbdl.config import check_positive
from mbdl.tasks.base import Batch, Task

#: samples per validation/test batch (and per training batch of a method that is not trained).
EVAL_BATCH_SIZE = 1024

#: offsets of the per-split seeds, so that the test set does not depend on ``n_train``.
SPLIT_SEEDS = {"train": 0, "val": 1, "test": 2}

#: the key of an evaluation batch that holds each sample's position in its split (for gathering over DDP ranks).
INDEX_KEY = "index"


def split_generator(seed: int, split: str) -> torch.Generator:
    """The generator of one split: seeded from the run seed and the split only."""
    return torch.Generator().manual_seed(1_000_003 * seed + SPLIT_SEEDS[split])


class BatchDataset(Dataset):
    """A :data:`Batch` of tensors indexed along the first dimension, fetched a batch at a time.

    ``with_index``: each batch also holds its samples' positions in ``data`` under :data:`INDEX_KEY`, so that
    the estimates of several DDP ranks (each given a part of the split by a ``DistributedSampler``, padded to
    equal parts) can be put back in order, each sample once."""

    def __init__(self, data: Batch, with_index: bool = False) -> None:
        self.data, self.with_index = data, with_index
        self.size = len(next(iter(data.values())))

    def __len__(self) -> int:
        return self.size

    def __getitems__(self, indices: list[int]) -> Batch:
        index = torch.as_tensor(indices)
        batch = {key: value[index] for key, value in self.data.items()}
        return {**batch, INDEX_KEY: index} if self.with_index else batch


class FreshBatches(IterableDataset):
    """``batches`` batches of ``batch_size`` samples, each newly simulated by ``task`` from ``generator``:
    every pass (epoch, and every fit of layer-wise training) sees data it has not seen before."""

    def __init__(self, task: Task, batches: int, batch_size: int, generator: torch.Generator) -> None:
        self.task, self.batches, self.batch_size, self.generator = task, batches, batch_size, generator

    def __len__(self) -> int:
        return self.batches

    def __iter__(self) -> Iterator[Batch]:
        for _ in range(self.batches):
            yield self.task.simulate(self.batch_size, self.generator)


def _as_is(batch: Batch) -> Batch:
    return batch


class SimulatedData(L.LightningDataModule):
    """Train, validation and test sets drawn from ``task.simulate`` with the run's seed.

    Args:
        task: the task whose simulator draws the data.
        seed: run seed; each split has its own generator (see :func:`split_generator`).
        batch_size: samples per training batch.
        n_train: training-set size (``None``: the task's default).
        eval_batch_size: samples per validation/test batch.
        fresh: draw new training data for every batch instead of a fixed training set (an unlimited
            data budget; an epoch is then ``n_train`` new samples, in whole batches).
    """

    def __init__(self, task: Task, seed: int, batch_size: int, n_train: int | None = None, eval_batch_size: int = EVAL_BATCH_SIZE, fresh: bool = False) -> None:
        super().__init__()
        check_positive(batch_size, "method.optim.batch_size", integer=True)
        if n_train is not None:
            check_positive(n_train, "regime.n_train", integer=True)
        self.task, self.seed = task, seed
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.sizes = {"train": n_train or task.n_train, "val": task.n_val, "test": task.n_test}
        self.splits: dict[str, Batch] = {}
        self.fresh = fresh
        self._fresh_generator = split_generator(seed, "train")

    def split(self, name: str) -> Batch:
        """The whole split ``name`` (simulated on first use)."""
        if name not in self.splits:
            self.splits[name] = self.task.data(name, self.sizes[name], split_generator(self.seed, name))
        return self.splits[name]

    def loader(self, name: str, batch_size: int | None = None, shuffle: bool = False, with_index: bool = False) -> DataLoader:
        """Batches of split ``name`` (``batch_size=None``: the evaluation batch size); ``with_index``: see :class:`BatchDataset`."""
        dataset = BatchDataset(self.split(name), with_index)
        return DataLoader(dataset, batch_size=batch_size or self.eval_batch_size, shuffle=shuffle, collate_fn=_as_is)

    def train_dataloader(self) -> DataLoader:
        if self.fresh:
            batches = max(self.sizes["train"] // self.batch_size, 1)
            return DataLoader(FreshBatches(self.task, batches, self.batch_size, self._fresh_generator), batch_size=None)
        return self.loader("train", self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self.loader("val")

    def test_dataloader(self) -> DataLoader:
        return self.loader("test", with_index=True)
