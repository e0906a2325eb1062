"""Registered pipelines: ``kedro run --pipeline=<name>`` (or ``--pipelines=<name>[,<name>]``).

Every package under ``lstm_lab/pipelines`` whose ``pipeline`` module has ``create_pipeline()`` is registered
under its folder name, except ``tune``: that package is a factory building one sweep pipeline per tunable
pipeline (``tune_forecast``, ``tune_sentiment``, ...). ``kedro run`` alone runs forecast.
"""

import importlib
import importlib.resources

from kedro.pipeline import Pipeline

SWEEP_FACTORY = "tune"


def register_pipelines() -> dict[str, Pipeline]:
    pipelines: dict[str, Pipeline] = {}
    for entry in sorted(importlib.resources.files("lstm_lab.pipelines").iterdir(), key=lambda p: p.name):
        name = entry.name
        if name.startswith((".", "_")) or name == SWEEP_FACTORY or not entry.joinpath("pipeline.py").is_file():
            continue
        # An import error here is a bug in that pipeline: let it surface instead of hiding the pipeline.
        pipelines[name] = importlib.import_module(f"lstm_lab.pipelines.{name}.pipeline").create_pipeline()
    if importlib.resources.files("lstm_lab.pipelines").joinpath(SWEEP_FACTORY, "pipeline.py").is_file():
        from lstm_lab.pipelines.tune.pipeline import create_sweep_pipelines

        pipelines.update(create_sweep_pipelines(pipelines))
    pipelines["__default__"] = pipelines["forecast"]
    return pipelines
