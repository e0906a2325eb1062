"""The LightningModule every task shares: the network, its loss per stage, regularisation, the optimiser.

A task's module only says how one batch becomes a loss (``loss``); logging per epoch, the L2 penalty of the
model spec on training steps, and the optimiser with its schedule are the same for all of them.

Hyper-parameters are the plain values a checkpoint stores (``Task.hparams``): sizes, the model spec and
training settings as dicts, the window, the scaler / tokenizer / vocabulary. They rebuild the network without
Lightning (``Task.from_checkpoint``) and load with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import lightning.pytorch as pl
import torch

from lstm_lab.training.config import TrainingConfig
from lstm_lab.training.optim import configure_optimizers


def route_lightning_logs() -> None:
    """Send Lightning's records through the project's logging configuration (conf/logging.yml), warnings only.

    Lightning installs its own INFO handler on import when the root logger has none yet — which is the case in
    a ddp_spawn rank, a fresh interpreter: its banners then printed twice, once per handler. Run here because
    every process that trains imports this module (a spawned rank unpickles the TaskModule).
    """
    import logging

    for name in ("lightning.pytorch", "lightning.fabric"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
        logger.setLevel(logging.WARNING)


route_lightning_logs()


class SplitDataModule(pl.LightningDataModule):
    """A DataModule whose three loaders differ only by split: subclasses implement ``_loader(split)``."""

    def _loader(self, split: str):
        raise NotImplementedError

    def train_dataloader(self):
        return self._loader("train")

    def val_dataloader(self):
        return self._loader("val")

    def test_dataloader(self):
        return self._loader("test")


class TaskModule(pl.LightningModule):
    # Fused Adam/AdamW step: opt-in per task, since it changes float rounding (results locked in dvc.lock).
    fused_optimizer: ClassVar[bool] = False
    # Validate the untrained model first (history epoch 0) and keep it when no epoch beats it: for tasks whose
    # untrained model is a baseline worth keeping (the forecaster starts as the naive forecast).
    initial_validation: ClassVar[bool] = False

    def __init__(self, net: torch.nn.Module, training: TrainingConfig, hparams: Mapping[str, Any]):
        super().__init__()
        self.save_hyperparameters(dict(hparams))
        self.cfg = training
        self.net = net

    def forward(self, *args, **kwargs):
        return self.net(*args, **kwargs)

    def loss(self, batch, stage: str) -> tuple[torch.Tensor, int, dict[str, torch.Tensor]]:
        """``(mean loss, number of items it averages, other metrics)`` for one batch of ``stage``; the other
        metrics are logged as ``<stage>_<name>`` after the loss (accuracy, bits per character)."""
        raise NotImplementedError

    def log_epoch(self, name: str, value: torch.Tensor, n: int, prog_bar: bool = True) -> None:
        """An epoch-level mean over batches weighted by ``n`` (averaged over ranks too)."""
        self.log(name, value, on_step=False, on_epoch=True, prog_bar=prog_bar, batch_size=n, sync_dist=True)

    def _step(self, batch, stage: str) -> torch.Tensor:
        loss, n, extras = self.loss(batch, stage)
        self.log_epoch(f"{stage}_loss", loss, n)
        for name, value in extras.items():
            self.log_epoch(f"{stage}_{name}", value, n)
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train") + self.net.regularization()

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._step(batch, "test")

    def configure_optimizers(self):
        return configure_optimizers(self, self.cfg, fused=self.fused_optimizer)
