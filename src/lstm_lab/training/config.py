"""Training settings shared by every pipeline (the ``training:`` section of parameters_<pipeline>.yml)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from lstm_lab.models.spec import StrictModel


class TrainerSettings(StrictModel):
    """Passed through to ``lightning.pytorch.Trainer``. Defaults: one device, no extra processes."""

    accelerator: Literal["auto", "cpu", "gpu", "cuda", "mps"] = "cpu"
    devices: int | str = 1
    num_nodes: int = Field(1, ge=1)
    strategy: Literal["auto", "ddp_spawn", "ddp_fork", "ddp", "fsdp"] = "auto"
    precision: Literal["32-true", "32", "bf16-mixed", "16-mixed"] = "32-true"
    accumulate_grad_batches: int = Field(1, ge=1)
    gradient_clip_val: float | None = Field(None, gt=0)
    limit_train_batches: int | float | None = None
    limit_val_batches: int | float | None = None


class TrainingConfig(StrictModel):
    seed: int = 42
    max_epochs: int = Field(100, ge=1)
    batch_size: int = Field(64, ge=1)
    optimizer: Literal["adam", "adamw", "rmsprop", "sgd"] = "adam"
    learning_rate: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    early_stopping_patience: int | None = Field(10, ge=1)  # epochs without val_loss improvement; None = off
    early_stopping_min_delta: float = Field(0.0, ge=0)
    deterministic: bool = True
    num_threads: int | None = Field(None, ge=1)  # torch intra-op threads; None = torch's default
    trainer: TrainerSettings = Field(default_factory=TrainerSettings)
