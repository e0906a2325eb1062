"""Per-epoch metrics appended to an existing MLflow run, from whichever process trains.

Why not Lightning's ``MLFlowLogger``: it defaults to a ``./mlruns`` file store (refused by MLflow >= 3.13) and
its ``finalize`` terminates the run it logged to — but the run belongs to the Kedro hook (or the Ray sweep),
which still has test metrics and artifacts to add. This callback only appends metric points, with the tracking
URI and run id given explicitly, so it works the same in a Kedro node, a Ray trial and rank 0 of a DDP job.
"""

from __future__ import annotations

import math
import os
import time

import lightning.pytorch as pl

from lstm_lab.tracking.store import MlflowTarget
from lstm_lab.training.callbacks import INITIAL_VAL_LOSS, epoch_metrics


class MlflowEpochMetrics(pl.Callback):
    """Logs ``train_loss``/``val_loss`` (and other epoch metrics) with step = epochs trained (0: the untrained
    model's ``val_loss`` when :class:`InitialValidation` ran), on global rank 0 only."""

    def __init__(self, target: MlflowTarget, prefix: str = ""):
        self.target, self.prefix = target, prefix
        self._client = None
        self._pid = os.getpid()  # the process that built the callback; a ddp_fork rank is a fork of it

    def on_train_start(self, trainer, pl_module):
        value = getattr(pl_module, INITIAL_VAL_LOSS, None)  # set by InitialValidation, before this runs
        if value is not None and trainer.current_epoch == 0 and trainer.is_global_zero:
            self._log({"val_loss": value}, step=0)

    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        self._log(epoch_metrics(trainer), step=trainer.current_epoch + 1)  # step = epochs trained, as the history

    def _log(self, values: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric
        from mlflow.tracking import MlflowClient

        if self._client is None:
            if os.getpid() != self._pid:
                _forget_inherited_connections()
            self._client = MlflowClient(tracking_uri=self.target.tracking_uri)
        now = int(time.time() * 1000)
        metrics = [Metric(self.prefix + key, value, now, step) for key, value in values.items() if math.isfinite(value)]
        if metrics:
            self._client.log_batch(self.target.run_id, metrics=metrics)


def _forget_inherited_connections(close: bool = False) -> None:
    """In a forked child, drop the database connections pooled by the parent's MLflow store (unused there).

    A SQLite/SQL connection must not be shared across fork; SQLAlchemy's advice is ``engine.dispose(close=False)``
    in the child: the parent's connections stay open for the parent, and the child opens its own. ``close``:
    close them too (this process's own connections, e.g. one an interrupt left inside a transaction).
    """
    try:
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
    except ImportError:  # pragma: no cover - no SQL store support installed
        return
    for engine in list(getattr(SqlAlchemyStore, "_engine_map", {}).values()):
        engine.dispose(close=close)
