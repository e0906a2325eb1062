"""Nodes of ``predict_forecast``: the registered forecaster on the project's own cleaned series.

    forecast_clean (what ``kedro run --pipeline=forecast`` left) → predict → predict_forecast_output

The model comes from MLflow (``predict_forecast.model_uri``, default ``models:/forecast@champion``), not from
data/06_models: this is what any consumer of the registry gets, so nothing is retrained.
"""

from __future__ import annotations

import logging

import pandas as pd

from lstm_lab.serving.batch import load_model
from lstm_lab.serving.config import PredictForecastParams

log = logging.getLogger(__name__)


def predict(history: pd.DataFrame, p: PredictForecastParams) -> pd.DataFrame:
    """The H steps after the end of ``history`` (of each series, with an ``id`` column)."""
    out = load_model(p, "predict_forecast").predict(history)
    log.info("forecast: %d row(s), %s .. %s", len(out), out["time"].min(), out["time"].max())
    return out
