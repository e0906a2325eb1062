"""Optimiser and learning-rate schedule shared by every LightningModule of the project."""

from __future__ import annotations

import math
from typing import Any

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


def lr_lambda(kind: str, total_steps: int, warmup_steps: int = 0, final_fraction: float = 0.1):
    """Multiplier of the base learning rate at optimiser step ``s``: linear warm-up, then constant (``none``)
    or cosine decay to ``final_fraction`` at ``total_steps``."""

    def factor(step: int) -> float:
        if warmup_steps and step < warmup_steps:
            return (step + 1) / warmup_steps
        if kind == "none":
            return 1.0
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return final_fraction + (1 - final_fraction) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def configure_optimizers(module, cfg: TrainingConfig, *, fused: bool = False) -> Any:
    """What a LightningModule's ``configure_optimizers`` returns for ``cfg``: the optimiser alone, or with
    its scheduler (stepped per optimiser step for warm-up/cosine, per epoch on ``val_loss`` for plateau)."""
    optimizer = build_optimizer(module.parameters(), cfg, fused=fused)
    s = cfg.lr_schedule
    if s.kind == "plateau":
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=s.factor,
                                                               patience=s.patience, min_lr=s.min_lr)
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "monitor": "val_loss", "interval": "epoch"}}
    if s.kind == "none" and not s.warmup_steps:
        return optimizer
    total = int(module.trainer.estimated_stepping_batches)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(s.kind, total, s.warmup_steps, s.final_fraction))
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
