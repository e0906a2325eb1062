"""One MLflow run per ``kedro run``: started before the first node, ended when the pipeline ends.

Runs that a killed process left RUNNING are closed first (``stale``). The run lives in the experiment named
after the pipeline(s), carries the typed parameters (flattened, same
names in every run), the resolved config as an artifact, and tags saying what it started from (pipeline, Kedro
environment, git commit, DVC lock digest, Kedro session). Catalog entries whose ``metadata.lstm_lab`` says
``mlflow_artifact: true`` are logged as artifacts when saved; ``mlflow_metrics: <prefix>`` logs the saved
dict's numeric leaves as metrics. Per-epoch losses reach the same run through ``epoch_metrics``.
"""

from __future__ import annotations

import logging
import math
import numbers
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lstm_lab.tracking.provenance import dvc_lock_digest, git_commit
from lstm_lab.tracking.stale import TAG, close_stale_runs, process_tag
from lstm_lab.tracking.store import ensure_experiment, ensure_store, flatten, log_params, tracking_uri

log = logging.getLogger(__name__)


class PipelineRun:
    """The MLflow run of one ``kedro run``. ``configs``: parameters key → typed parameters, in run order."""

    def __init__(self, project: Path, experiment: str, run_name: str, configs: Mapping[str, Any],
                 tags: Mapping[str, str]):
        import mlflow

        # mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI; put the user's value back when the run ends so
        # a second session in the same process (a notebook, a test) resolves its own project's store.
        self._user_uri = os.environ.get("MLFLOW_TRACKING_URI")
        mlflow.set_tracking_uri(tracking_uri(project))
        ensure_store(mlflow.get_tracking_uri())  # two first runs at once must not both create the schema
        close_stale_runs(mlflow.MlflowClient())
        mlflow.set_experiment(experiment_id=ensure_experiment(experiment, project))
        tags = {**tags, TAG: process_tag()}
        self.run = mlflow.start_run(run_name=run_name, tags=tags, nested=mlflow.active_run() is not None)
        self._artifacts: list[tuple[Path, str]] = []  # logged once the run's outputs are committed
        self.scores: dict[str, Any] = {}  # the metric dicts saved in this run, for the summary
        self.tracking_uri = mlflow.get_tracking_uri()
        config = {key: params.model_dump(mode="json") for key, params in configs.items()}
        flat: dict[str, Any] = {}
        for key, section in config.items():
            flat.update(flatten(section, prefix=key if len(config) > 1 else ""))
        log_params(mlflow.MlflowClient(), self.run.info.run_id, flat)
        mlflow.log_dict(config, "config/resolved_parameters.yml")
        log.info("MLflow run %s (%s) in experiment %r at %s", self.run.info.run_id, run_name, experiment,
                 mlflow.get_tracking_uri())

    @classmethod
    def start(cls, project: Path, experiment: str, names: list[str], keys: list[str], configs: Mapping[str, Any],
              run_names: Mapping[str, str], run_params: Mapping[str, Any], env: str) -> PipelineRun:
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
        return cls(project, experiment, " + ".join(run_names.values()) or "+".join(names), configs, tags)

    def dataset_saved(self, name: str, conf: Mapping[str, Any], data: Any) -> None:
        """Log what the catalog entry's ``metadata.lstm_lab`` asks for: metrics now, files when ``end`` finds
        them committed (until then they are this run's staged copies, see ``lstm_lab.staging``)."""
        import mlflow

        meta = (conf.get("metadata") or {}).get("lstm_lab") or {}
        if meta.get("mlflow_metrics") is not None and isinstance(data, dict):
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
        return self.run.info.run_id

    @property
    def experiment_id(self) -> str:
        return self.run.info.experiment_id

    def end(self, status: str = "FINISHED", error: BaseException | str | None = None) -> None:
        """End the run: FINISHED logs the saved files as artifacts first; otherwise ``error`` becomes a tag."""
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
        if self._user_uri is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = self._user_uri
