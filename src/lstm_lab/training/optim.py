"""Optimiser factory shared by every LightningModule of the project."""

from __future__ import annotations

import torch

from lstm_lab.training.config import TrainingConfig

_OPTIMIZERS = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "rmsprop": torch.optim.RMSprop,
    "sgd": torch.optim.SGD,
}


def build_optimizer(params, cfg: TrainingConfig) -> torch.optim.Optimizer:
    return _OPTIMIZERS[cfg.optimizer](params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
