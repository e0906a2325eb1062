"""Nodes of the forecast pipeline: catalog data + the typed ``params:forecast`` → library calls.

prepare:  forecast_raw → clean_series → forecast_clean → split_series → forecast_split
                                                        └→ fit_scaler  → forecast_scaler
train:    (clean, split, scaler) → training_data → forecast_training_data (memory)
          → train_forecaster → forecast_model (best checkpoint), forecast_history
evaluate: (model, clean, split, scaler) → evaluate_forecaster → forecast_metrics, forecast_predictions → plots
          (model, metrics, clean) → register_forecast_model → the pyfunc model in the MLflow run, registered as
          `forecast` (champion or challenger by forecast.serving); writes no file
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from lstm_lab.data.timeseries import StandardScaler, clean_series, scaled_inputs, split_bounds
from lstm_lab.training.forecast.params import ForecastParams
from lstm_lab.training.forecast.task import TASK

log = logging.getLogger(__name__)


def _columns(p: ForecastParams) -> list[str]:
    return [*p.data.target_columns, *p.data.covariate_columns]


# ---------------------------------------------------------------------------------------------------- prepare
def clean(raw: pd.DataFrame, p: ForecastParams) -> pd.DataFrame:
    d = p.data
    frame = clean_series(raw, time_column=d.time_column, value_columns=_columns(p), frequency=d.frequency,
                         max_gap=d.max_gap, source="forecast_raw")
    log.info("cleaned series: %d rows at frequency %s, %s .. %s", len(frame), frame.index.freqstr,
             frame.index[0], frame.index[-1])
    return frame.reset_index()  # time as a column: parquet-friendly and explicit


def split_series(clean_frame: pd.DataFrame, p: ForecastParams) -> dict[str, int]:
    from lstm_lab.data.windowing import check_enough_windows  # torch: imported when a node runs, not at start-up

    index = pd.DatetimeIndex(clean_frame[p.data.time_column])
    bounds = split_bounds(index, fractions=p.split.fractions, rows=p.split.rows, times=p.split.times)
    for split in ("train", "val", "test"):
        check_enough_windows(bounds.span(split), p.window.lookback, p.window.horizon, split, len(index))
    log.info("split rows: %s", bounds.as_dict())
    return bounds.as_dict()


def fit_scaler(clean_frame: pd.DataFrame, split: dict[str, int], p: ForecastParams) -> dict[str, Any]:
    return StandardScaler.fit(clean_frame[_columns(p)], split["train_end"]).as_dict()


# ------------------------------------------------------------------------------------------------------ train
def training_data(clean_frame: pd.DataFrame, split: dict[str, int], scaler: dict[str, Any],
                  p: ForecastParams) -> dict[str, Any]:
    """What the forecast task trains on (in memory, not saved); also what ``tune_forecast`` hands to trials."""
    inputs = scaled_inputs(clean_frame, StandardScaler.from_dict(scaler), _columns(p))  # (N, F), targets first
    targets = inputs[:, : len(p.data.target_columns)].copy()  # (N, C)
    return {"inputs": inputs, "targets": targets, "bounds": dict(split), "scaler": scaler}


def train_forecaster(data: dict[str, Any], p: ForecastParams) -> tuple[dict[str, Any], pd.DataFrame]:
    from lstm_lab.tracking import active_target
    from lstm_lab.training.entry import run_training

    result = run_training(TASK, p, data, tracking=active_target())
    return result.checkpoint, pd.DataFrame(result.history)


# --------------------------------------------------------------------------------------------------- evaluate
def evaluate_forecaster(checkpoint: dict[str, Any], clean_frame: pd.DataFrame, split: dict[str, int],
                        scaler: dict[str, Any], p: ForecastParams) -> tuple[dict[str, Any], pd.DataFrame]:
    from lstm_lab.evaluation.forecast import evaluate_test_windows

    model = TASK.from_checkpoint(checkpoint)
    return evaluate_test_windows(
        model.net, clean_frame, split, StandardScaler.from_dict(scaler),
        targets=list(p.data.target_columns), covariates=list(p.data.covariate_columns),
        time_column=p.data.time_column, lookback=p.window.lookback, horizon=p.window.horizon,
        seasonal_period=p.evaluation.seasonal_period,
    )


def plot_learning_curves(history: pd.DataFrame):
    from lstm_lab.evaluation import plots

    return plots.learning_curves(history, "forecast: learning curves")


def plot_forecast(predictions: pd.DataFrame, p: ForecastParams):
    from lstm_lab.evaluation import plots

    return plots.forecast_vs_actual(predictions, p.data.target_columns[0], p.window.horizon)


def log_serving_model(checkpoint: dict[str, Any], metrics: dict[str, Any], clean_frame: pd.DataFrame,
                      p: ForecastParams) -> None:
    """The pyfunc model (recent history → the next H steps) logged into the active MLflow run and registered by
    the champion/challenger rule. No output: nothing here may change a DVC-tracked file."""
    from lstm_lab.serving.registry import publish

    publish("forecast", p, checkpoint, metrics, history=clean_frame)
