"""One MLflow child run per Ray Tune trial, under the sweep's own run, written when the sweep ends.

Logging from the sweep's process after the fact keeps the trials free of database writes (SQLite has one
writer), works unchanged on a remote Ray cluster, and covers trials finished before a resume.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from typing import Any

from lstm_lab.tracking.store import MlflowTarget, flatten

METRICS_PER_BATCH = 900  # MLflow's batch limit is 1000 metrics


def log_trials(parent: MlflowTarget, trials: Iterable[tuple[Mapping[str, Any], Any, Mapping[str, Any], list[float]]],
               metric: str) -> dict[str, str]:
    """``trials``: ``(row, metrics frame or None, sampled values, curve of metric per epoch)`` per trial, where
    ``row`` has ``trial_id``, ``status``, ``metric`` (best value) and ``error``. Returns trial id → run id."""
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=parent.tracking_uri)
    parent_run = client.get_run(parent.run_id)
    ids = {}
    for row, frame, values, curve in trials:
        started = int(1000 * float(frame["timestamp"].iloc[0])) if frame is not None and "timestamp" in frame else None
        run = client.create_run(
            parent_run.info.experiment_id,
            start_time=started,
            run_name=f"trial {row['trial_id']}",
            tags={"mlflow.parentRunId": parent.run_id, "ray_trial_id": str(row["trial_id"]),
                  "pipeline": parent_run.data.tags.get("pipeline", ""), "trial_status": row["status"]},
        )
        now = int(time.time() * 1000)
        # step = epochs trained, as in a pipeline run's per-epoch metrics (tracking.epoch_metrics)
        metrics = [Metric(metric, v, now, step) for step, v in enumerate(curve, start=1) if math.isfinite(v)]
        if math.isfinite(row[metric]):
            metrics.append(Metric("best_val_loss", row[metric], now, 0))
        params = [Param(k, str(v)[:6000]) for k, v in flatten(values).items()]
        tags = [RunTag("error", row["error"])] if row["error"] else []
        for start in range(0, max(len(metrics), 1), METRICS_PER_BATCH):
            client.log_batch(run.info.run_id, metrics=metrics[start : start + METRICS_PER_BATCH],
                             params=params if start == 0 else [], tags=tags if start == 0 else [])
        client.set_terminated(run.info.run_id, status="FAILED" if row["error"] else "FINISHED")
        ids[row["trial_id"]] = run.info.run_id
    return ids
