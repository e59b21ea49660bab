"""Callbacks the runner always adds."""

from __future__ import annotations

import copy

import lightning as L
import torch


class BestWeights(L.Callback):
    """Keep, in memory, the weights with the lowest ``val/loss`` and restore them when fitting ends."""

    def __init__(self) -> None:
        self.best = float("inf")
        self.state: dict[str, torch.Tensor] | None = None

    def on_validation_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        loss = trainer.callback_metrics.get("val/loss")
        if loss is not None and float(loss) < self.best:
            self.best = float(loss)
            self.state = copy.deepcopy(module.state_dict())

    def on_fit_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if self.state is not None:
            module.load_state_dict(self.state)
