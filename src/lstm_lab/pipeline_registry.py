"""Registered pipelines: ``kedro run --pipeline=<name>`` (or ``--pipelines=<name>[,<name>]``)."""

from kedro.pipeline import Pipeline

from lstm_lab.pipelines.forecast.pipeline import create_pipeline as forecast


def register_pipelines() -> dict[str, Pipeline]:
    pipelines = {"forecast": forecast()}
    pipelines["__default__"] = pipelines["forecast"]
    return pipelines
