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
_FUSABLE = ("adam", "adamw")  # optimisers with a fused (single-kernel) step on CPU and CUDA


def build_optimizer(params, cfg: TrainingConfig, *, fused: bool = False) -> torch.optim.Optimizer:
    """The configured optimiser; ``fused`` asks Adam/AdamW for torch's fused step and is ignored by the others.

    Fused is opt-in: it changes the float rounding of each update, so turning it on for a module whose
    results are locked in dvc.lock would change them.
    """
    extra = {"fused": True} if fused and cfg.optimizer in _FUSABLE else {}
    return _OPTIMIZERS[cfg.optimizer](params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay, **extra)
