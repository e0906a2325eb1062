"""MLflow plumbing shared by hooks, nodes, Ray trials and DDP ranks.

Default store: ``sqlite:///<project root>/mlflow.db`` so that ``mlflow ui`` started in the project root (whose
own default is ``sqlite:///mlflow.db``) shows every run; ``MLFLOW_TRACKING_URI`` overrides. Artifacts of
experiments created here go to ``<project root>/mlartifacts``, never to a ``./mlruns`` file store.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lstm_lab.training.callbacks import MlflowTarget


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


def git_commit(path: str | Path) -> str:
    """HEAD's commit, with ``-dirty`` when tracked files differ; ``unknown`` outside git."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=path, capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit}-dirty" if dirty else commit


def dvc_lock_file(project_path: str | Path, pipeline: str) -> Path:
    """The dvc.lock holding ``pipeline``'s stages: the root one for forecast, ``stages/<pipeline>/`` else."""
    root = Path(project_path)
    own = root / "stages" / pipeline / "dvc.lock"
    return own if (root / "stages" / pipeline / "dvc.yaml").is_file() else root / "dvc.lock"


def dvc_lock_digest(project_path: str | Path, pipeline: str) -> str:
    """SHA-256 (first 16 hex) of that dvc.lock as the run starts: the locked data and parameters it began
    from (under ``dvc repro`` the earlier stages of the same repro are already in it); ``none`` without one."""
    import hashlib

    lock = dvc_lock_file(project_path, pipeline)
    if not lock.is_file():
        return "none"
    return hashlib.sha256(lock.read_bytes()).hexdigest()[:16]
