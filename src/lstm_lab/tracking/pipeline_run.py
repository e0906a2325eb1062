"""One MLflow run per ``kedro run``: started before the first node, ended when the pipeline ends.

Runs that a killed process left RUNNING are closed first (``stale``). The run lives in the experiment named
after the pipeline(s), carries the typed parameters (flattened, same
names in every run), the resolved config as an artifact, and tags saying what it started from (pipeline, Kedro
environment, git commit, DVC lock digest, Kedro session). Catalog entries whose ``metadata.lstm_lab`` says
``mlflow_artifact: true`` are logged as artifacts when saved; ``mlflow_metrics: <prefix>`` logs the saved
dict's numeric leaves as metrics. Per-epoch losses reach the same run through ``epoch_metrics``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import numbers
import os
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lstm_lab.tracking.provenance import dvc_lock_digest, git_commit
from lstm_lab.tracking.stale import TAG, close_stale_runs, process_tag
from lstm_lab.tracking.store import (
    add_pending_run,
    drop_pending_run,
    ensure_experiment,
    ensure_store,
    flatten,
    log_params,
    tracking_uri,
)

log = logging.getLogger(__name__)


class PipelineRun:
    """The MLflow run of one ``kedro run``. ``configs``: parameters key → typed parameters, in run order.

    ``background=True`` (the hooks' way): importing MLflow, opening its store, closing stale runs and creating
    the run (tags, parameters, resolved config) happen in a thread, so that the first nodes need not wait for
    them (~2-3 s of start-up). :meth:`wait` joins that thread: it makes the run the active MLflow run of the
    thread that started it (where the nodes run) and re-raises, unchanged, any error of the start. Whatever
    needs the run calls it first: ``run_id``, metrics of a saved dataset, :meth:`end`, and
    ``tracking.active_target()`` (via :func:`lstm_lab.tracking.store.wait_for_pending_run`). The hooks also call
    it before every node that may use MLflow (see ``lstm_lab.hooks``).
    """

    def __init__(self, project: Path, experiment: str, run_name: str, configs: Mapping[str, Any],
                 tags: Mapping[str, str], background: bool = False):
        self.scores: dict[str, Any] = {}  # the metric dicts saved in this run, for the summary
        self._artifacts: list[tuple[Path, str]] = []  # logged once the run's outputs are committed
        self.run = None  # mlflow's ActiveRun, once this run is the active run of the thread that started it
        self._created: Any = None  # the mlflow Run, once created
        self._error: BaseException | None = None  # what stopped the start
        self._owner = threading.current_thread()
        # mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI; put the user's value back when the run ends so
        # a second session in the same process (a notebook, a test) resolves its own project's store. Exported
        # here already (it is what set_tracking_uri would export): a node or subprocess started before the
        # background start has set it resolves the same store.
        self._user_uri = os.environ.get("MLFLOW_TRACKING_URI")
        self.tracking_uri = tracking_uri(project)
        os.environ["MLFLOW_TRACKING_URI"] = self.tracking_uri
        parent = _active_run_id()  # a run active in this thread (a notebook's): this one becomes its child
        args = (project, experiment, run_name, configs, tags, parent)
        self._thread: threading.Thread | None = None
        if not background:
            self._create(*args)
            self.wait()
            return
        # A daemon: an interpreter that exits (an error outside the hooks) does not wait for it; a run left
        # RUNNING that way is closed by the next run (``stale``).
        self._thread = threading.Thread(target=self._create_or_keep_error, args=args, name="mlflow-run-start",
                                        daemon=True)
        self._thread.start()
        add_pending_run(self)

    def _create_or_keep_error(self, *args) -> None:
        try:
            self._create(*args)
        except BaseException as error:  # noqa: BLE001 - raised again by wait(), in the thread that needs the run
            self._error = error

    def _create(self, project: Path, experiment: str, run_name: str, configs: Mapping[str, Any],
                tags: Mapping[str, str], parent: str | None) -> None:
        """Open the store and create the run, through an explicit client (the fluent API's active run is per
        thread: :meth:`wait` makes it active where the nodes run). Same tags as ``mlflow.start_run`` gives."""
        import mlflow
        from mlflow.tracking.context.registry import resolve_tags
        from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

        mlflow.set_tracking_uri(self.tracking_uri)
        self.tracking_uri = mlflow.get_tracking_uri()
        ensure_store(self.tracking_uri)  # two first runs at once must not both create the schema
        client = mlflow.MlflowClient(self.tracking_uri)
        close_stale_runs(client)
        experiment_id = ensure_experiment(experiment, project)
        mlflow.set_experiment(experiment_id=experiment_id)
        tags = {**tags, TAG: process_tag(), MLFLOW_RUN_NAME: run_name,
                **({MLFLOW_PARENT_RUN_ID: parent} if parent else {})}
        created = client.create_run(experiment_id, tags=resolve_tags(tags, ignore=_not_here()), run_name=run_name)
        run_id = created.info.run_id
        try:
            config = {key: params.model_dump(mode="json") for key, params in configs.items()}
            flat: dict[str, Any] = {}
            for key, section in config.items():
                flat.update(flatten(section, prefix=key if len(config) > 1 else ""))
            log_params(client, run_id, flat)
            client.log_dict(run_id, config, "config/resolved_parameters.yml")
        except BaseException as error:  # the run exists but is incomplete: not left RUNNING
            with contextlib.suppress(Exception):
                client.set_tag(run_id, "error", f"{type(error).__name__}: {error}"[:5000])
                client.set_terminated(run_id, status="FAILED")
            raise
        self._created = created
        log.info("MLflow run %s (%s) in experiment %r at %s", run_id, run_name, experiment, self.tracking_uri)

    def wait(self) -> None:
        """Wait for the start; in the thread that started the run, make it that thread's active MLflow run.
        Raises the start's error (every time it is called)."""
        thread = self._thread
        if thread is not None:
            thread.join()
            self._thread = None
        if self._error is not None:
            raise self._error
        if self.run is None and threading.current_thread() is self._owner:
            import mlflow

            self.run = mlflow.start_run(run_id=self._created.info.run_id, nested=mlflow.active_run() is not None)
        if self.run is not None:
            drop_pending_run(self)  # active where it is needed: active_target() needs no wait

    @classmethod
    def start(cls, project: Path, experiment: str, names: list[str], keys: list[str], configs: Mapping[str, Any],
              run_names: Mapping[str, str], run_params: Mapping[str, Any], env: str,
              background: bool = False) -> PipelineRun:
        """``names``: the pipelines run, ``keys`` their parameters keys (one DVC lock digest each);
        ``run_names``: what each parameters section calls itself in the run's name."""
        tags = {
            "pipeline": ",".join(names),
            "kedro_env": env,
            "git_commit": git_commit(project),
            "dvc_lock_digest": ",".join(dvc_lock_digest(project, k) for k in keys),
            "kedro_session_id": str(run_params.get("session_id") or run_params.get("run_id") or ""),
            "kedro_tags": ",".join(run_params.get("tags") or []),
        }
        return cls(project, experiment, " + ".join(run_names.values()) or "+".join(names), configs, tags,
                   background=background)

    def dataset_saved(self, name: str, conf: Mapping[str, Any], data: Any) -> None:
        """Log what the catalog entry's ``metadata.lstm_lab`` asks for: metrics now, files when ``end`` finds
        them committed (until then they are this run's staged copies, see ``lstm_lab.staging``)."""
        meta = (conf.get("metadata") or {}).get("lstm_lab") or {}
        if meta.get("mlflow_metrics") is not None and isinstance(data, dict):
            self.wait()
            import mlflow

            prefix = str(meta["mlflow_metrics"])
            metrics = {
                f"{prefix}{key.replace('.', '_')}": float(value)
                for key, value in flatten(data).items()
                if isinstance(value, numbers.Real) and math.isfinite(float(value))
            }
            mlflow.log_metrics(metrics)
            self.scores[name] = data
        if meta.get("mlflow_artifact") and conf.get("filepath"):
            path = Path(conf["filepath"])
            path = path if path.is_absolute() else Path.cwd() / path
            self._artifacts.append((path, meta.get("artifact_path", "outputs")))

    @property
    def run_id(self) -> str:
        self.wait()
        return self._created.info.run_id

    @property
    def experiment_id(self) -> str:
        self.wait()
        return self._created.info.experiment_id

    def end(self, status: str = "FINISHED", error: BaseException | str | None = None) -> None:
        """End the run: FINISHED logs the saved files as artifacts first; otherwise ``error`` becomes a tag.
        A run whose start failed has nothing to end: FINISHED raises the start's error, FAILED and KILLED (which
        already report an error of their own) log it."""
        try:
            self.wait()
        except BaseException as start_error:
            self._forget()
            if status == "FINISHED" or not isinstance(start_error, Exception):
                raise
            log.warning("the MLflow run of this pipeline run could not be started (%s: %s); nothing to mark %s",
                        type(start_error).__name__, start_error, status)
            return
        try:
            self._end(status, error)
        finally:
            self._forget()

    def _end(self, status: str, error: BaseException | str | None) -> None:
        import mlflow

        if status == "FINISHED":
            for path, artifact_path in self._artifacts:
                if path.is_file():
                    mlflow.log_artifact(str(path), artifact_path=artifact_path)
        if error is not None:
            text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
            mlflow.set_tag("error", text[:5000])
        try:
            mlflow.end_run(status=status)
        except mlflow.exceptions.MlflowException:
            # An interrupt can land inside an SQLite write of this process (an epoch's metrics), leaving its
            # connection in a transaction that holds the database lock: close the pooled connections, retry.
            from lstm_lab.tracking.epoch_metrics import _forget_inherited_connections

            _forget_inherited_connections(close=True)
            mlflow.end_run(status=status)

    def _forget(self) -> None:
        """No longer pending; MLFLOW_TRACKING_URI as the user had it."""
        drop_pending_run(self)
        if self._user_uri is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = self._user_uri


# MLflow's run context providers that only apply in a notebook or on Databricks (module, class).
_NOTEBOOK_PROVIDERS = [
    ("jupyter_notebook_context", "JupyterNotebookRunContext"),
    ("databricks_notebook_context", "DatabricksNotebookRunContext"),
    ("databricks_job_context", "DatabricksJobRunContext"),
    ("databricks_cluster_context", "DatabricksClusterRunContext"),
    ("databricks_command_context", "DatabricksCommandRunContext"),
    ("databricks_repo_context", "DatabricksRepoRunContext"),
]


def _not_here() -> list[type]:
    """MLflow's run context providers that cannot apply to this process, skipped when resolving the run's tags.

    The Jupyter and Databricks ones ask IPython whether a notebook kernel runs this process (and for Databricks'
    dbutils), and importing IPython for that takes ~0.5 s. A process that has not imported IPython is not running
    in an IPython kernel or shell (they import it first), and the Databricks ones need the Databricks runtime
    (environment variables or a version file, which MLflow checks cheaply): their answer is known, no tags."""
    if "IPython" in sys.modules:
        return []
    import importlib

    try:
        from mlflow.utils.databricks_utils import is_in_databricks_runtime

        if is_in_databricks_runtime():
            return []
    except ImportError:  # another MLflow version: ask every provider, as start_run does
        return []

    skipped = []
    for module, name in _NOTEBOOK_PROVIDERS:
        try:
            skipped.append(getattr(importlib.import_module(f"mlflow.tracking.context.{module}"), name))
        except (ImportError, AttributeError):  # another MLflow version: that provider is asked, as start_run does
            continue
    return skipped


def _active_run_id() -> str | None:
    """The MLflow run active in this thread, without importing MLflow (not imported: none can be active)."""
    mlflow = sys.modules.get("mlflow")
    run = mlflow.active_run() if mlflow is not None and hasattr(mlflow, "active_run") else None
    return run.info.run_id if run is not None else None
