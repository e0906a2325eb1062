"""The one training entry point.

``run_training(task, config, data)`` takes a plain config (the pipeline's parameters as a dict) and the
prepared arrays, builds the task's LightningModule and DataModule, trains with early stopping on ``val_loss``
and returns the best weights. A Kedro node, a Ray Tune trial and a DDP rank all call this same function; they
differ only in the ``callbacks`` they add (MLflow metrics, Tune reports) and where ``tracking`` points.
"""

from __future__ import annotations

import logging
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

from lstm_lab.training.callbacks import EpochHistory, MlflowEpochMetrics, MlflowTarget
from lstm_lab.training.config import TrainingConfig

log = logging.getLogger(__name__)

# Lightning installs its own INFO handler on import; route its records through the project's logging
# configuration instead (conf/logging.yml) so each line appears once, and keep only warnings.
for _name in ("lightning.pytorch", "lightning.fabric"):
    _logger = logging.getLogger(_name)
    _logger.handlers.clear()
    _logger.propagate = True
    _logger.setLevel(logging.WARNING)


@dataclass
class FitResult:
    module: pl.LightningModule  # best weights loaded
    checkpoint: dict[str, Any]  # the best Lightning checkpoint (what ModelCheckpoint wrote), in memory
    best_val_loss: float
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def epochs(self) -> int:
        return len(self.history)


# --------------------------------------------------------------------------------------------------------------
# Tasks: how each pipeline turns (config, data) into a LightningModule and a DataModule
# --------------------------------------------------------------------------------------------------------------
def _build_forecast(config: Mapping[str, Any], data: Mapping[str, Any]):
    from lstm_lab.training.forecast import ForecastDataModule, ForecastModule

    window, training = config["window"], TrainingConfig.model_validate(config.get("training", {}))
    inputs, targets = data["inputs"], data["targets"]
    module = ForecastModule(
        n_features=inputs.shape[1],
        n_targets=targets.shape[1],
        horizon=window["horizon"],
        model=dict(config.get("model", {})),
        training=training.model_dump(),
        residual=config.get("residual", True),
    )
    datamodule = ForecastDataModule(
        inputs,
        targets,
        data["bounds"],
        lookback=window["lookback"],
        horizon=window["horizon"],
        stride=window.get("stride", 1),
        batch_size=training.batch_size,
        seed=training.seed,
    )
    return module, datamodule


TASKS: dict[str, Callable[[Mapping[str, Any], Mapping[str, Any]], tuple[pl.LightningModule, pl.LightningDataModule]]] = {
    "forecast": _build_forecast,
}


def run_training(
    task: str,
    config: Mapping[str, Any],
    data: Mapping[str, Any],
    *,
    tracking: MlflowTarget | None = None,
    callbacks: Iterable[pl.Callback] = (),
    checkpoint_dir: str | Path | None = None,
) -> FitResult:
    """Train ``task`` with a plain ``config`` dict on prepared ``data``; see the module docstring."""
    if task not in TASKS:
        raise KeyError(f"unknown task {task!r}; known: {sorted(TASKS)}")
    cfg = TrainingConfig.model_validate(config.get("training", {}))
    pl.seed_everything(cfg.seed, workers=True)  # before the model is built: weight init is seeded too
    module, datamodule = TASKS[task](config, data)
    return fit(module, datamodule, cfg, tracking=tracking, callbacks=callbacks, checkpoint_dir=checkpoint_dir)


# --------------------------------------------------------------------------------------------------------------
# Trainer factory and fit
# --------------------------------------------------------------------------------------------------------------
def build_trainer(cfg: TrainingConfig, callbacks: list[pl.Callback], root_dir: str | Path) -> pl.Trainer:
    t = cfg.trainer
    precision = "32-true" if t.precision == "32" else t.precision
    return pl.Trainer(
        max_epochs=cfg.max_epochs,
        accelerator=t.accelerator,
        devices=t.devices,
        num_nodes=t.num_nodes,
        strategy=t.strategy,
        precision=precision,
        accumulate_grad_batches=t.accumulate_grad_batches,
        gradient_clip_val=t.gradient_clip_val,
        limit_train_batches=t.limit_train_batches,
        limit_val_batches=t.limit_val_batches,
        deterministic=cfg.deterministic,
        callbacks=callbacks,
        logger=False,  # metrics go to MLflow through MlflowEpochMetrics, with an explicit run id
        default_root_dir=str(root_dir),
        enable_progress_bar=sys.stderr.isatty(),
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )


def fit(
    module: pl.LightningModule,
    datamodule: pl.LightningDataModule,
    cfg: TrainingConfig,
    *,
    tracking: MlflowTarget | None = None,
    callbacks: Iterable[pl.Callback] = (),
    checkpoint_dir: str | Path | None = None,
) -> FitResult:
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    with tempfile.TemporaryDirectory(prefix="lstm_lab_ckpt_") as scratch:
        ckpt_dir = Path(checkpoint_dir) if checkpoint_dir else Path(scratch)
        history = EpochHistory()
        best = ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor="val_loss", mode="min", save_top_k=1)
        all_callbacks: list[pl.Callback] = [history, best, *callbacks]
        if cfg.early_stopping_patience:
            all_callbacks.append(
                EarlyStopping(
                    monitor="val_loss",
                    mode="min",
                    patience=cfg.early_stopping_patience,
                    min_delta=cfg.early_stopping_min_delta,
                    check_finite=True,  # a NaN loss stops the run instead of wasting the remaining epochs
                )
            )
        if tracking is not None:
            all_callbacks.append(MlflowEpochMetrics(tracking))
        trainer = build_trainer(cfg, all_callbacks, ckpt_dir)
        trainer.fit(module, datamodule=datamodule)
        if not best.best_model_path:
            raise RuntimeError("training produced no checkpoint: val_loss was never finite")
        checkpoint = torch.load(best.best_model_path, map_location="cpu", weights_only=False)
        # Callback state holds the scratch directory's random path: dropped, so that identical training
        # gives byte-identical checkpoints (stable DVC hashes). Weights, optimiser and loop state stay.
        checkpoint.pop("callbacks", None)
    module.load_state_dict(checkpoint["state_dict"])
    best_val = float(best.best_model_score)
    log.info("best val_loss %.6f after %d epoch(s)", best_val, len(history.rows))
    return FitResult(module=module, checkpoint=checkpoint, best_val_loss=best_val, history=history.rows)
