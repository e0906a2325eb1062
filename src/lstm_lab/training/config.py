"""Training settings shared by every pipeline (the ``training:`` section of parameters_<pipeline>.yml).

``monitor`` names the validation metric that selects the best checkpoint and drives early stopping. Its
direction is the metric's own (:data:`MONITOR_MODES`: a loss is minimised, an accuracy maximised), and it must be
one the task logs: ``Task.logged_metrics(params)`` (``val_loss`` only, unless the task says otherwise; the
sentiment task also logs ``val_acc``), checked by :func:`check_monitor` before training.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from pydantic import Field, field_validator, model_validator

from lstm_lab.errors import LstmLabError
from lstm_lab.schema import StrictModel

# Validation metrics a fit can be selected on, with the direction that makes them better. What a task logs is
# ``val_loss`` plus ``val_<name>`` for each extra metric its TaskModule.loss returns (sentiment: ``acc``; textgen:
# ``bits_per_char``, val_loss / ln 2, so selecting on it is selecting on val_loss; the panel module: ``mae``).
MONITOR_MODES: dict[str, Literal["min", "max"]] = {"val_loss": "min", "val_acc": "max", "val_bits_per_char": "min",
                                                   "val_mae": "min"}


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


class LrSchedule(StrictModel):
    """How the learning rate moves during training (``training.lr_schedule``); ``none`` keeps it constant.

    - ``cosine``: per optimiser step, from ``learning_rate`` down to ``final_fraction`` of it at the last step of
      ``max_epochs``, after ``warmup_steps`` of linear warm-up.
    - ``plateau``: multiply the rate by ``factor`` when ``val_loss`` has not improved for ``patience`` epochs
      (Keras' ReduceLROnPlateau), never below ``min_lr``.
    """

    kind: Literal["none", "cosine", "plateau"] = "none"
    warmup_steps: int = Field(0, ge=0)  # linear warm-up (none/cosine)
    final_fraction: float = Field(0.1, ge=0.0, le=1.0)  # cosine
    factor: float = Field(0.5, gt=0.0, lt=1.0)  # plateau
    patience: int = Field(2, ge=0)  # plateau, epochs
    min_lr: float = Field(0.0, ge=0.0)  # plateau

    @model_validator(mode="after")
    def _warmup_is_per_step(self) -> LrSchedule:
        if self.kind == "plateau" and self.warmup_steps:
            raise ValueError("warmup_steps works with kind none or cosine (per step), not plateau (per epoch)")
        return self


class TrainingConfig(StrictModel):
    seed: int = 42
    max_epochs: int = Field(100, ge=1)
    batch_size: int = Field(64, ge=1)
    optimizer: Literal["adam", "adamw", "rmsprop", "sgd"] = "adam"
    learning_rate: float = Field(1e-3, gt=0)
    lr_schedule: LrSchedule = Field(default_factory=LrSchedule)
    weight_decay: float = Field(0.0, ge=0)
    # The validation metric that picks the best checkpoint (and the untrained model's, where a task validates it
    # first) and that early stopping watches; minimised or maximised as MONITOR_MODES says. FitResult.best_val_loss
    # is the val_loss of the checkpoint it picks, and the history keeps val_loss either way. The plateau learning-
    # rate schedule stays on val_loss.
    monitor: str = "val_loss"
    early_stopping_patience: int | None = Field(10, ge=1)  # epochs without `monitor` improving; None = off
    early_stopping_min_delta: float = Field(0.0, ge=0)  # in the units of `monitor`
    # Wall-time budget of one fit in minutes (Lightning's Trainer(max_time=...)), validation included: training
    # stops after the batch that crosses it (one validation pass follows) and the best checkpoint so far is kept.
    # A resumed fit counts the time of the attempt it continues. None: no limit (max_epochs and early stopping only).
    max_minutes: float | None = Field(None, gt=0)
    deterministic: bool = True
    # torch intra-op threads; None = the CPUs this process may use (affinity, cgroup quota), 1 per DDP rank, a Ray
    # trial's resources_per_trial.cpu (training/runtime.py)
    num_threads: int | None = Field(None, ge=1)
    # Flush subnormal floats (< ~1e-38) to zero on CPU, as TensorFlow does: an LSTM fitting noisy targets drifts
    # into them, which many x86 CPUs compute on a slow path (~12x slower training measured in issue 18). Changes
    # only values below float32's normal range: the forecast task's best val_loss came out identical.
    flush_denormal: bool = True
    # auto: keep the state after each epoch in ./checkpoints/<task>-<digest>/ and continue from it when the same
    # configuration on the same data runs again after a crash or a kill (training/resume.py); never: a scratch dir
    resume: Literal["auto", "never"] = "auto"
    trainer: TrainerSettings = Field(default_factory=TrainerSettings)

    @field_validator("monitor")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        if value not in MONITOR_MODES:
            raise ValueError(f"not a validation metric a task logs (allowed: {', '.join(MONITOR_MODES)})")
        return value

    @property
    def monitor_mode(self) -> Literal["min", "max"]:
        """``min`` or ``max``: which way ``monitor`` improves."""
        return MONITOR_MODES[self.monitor]


def check_monitor(cfg: TrainingConfig, task: str, logged: Iterable[str], where: str | None = None) -> None:
    """One ``LstmLabError`` line unless ``cfg.monitor`` is among the validation metrics ``task`` logs."""
    logged = tuple(logged)
    if cfg.monitor not in logged:
        prefix = f"{where}: " if where else ""
        raise LstmLabError(f"{prefix}{task}.training.monitor: the {task} task does not log {cfg.monitor!r} "
                           f"(allowed: {', '.join(logged)})")
