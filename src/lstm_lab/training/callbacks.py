"""Callbacks: per-epoch history, and per-epoch metrics into an existing MLflow run.

Why not Lightning's ``MLFlowLogger``: it defaults to a ``./mlruns`` file store (refused by MLflow >= 3.13) and
its ``finalize`` terminates the run it logged to — but the run belongs to the Kedro hook (or the Ray sweep),
which still has test metrics and artifacts to add. This callback only appends metric points, with the tracking
URI and run id given explicitly, so it works the same in a Kedro node, a Ray trial and rank 0 of a DDP job.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import lightning.pytorch as pl


@dataclass(frozen=True)
class MlflowTarget:
    """Where per-epoch metrics go: plain strings, so it crosses process boundaries (spawn, Ray)."""

    tracking_uri: str
    run_id: str


def _scalar_metrics(trainer: pl.Trainer) -> dict[str, float]:
    """The epoch's logged metrics, plus ``lr``: the optimiser's learning rate when the epoch's training ends
    (per-step schedules have moved it during the epoch; a plateau schedule moves it after validation)."""
    out = {}
    for key, value in trainer.callback_metrics.items():
        try:
            out[key] = float(value)
        except (TypeError, ValueError):
            continue
    if trainer.optimizers:
        out["lr"] = float(trainer.optimizers[0].param_groups[0]["lr"])
    return out


class EpochHistory(pl.Callback):
    """Collects one row per epoch: epoch, train_loss, val_loss (and any other epoch-level metric).

    With ``path``, global rank 0 also appends each row to that JSON-lines file as the epoch ends. That is how
    the rows get back from ranks that are not this process (ddp_spawn/ddp_fork children, torchrun ranks),
    whose copies of this callback the caller never sees: read them with :meth:`collect` after ``fit``.
    """

    def __init__(self, path: str | Path | None = None):
        self.rows: list[dict[str, float]] = []
        self.path = Path(path) if path is not None else None

    def on_fit_start(self, trainer, pl_module):
        if self.path is not None and trainer.is_global_zero:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text("")  # a reused directory must not carry rows of an earlier fit

    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.sanity_checking:
            return
        row = {"epoch": trainer.current_epoch, **_scalar_metrics(trainer)}
        self.rows.append(row)
        if self.path is not None and trainer.is_global_zero:
            with self.path.open("a") as f:
                f.write(json.dumps(row) + "\n")

    def collect(self) -> list[dict[str, float]]:
        """The rows of the fit that just ran, wherever rank 0 ran."""
        if self.path is None or not self.path.is_file():
            return list(self.rows)
        return read_history(self.path)


def read_history(path: str | Path) -> list[dict[str, float]]:
    """Rows written by :class:`EpochHistory` (one JSON object per line); [] if the file does not exist."""
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class MlflowEpochMetrics(pl.Callback):
    """Logs ``train_loss``/``val_loss`` (and other epoch metrics) with step = epoch, on global rank 0 only."""

    def __init__(self, target: MlflowTarget, prefix: str = ""):
        self.target, self.prefix = target, prefix
        self._client = None
        self._pid = os.getpid()  # the process that built the callback; a ddp_fork rank is a fork of it

    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        from mlflow.entities import Metric
        from mlflow.tracking import MlflowClient

        if self._client is None:
            if os.getpid() != self._pid:
                _forget_inherited_connections()
            self._client = MlflowClient(tracking_uri=self.target.tracking_uri)
        now = int(time.time() * 1000)
        metrics = [
            Metric(self.prefix + key, value, now, trainer.current_epoch)
            for key, value in _scalar_metrics(trainer).items()
            if math.isfinite(value)
        ]
        if metrics:
            self._client.log_batch(self.target.run_id, metrics=metrics)


def _forget_inherited_connections() -> None:
    """In a forked child, drop the database connections pooled by the parent's MLflow store (unused there).

    A SQLite/SQL connection must not be shared across fork; SQLAlchemy's advice is ``engine.dispose(close=False)``
    in the child: the parent's connections stay open for the parent, and the child opens its own.
    """
    try:
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
    except ImportError:  # pragma: no cover - no SQL store support installed
        return
    for engine in list(getattr(SqlAlchemyStore, "_engine_map", {}).values()):
        engine.dispose(close=False)
