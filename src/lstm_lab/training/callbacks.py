"""Callbacks: per-epoch history, and per-epoch metrics into an existing MLflow run.

Why not Lightning's ``MLFlowLogger``: it defaults to a ``./mlruns`` file store (refused by MLflow >= 3.13) and
its ``finalize`` terminates the run it logged to — but the run belongs to the Kedro hook (or the Ray sweep),
which still has test metrics and artifacts to add. This callback only appends metric points, with the tracking
URI and run id given explicitly, so it works the same in a Kedro node, a Ray trial and rank 0 of a DDP job.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import lightning.pytorch as pl


@dataclass(frozen=True)
class MlflowTarget:
    """Where per-epoch metrics go: plain strings, so it crosses process boundaries (spawn, Ray)."""

    tracking_uri: str
    run_id: str


def _scalar_metrics(trainer: pl.Trainer) -> dict[str, float]:
    out = {}
    for key, value in trainer.callback_metrics.items():
        try:
            out[key] = float(value)
        except (TypeError, ValueError):
            continue
    return out


class EpochHistory(pl.Callback):
    """Collects one row per epoch: epoch, train_loss, val_loss (and any other epoch-level metric)."""

    def __init__(self):
        self.rows: list[dict[str, float]] = []

    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.sanity_checking:
            return
        row = {"epoch": trainer.current_epoch, **_scalar_metrics(trainer)}
        self.rows.append(row)


class MlflowEpochMetrics(pl.Callback):
    """Logs ``train_loss``/``val_loss`` (and other epoch metrics) with step = epoch, on global rank 0 only."""

    def __init__(self, target: MlflowTarget, prefix: str = ""):
        self.target, self.prefix = target, prefix
        self._client = None

    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        from mlflow.entities import Metric
        from mlflow.tracking import MlflowClient

        if self._client is None:
            self._client = MlflowClient(tracking_uri=self.target.tracking_uri)
        import time

        now = int(time.time() * 1000)
        metrics = [
            Metric(self.prefix + key, value, now, trainer.current_epoch)
            for key, value in _scalar_metrics(trainer).items()
            if math.isfinite(value)
        ]
        if metrics:
            self._client.log_batch(self.target.run_id, metrics=metrics)
