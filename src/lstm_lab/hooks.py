"""Project hooks: parameters validated before anything runs, and one MLflow run per ``kedro run``.

- ``before_pipeline_run``: validate ``params:<pipeline>`` of every pipeline being run (a bad parameter fails
  here, before any dataset is written), then start the run in the experiment named after the pipeline, with
  flattened parameters, the resolved config and tags (pipeline, kedro env, git commit).
- ``after_dataset_saved``: catalog entries whose ``metadata.lstm_lab`` says ``mlflow_artifact: true`` are logged
  as artifacts; ``mlflow_metrics: <prefix>`` logs the saved dict's numeric leaves as metrics.
- ``after_pipeline_run`` ends the run FINISHED; ``on_pipeline_error`` ends it FAILED with the error as a tag.

Per-epoch losses are added to the same run by the training callback, with the run id given explicitly.
"""

from __future__ import annotations

import logging
import math
import os
import numbers
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl

from lstm_lab import tracking
from lstm_lab.params import params_key, schema_for, validate
from lstm_lab.training.distributed import Platform, plan_training

log = logging.getLogger(__name__)


def _pipeline_names(run_params: dict[str, Any]) -> list[str]:
    names = run_params.get("pipeline_names") or []
    if not names and run_params.get("pipeline_name"):
        names = [run_params["pipeline_name"]]
    return list(names) or ["__default__"]


def _with_swept_pipelines(names: list[str]) -> list[str]:
    """``tune_forecast`` also runs forecast's data nodes with ``params:forecast``: validate and log both."""
    out: list[str] = []
    for name in names:
        key = params_key(name)
        if key.startswith("tune_") and key[len("tune_"):] not in out:
            out.append(key[len("tune_"):])
        if name not in out:
            out.append(name)
    return out


class MlflowTrackingHooks:
    def __init__(self):
        self._project_path: Path | None = None
        self._env: str | None = None
        self._params: dict[str, Any] = {}
        self._catalog_conf: dict[str, Any] = {}
        self._catalog = None
        self._run = None
        self._user_uri: str | None = None

    @hook_impl
    def after_context_created(self, context) -> None:
        self._project_path = Path(context.project_path)
        self._env = context.env
        self._params = context.params

    @hook_impl
    def after_catalog_created(self, catalog, conf_catalog) -> None:
        self._catalog_conf = conf_catalog or {}
        self._catalog = catalog

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline, catalog) -> None:
        import mlflow

        names = _pipeline_names(run_params)
        config: dict[str, Any] = {}
        experiment = "+".join(sorted({params_key(n) for n in names if schema_for(n) is not None})) or "+".join(names)
        for name in _with_swept_pipelines(names):
            if schema_for(name) is None:
                continue
            key = params_key(name)
            validated = validate(name, self._params.get(key))
            training = getattr(validated, "training", None)
            if training is not None:  # a device/strategy combination that cannot work fails here, not mid-run
                plan_training(training.trainer, Platform.detect(training.trainer), f"{key}.training.trainer")
            config[key] = validated.model_dump(mode="json")

        project = self._project_path or Path(run_params.get("project_path", "."))
        # mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI; put the user's value back when the run ends so
        # a second session in the same process (a notebook, a test) resolves its own project's store.
        self._user_uri = os.environ.get("MLFLOW_TRACKING_URI")
        mlflow.set_tracking_uri(tracking.tracking_uri(project))
        mlflow.set_experiment(experiment_id=tracking.ensure_experiment(experiment, project))
        tags = {
            "pipeline": ",".join(names),
            "kedro_env": str(run_params.get("env") or self._env or _default_env()),
            "git_commit": tracking.git_commit(project),
            "dvc_lock_digest": ",".join(tracking.dvc_lock_digest(project, params_key(n)) for n in names),
            "kedro_session_id": str(run_params.get("session_id") or run_params.get("run_id") or ""),
            "kedro_tags": ",".join(run_params.get("tags") or []),
        }
        run_name = _run_name(names, config)
        self._run = mlflow.start_run(run_name=run_name, tags=tags, nested=mlflow.active_run() is not None)
        flat = {}
        for key, section in config.items():
            flat.update(tracking.flatten(section, prefix=key if len(config) > 1 else ""))
        for start in range(0, len(flat), 90):  # MLflow takes at most 100 params per batch
            mlflow.log_params(dict(list(flat.items())[start : start + 90]))
        mlflow.log_dict(config, "config/resolved_parameters.yml")
        log.info("MLflow run %s (%s) in experiment %r at %s", self._run.info.run_id, run_name, experiment,
                 mlflow.get_tracking_uri())

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, data: Any, node) -> None:
        import mlflow

        if self._run is None:
            return
        conf = self._catalog_conf.get(dataset_name) or self._resolved_conf(dataset_name)
        meta = (conf.get("metadata") or {}).get("lstm_lab") or {}
        if meta.get("mlflow_metrics") is not None and isinstance(data, dict):
            prefix = str(meta["mlflow_metrics"])
            metrics = {
                f"{prefix}{key.replace('.', '_')}": float(value)
                for key, value in tracking.flatten(data).items()
                if isinstance(value, numbers.Real) and math.isfinite(float(value))
            }
            mlflow.log_metrics(metrics)
        if meta.get("mlflow_artifact") and conf.get("filepath"):
            path = Path(conf["filepath"])
            path = path if path.is_absolute() else Path.cwd() / path
            if path.is_file():
                mlflow.log_artifact(str(path), artifact_path=meta.get("artifact_path", "outputs"))

    def _resolved_conf(self, dataset_name: str) -> dict[str, Any]:
        """The config of a dataset declared by a catalog pattern (``"tune_{pipeline}_results"``)."""
        resolver = getattr(self._catalog, "config_resolver", None)
        try:
            return dict(resolver.resolve_pattern(dataset_name) or {}) if resolver is not None else {}
        except Exception:  # noqa: BLE001 - a dataset without a pattern simply has no metadata
            return {}

    @hook_impl
    def after_pipeline_run(self, run_params, run_result, pipeline, catalog) -> None:
        import mlflow

        if self._run is not None:
            mlflow.end_run(status="FINISHED")
            self._finish()

    @hook_impl
    def on_pipeline_error(self, error: Exception, run_params, pipeline, catalog) -> None:
        import mlflow

        if self._run is not None:
            mlflow.set_tag("error", f"{type(error).__name__}: {error}"[:5000])
            mlflow.end_run(status="FAILED")
            self._finish()

    def _finish(self) -> None:
        self._run = None
        if self._user_uri is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = self._user_uri


def _default_env() -> str:
    from kedro.framework.project import settings

    return str(settings.CONFIG_LOADER_ARGS.get("default_run_env", "local"))


def _run_name(names: list[str], config: dict[str, Any]) -> str:
    """Pipeline plus the parameters that tell runs apart in a list.

    ``forecast L=104 H=13 lstm[50] lr=0.002``, ``sentiment bilstm[128] attention lr=0.001``,
    ``tune_forecast asha random x10 (forecast L=104 H=13 lstm[50] lr=0.002)``.
    """
    parts = {}
    for key, section in config.items():
        if key.startswith("tune_"):
            bits = [key, section["scheduler"]["type"], section["search"]["algorithm"], f"x{section['num_samples']}"]
        else:
            bits = [key]
            window = section.get("window") or {}
            if "lookback" in window:
                bits.append(f"L={window['lookback']} H={window['horizon']}")
            if "length" in window:  # textgen: characters per training window
                bits.append(f"T={window['length']}")
            model = section.get("model") or {}
            if model:
                bi = "bi" if model.get("bidirectional") else ""
                bits.append(f"{bi}lstm{model['hidden_sizes']}".replace(" ", ""))
                if model.get("variant", "NP") != "NP":
                    bits.append(model["variant"])
                if model.get("pooling", "last") != "last":
                    bits.append(model["pooling"])
            training = section.get("training") or {}
            if "learning_rate" in training:
                bits.append(f"lr={training['learning_rate']:g}")
        parts[key] = " ".join(bits)
    sweeps = [k for k in parts if k.startswith("tune_")]
    for sweep in sweeps:  # the swept pipeline's own settings read as the sweep's base
        base = sweep[len("tune_"):]
        if base in parts:
            parts[sweep] += f" ({parts.pop(base)})"
    return " + ".join(parts.values()) or "+".join(names)
