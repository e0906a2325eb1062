"""Project hooks: one MLflow run per ``kedro run`` (``tracking.pipeline_run``).

The parameters arrive typed: the project context (``lstm_lab.context``) validated them once while Kedro built
the run's catalog. ``before_pipeline_run`` starts the run with them; the other hooks feed and end it: artifacts
and metrics as datasets are saved, FINISHED at the end, FAILED with the error as a tag when a node raises.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl

from lstm_lab.params import parameter_keys, params_key, swept_task


def _pipeline_names(run_params: dict[str, Any]) -> list[str]:
    names = run_params.get("pipeline_names") or []
    if not names and run_params.get("pipeline_name"):
        names = [run_params["pipeline_name"]]
    return list(names) or ["__default__"]


def run_name(configs: dict[str, Any]) -> dict[str, str]:
    """Each section's name in the run list; a sweep reads ``tune_forecast asha random x10 (forecast ...)``."""
    from lstm_lab.training.task import get_task

    names = {}
    for key, params in configs.items():
        base = swept_task(key)
        names[key] = params.describe(key) if base is not None else get_task(key).run_name(params)
    for key in [k for k in names if swept_task(k) in names]:
        names[key] += f" ({names.pop(swept_task(key))})"
    return names


class ProjectHooks:
    def __init__(self):
        self._context = None
        self._catalog_conf: dict[str, Any] = {}
        self._catalog = None
        self._run = None

    @hook_impl
    def after_context_created(self, context) -> None:
        self._context = context  # its params are read when the run starts, validated for that run's pipelines

    @hook_impl
    def after_catalog_created(self, catalog, conf_catalog) -> None:
        self._catalog_conf = conf_catalog or {}
        self._catalog = catalog

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline, catalog) -> None:
        from lstm_lab.tracking.pipeline_run import PipelineRun

        names = _pipeline_names(run_params)
        params = self._context.params if self._context is not None else {}
        configs = {key: params[key] for key in parameter_keys(names) if key in params}
        project = Path(self._context.project_path) if self._context is not None else \
            Path(run_params.get("project_path", "."))
        env = str(run_params.get("env") or getattr(self._context, "env", None) or _default_env())
        keys = [params_key(n) for n in names]
        experiment = "+".join(sorted({k for k in keys if k in configs})) or "+".join(names)
        self._run = PipelineRun.start(project, experiment, names, keys, configs, run_name(configs), run_params, env)

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, data: Any, node) -> None:
        if self._run is not None:
            self._run.dataset_saved(self._catalog_conf.get(dataset_name) or self._resolved_conf(dataset_name), data)

    def _resolved_conf(self, dataset_name: str) -> dict[str, Any]:
        """The config of a dataset declared by a catalog pattern (``"tune_{name}_results"``)."""
        resolver = getattr(self._catalog, "config_resolver", None)
        try:
            return dict(resolver.resolve_pattern(dataset_name) or {}) if resolver is not None else {}
        except Exception:  # noqa: BLE001 - a dataset without a pattern simply has no metadata
            return {}

    @hook_impl
    def after_pipeline_run(self, run_params, run_result, pipeline, catalog) -> None:
        if self._run is not None:
            self._run.end("FINISHED")
            self._run = None

    @hook_impl
    def on_pipeline_error(self, error: Exception, run_params, pipeline, catalog) -> None:
        if self._run is not None:
            self._run.end("FAILED", error)
            self._run = None


def _default_env() -> str:
    from kedro.framework.project import settings

    return str(settings.CONFIG_LOADER_ARGS.get("default_run_env", "local"))
