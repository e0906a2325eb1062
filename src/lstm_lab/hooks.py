"""Project hooks: one MLflow run per ``kedro run`` (``tracking.pipeline_run``), outputs committed together.

The parameters arrive typed: the project context (``lstm_lab.context``) validated them once while Kedro built
the run's catalog. ``before_pipeline_run`` starts the MLflow run with them and starts staging the run's files
(``lstm_lab.staging``). The MLflow start (importing MLflow, its store, the run: ~2-3 s) goes on in a background
thread while the data preparation nodes run (tag ``prepare``): every other node, a dataset saved with metrics,
the training's ``tracking.active_target()`` and the end of the run wait for it first, and an error of that
start is raised there, unchanged (``PipelineRun.wait``). The other hooks feed and end both: metrics as datasets
are saved; at the end the staged files replace the previous ones and the run is FINISHED (its files logged as
artifacts); when a node raises, the staged files are dropped and the run is FAILED with the error as a tag. An
interrupt (Ctrl+C, SIGTERM) reaches the command line as ``RunInterrupted``, which calls
:func:`abort_current_run`: files dropped, run KILLED (after waiting for a start still in progress).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl

from lstm_lab import staging
from lstm_lab.interrupts import raise_if_swallowed
from lstm_lab.params import parameter_keys, params_key, swept_task


def _pipeline_names(run_params: dict[str, Any]) -> list[str]:
    names = run_params.get("pipeline_names") or []
    if not names and run_params.get("pipeline_name"):
        names = [run_params["pipeline_name"]]
    return list(names) or ["__default__"]


def run_name(configs: dict[str, Any], project: Path | None = None, tags: list[str] | None = None) -> dict[str, str]:
    """Each section's name in the run list: the task's summary (``forecast L=104 H=13 lstm[50] lr=0.002``), then
    up to three parameters that differ from ``conf/base`` (``max_epochs=2``), then ``[prepare]`` for a run of
    some tags only; a sweep reads ``tune_forecast asha random x10 (forecast ...)``."""
    from lstm_lab.training.task import get_task

    names = {}
    for key, params in configs.items():
        if hasattr(params, "describe"):  # a sweep's or batch scoring's settings name themselves
            names[key] = params.describe(key)
            continue
        name = get_task(key).run_name(params)
        changed = [f"{path.rsplit('.', 1)[-1]}={value}" for path, value in _changed(params, key, project)
                   if path not in IN_TASK_NAME][:3]
        names[key] = " ".join([name, *changed])
    for key in [k for k in names if swept_task(k) in names]:
        names[key] += f" ({names.pop(swept_task(key))})"
    if tags:
        names = {k: f"{v} [{','.join(tags)}]" for k, v in names.items()}
    return names


# What Task.run_name already shows (L=, H=, T=, lstm[...], lr=, the variant and pooling).
IN_TASK_NAME = {"window.lookback", "window.horizon", "window.length", "model.hidden_sizes", "model.bidirectional",
                "model.variant", "model.pooling", "training.learning_rate"}


def _changed(params, key: str, project: Path | None) -> list[tuple[str, Any]]:
    """``(dotted path, value)`` of the parameters that differ from the project's ``conf/base`` section."""
    import yaml

    from lstm_lab.tracking import flatten

    path = (project or Path.cwd()) / "conf" / "base" / f"parameters_{key}.yml"
    try:
        base = type(params).model_validate(yaml.safe_load(path.read_text(encoding="utf-8"))[key])
    except Exception:  # noqa: BLE001 - no base file, or one that does not validate: nothing to compare with
        return []
    ours, theirs = flatten(params.model_dump(mode="json")), flatten(base.model_dump(mode="json"))
    return [(p, v) for p, v in ours.items() if theirs.get(p) != v]


progress = logging.getLogger("lstm_lab.progress")  # one line per node (conf/logging.yml: short format)

_CURRENT: ProjectHooks | None = None  # the hooks of the run in progress in this process, for abort_current_run


def abort_current_run(reason: str) -> dict[str, Any] | None:
    """Drop the staged files of the run in progress and end its MLflow run KILLED with ``reason`` as its error.
    Returns what happened (run id, node, removed files), or None when no run is in progress."""
    return _CURRENT.abort(reason) if _CURRENT is not None else None


class ProjectHooks:
    def __init__(self):
        self._context = None
        self._catalog_conf: dict[str, Any] = {}
        self._catalog = None
        self._run = None
        self._node: str | None = None
        self._folders: list[Path] = []
        self._nodes_total, self._nodes_started, self._started = 0, 0, 0.0
        self._names = ""

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
        global _CURRENT
        _flush_subnormals_when_torch_loads(configs)  # before any node: the first torch op must find it set
        names_by_key = run_name(configs, project, list(run_params.get("tags") or []))
        self._run = PipelineRun.start(project, experiment, names, keys, configs, names_by_key, run_params, env,
                                      background=True)  # waited for before the first node that may use it
        try:
            self._folders = self._output_folders(project)
            staging.clean_stale(self._folders)  # left by a killed run
            staging.begin()
        except Exception as error:
            self._run.end("FAILED", error)  # Kedro calls no other hook after this one fails: no run left RUNNING
            self._run = None
            raise
        _CURRENT = self
        self._project, self._names = project, ",".join(names)
        self._nodes_total, self._nodes_started, self._started = len(pipeline.nodes), 0, time.monotonic()

    def _output_folders(self, project: Path) -> list[Path]:
        """Where this run's datasets write: ``data/`` and the folder of every catalog entry with a filepath."""
        folders = {project / "data"}
        for conf in self._catalog_conf.values():
            path = conf.get("filepath") if isinstance(conf, dict) else None
            if path and "{" not in str(Path(path).parent):
                folder = Path(path).parent
                folders.add(folder if folder.is_absolute() else project / folder)
        return sorted(folders)

    @hook_impl
    def before_node_run(self, node) -> None:
        if self._run is not None and not RUN_NOT_NEEDED_TAGS & set(node.tags):
            self._run.wait()  # MLflow's start, in the background until now; raises its error, if any
        self._node = node.name
        raise_if_swallowed()  # a Ctrl+C / SIGTERM whose exception a finaliser swallowed: no further node starts
        self._nodes_started += 1
        progress.info("Running node: %s (%d/%d)", node.name, self._nodes_started, self._nodes_total)

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, data: Any, node) -> None:
        if self._run is not None:
            conf = self._catalog_conf.get(dataset_name) or self._resolved_conf(dataset_name)
            self._run.dataset_saved(dataset_name, conf, data)

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
            try:
                self._run.wait()  # a run of `prepare` nodes only may not have needed it yet
            except Exception:
                staging.discard(self._folders)  # outputs kept only with their MLflow run, as when the start was first
                self._finish("FAILED")
                raise
        outputs = staging.commit(self._folders)
        run = self._run
        self._finish("FINISHED")
        if run is not None:
            from lstm_lab.run_summary import format_summary

            print("\n".join(format_summary(self._names, time.monotonic() - self._started, run.scores, outputs,
                                          self._project, run.run_id, run.experiment_id, run.tracking_uri)),
                  flush=True)

    @hook_impl
    def on_pipeline_error(self, error: Exception, run_params, pipeline, catalog) -> None:
        staging.discard(self._folders)
        self._finish("FAILED", error)

    def abort(self, reason: str) -> dict[str, Any]:
        removed = staging.discard(self._folders)
        try:
            run_id = self._run.run_id if self._run is not None else None  # waits for a start in progress
        except Exception:  # noqa: BLE001 - its start failed: no run to mark (_finish logs why)
            run_id = None
        done = {"run_id": run_id, "node": self._node, "discarded": removed}
        self._finish("KILLED", reason)
        return done

    def _finish(self, status: str, error=None) -> None:
        global _CURRENT
        from lstm_lab.training.runtime import uninstall_flush_on_import

        uninstall_flush_on_import()  # a run that never imported torch leaves no import hook armed
        if self._run is not None:
            self._run.end(status, error)
        self._run, self._node, _CURRENT = None, None, None


# Nodes with these tags run while the MLflow run is still being started (PipelineRun's background start): they
# must not use MLflow (tests/test_hooks_background_run.py checks the project's). Every other node waits for it.
RUN_NOT_NEEDED_TAGS = frozenset({"prepare"})


def _flush_subnormals_when_torch_loads(configs: dict[str, Any]) -> None:
    """A run that trains with ``training.flush_denormal`` (the default) flushes subnormal floats from the moment
    torch is imported, by whichever node: torch's intra-op threads copy the flag only when they start
    (``training/runtime.py``). Importing torch here instead would delay the first node by seconds."""
    if any(getattr(getattr(params, "training", None), "flush_denormal", False) for params in configs.values()):
        from lstm_lab.training.runtime import flush_denormal_on_import

        flush_denormal_on_import()


def _default_env() -> str:
    from kedro.framework.project import settings

    return str(settings.CONFIG_LOADER_ARGS.get("default_run_env", "local"))
