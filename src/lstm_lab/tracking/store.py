"""Where runs are stored, and the small pieces every run needs (target, parameters, experiments).

Default store: ``sqlite:///<project root>/mlflow.db`` so that ``mlflow ui`` started in the project root (whose
own default is ``sqlite:///mlflow.db``) shows every run; ``MLFLOW_TRACKING_URI`` overrides. Artifacts of
experiments created here go to ``<project root>/mlartifacts``, never to a ``./mlruns`` file store.

Concurrent first runs. MLflow creates the SQLite schema (and experiment 0) the first time a process opens the
store, without any lock: two ``kedro run`` started together on a fresh ``mlflow.db`` both see no tables, both
create them, and one dies with ``table ... already exists``. :func:`ensure_store` serialises that first open
across processes with ``flock`` on ``<db>.lock``; :func:`ensure_experiment` tolerates a concurrent creation of
the same experiment.
"""

from __future__ import annotations

import contextlib
import os
import threading
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


# SQLite databases (resolved paths) this process has already opened under the lock: later calls are free.
_READY: set[str] = set()
_READY_LOCK = threading.Lock()


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (resolved against the working directory, as SQLite does);
    None for other schemes and for in-memory databases."""
    if not uri.startswith("sqlite:"):
        return None
    from sqlalchemy.engine import make_url

    database = make_url(uri).database
    if not database or database == ":memory:":
        return None
    if database.startswith("file:"):  # sqlite:///file:/path?uri=true
        database = database[len("file:"):].split("?", 1)[0]
    return Path(database).resolve()


def ensure_store(uri: str) -> None:
    """Create (or migrate) the MLflow store at ``uri`` once, safely against other processes doing the same.

    For ``sqlite:///`` URIs the first open of the store in this process happens under an exclusive ``flock``
    on ``<db>.lock``: MLflow's SqlAlchemyStore creates its tables, runs the Alembic migrations and inserts
    experiment 0 in its constructor with no lock of its own, so two processes opening a fresh database at once
    race (``table spans already exists``, or a duplicate experiment 0). The store MLflow builds here is the
    one it caches for this URI, so later clients in this process reuse it. Other stores (http, postgres, ...)
    are left to their server or database and are not touched.
    """
    db = sqlite_path(uri)
    if db is None:
        return
    key = str(db)
    if key in _READY:
        return
    with _READY_LOCK:  # threads of one process: one of them takes the file lock, the others wait here
        if key in _READY:
            return
        import fcntl

        from mlflow.tracking._tracking_service.utils import _get_store

        db.parent.mkdir(parents=True, exist_ok=True)
        # The lock file stays: deleting it would let a third process lock a fresh inode while a second
        # still holds the old one. flock is released when the file is closed, even if this process dies.
        with open(f"{db}.lock", "a") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                _get_store(uri)  # builds SqlAlchemyStore: tables, migrations, experiment 0
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
        _READY.add(key)


def ensure_experiment(name: str, project_path: str | Path) -> str:
    """Experiment id for ``name``, creating it with a project-local artifact root if it does not exist.

    Safe when another process creates the same experiment at the same moment (see :func:`experiment_id`).
    """
    import mlflow

    uri = mlflow.get_tracking_uri()
    ensure_store(uri)
    location = None
    # (mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI, so compare with the project default instead.)
    if uri == f"sqlite:///{Path(project_path).resolve() / 'mlflow.db'}":
        location = (Path(project_path).resolve() / "mlartifacts" / name).as_uri()
    return experiment_id(mlflow.MlflowClient(uri), name, location)


def experiment_id(client, name: str, artifact_location: str | None = None) -> str:
    """Id of the experiment ``name`` in ``client``'s store, created if missing.

    Two processes may both find no experiment and both create it; the store's unique name makes one of them
    fail with RESOURCE_ALREADY_EXISTS, and that one reads the winner's experiment instead of failing.
    """
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, ErrorCode

    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    try:
        return client.create_experiment(name, artifact_location=artifact_location)
    except MlflowException as exc:
        if exc.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
            raise
        found = client.get_experiment_by_name(name)
        if found is None:  # created and deleted again in between: not a race this function can settle
            raise
        return found.experiment_id


# Pipeline runs whose MLflow run is being started in a background thread (``pipeline_run.PipelineRun``).
_PENDING: list[Any] = []


def add_pending_run(run: Any) -> None:
    """``run`` (anything with ``wait()``) is being started: :func:`wait_for_pending_run` waits for it."""
    _PENDING.append(run)


def drop_pending_run(run: Any) -> None:
    """``run`` is started (or abandoned); nothing to wait for. Dropping one twice is harmless."""
    with contextlib.suppress(ValueError):
        _PENDING.remove(run)


def wait_for_pending_run() -> None:
    """Wait for the MLflow run the Kedro hook is starting in the background, if any, and make it active in the
    thread that started it; raises that start's error. Free when nothing is pending."""
    for run in list(_PENDING):
        run.wait()


def active_target() -> MlflowTarget | None:
    """The MLflow run active in this process (started by the Kedro hook), as plain strings; else None.
    Waits for the hook's run if it is still being started (:func:`wait_for_pending_run`)."""
    wait_for_pending_run()
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
