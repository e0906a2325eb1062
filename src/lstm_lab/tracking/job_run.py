"""The MLflow run of a torchrun job started without Kedro (``lstm-lab-train``).

With ``--run-id`` the job appends to that run (the Kedro node that launched it owns and ends it); without one,
rank 0 creates a run in ``--experiment`` with the job's parameters and ends it when training ends.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from lstm_lab.tracking.store import MlflowTarget, ensure_store, experiment_id, log_params

log = logging.getLogger(__name__)


def start_job_run(tracking_uri: str | None, run_id: str | None, experiment: str,
                  params: Mapping[str, Any]) -> tuple[MlflowTarget | None, bool]:
    """``(target or None, whether this process created the run and so must end it)``."""
    if not tracking_uri:
        return None, False
    if run_id:
        return MlflowTarget(tracking_uri, run_id), False
    from mlflow import MlflowClient

    ensure_store(tracking_uri)  # torchrun ranks or parallel jobs may be the first to open a fresh mlflow.db
    client = MlflowClient(tracking_uri=tracking_uri)
    run = client.create_run(experiment_id(client, experiment), tags={"launcher": "lstm-lab-train"})
    log_params(client, run.info.run_id, params)
    log.info("MLflow run %s in experiment %r at %s", run.info.run_id, experiment, tracking_uri)
    return MlflowTarget(tracking_uri, run.info.run_id), True


def end_job_run(target: MlflowTarget, status: str, best_val_loss: float | None) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=target.tracking_uri)
    if best_val_loss is not None:
        client.log_metric(target.run_id, "best_val_loss", best_val_loss)
    client.set_terminated(target.run_id, status=status)
