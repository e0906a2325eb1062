"""Where runs are stored, and the small pieces every run needs (target, parameters, experiments).

Default store: ``sqlite:///<project root>/mlflow.db`` so that ``mlflow ui`` started in the project root (whose
own default is ``sqlite:///mlflow.db``) shows every run; ``MLFLOW_TRACKING_URI`` overrides. Artifacts of
experiments created here go to ``<project root>/mlartifacts``, never to a ``./mlruns`` file store.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# MLflow takes at most 100 parameters in one batch.
PARAMS_PER_BATCH = 90


@dataclass(frozen=True)
class MlflowTarget:
    """Where per-epoch metrics go: plain strings, so it crosses process boundaries (spawn, Ray, torchrun)."""

    tracking_uri: str
    run_id: str


def tracking_uri(project_path: str | Path) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path(project_path).resolve() / 'mlflow.db'}"


def ensure_experiment(name: str, project_path: str | Path) -> str:
    """Experiment id for ``name``, creating it with a project-local artifact root if it does not exist."""
    import mlflow

    client = mlflow.MlflowClient()
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = None
    # (mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI, so compare with the project default instead.)
    if mlflow.get_tracking_uri() == f"sqlite:///{Path(project_path).resolve() / 'mlflow.db'}":
        location = (Path(project_path).resolve() / "mlartifacts" / name).as_uri()
    return client.create_experiment(name, artifact_location=location)


def active_target() -> MlflowTarget | None:
    """The MLflow run active in this process (started by the Kedro hook), as plain strings; else None."""
    try:
        import mlflow
    except ImportError:  # pragma: no cover - mlflow is a hard dependency
        return None
    run = mlflow.active_run()
    return MlflowTarget(mlflow.get_tracking_uri(), run.info.run_id) if run else None


def flatten(data: Mapping[str, Any], prefix: str = "", sep: str = ".") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` → ``{"a.b": 1}``; lists stay whole (logged as their string form)."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{sep}{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            flat.update(flatten(value, name, sep))
        else:
            flat[name] = value
    return flat


def log_params(client, run_id: str, params: Mapping[str, Any]) -> None:
    """Flattened ``params`` (values as text, cut to MLflow's 6000 characters) in batches MLflow accepts."""
    from mlflow.entities import Param

    items = [Param(str(k), str(v)[:6000]) for k, v in flatten(params).items()]
    for start in range(0, len(items), PARAMS_PER_BATCH):
        client.log_batch(run_id, params=items[start : start + PARAMS_PER_BATCH])
