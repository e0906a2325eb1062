"""Nodes of the forecast pipeline: catalog data + the typed ``params:forecast`` → library calls.

prepare:  forecast_raw → clean_series → forecast_clean → split_series → forecast_split
                                                        └→ fit_scaler  → forecast_scaler
train:    (clean, split, scaler) → training_data → forecast_training_data (memory)
          → train_forecaster → forecast_model (best checkpoint), forecast_history
evaluate: (model, clean, split, scaler) → evaluate_forecaster → forecast_metrics, forecast_predictions → plots
          (model, clean, scaler) → backtest_forecaster → forecast_backtest (rolling origins; panels)
          (model, clean, scaler, future covariates) → forecast_future (the H steps after the data's end)
          (future, future actuals, clean) → score_future → forecast_future_metrics (when the future is known)
          (model, metrics, clean) → register_forecast_model → the pyfunc model in the MLflow run, registered as
          `forecast` (champion or challenger by forecast.serving); writes no file

A panel run (``ForecastParams.is_panel``: many series, intervals, known-future columns) takes the same nodes;
each hands over to ``panel_nodes``.
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from lstm_lab.data.timeseries import StandardScaler, clean_series, scaled_inputs, split_bounds
from lstm_lab.errors import LstmLabError
from lstm_lab.training.forecast.params import ForecastParams
from lstm_lab.training.forecast.task import TASK

log = logging.getLogger(__name__)


def _panel():
    """The panel nodes, imported when a panel run needs them (they load torch: not at Kedro's start-up)."""
    from lstm_lab.pipelines.forecast import panel_nodes

    return panel_nodes


def _columns(p: ForecastParams) -> list[str]:
    return [*p.data.target_columns, *p.data.covariate_columns]


# ---------------------------------------------------------------------------------------------------- prepare
def clean(raw: pd.DataFrame, p: ForecastParams) -> pd.DataFrame:
    if p.is_panel:
        return _panel().clean(raw, p)
    d = p.data
    frame = clean_series(raw, time_column=d.time_column, value_columns=_columns(p), frequency=d.frequency,
                         max_gap=d.max_gap, source="forecast_raw")
    log.info("cleaned series: %d rows at frequency %s, %s .. %s", len(frame), frame.index.freqstr,
             frame.index[0], frame.index[-1])
    return frame.reset_index()  # time as a column: parquet-friendly and explicit


def split_series(clean_frame: pd.DataFrame, p: ForecastParams) -> dict[str, Any]:
    if p.is_panel:
        return _panel().split_series(clean_frame, p)
    from lstm_lab.data.windowing import check_enough_windows  # torch: imported when a node runs, not at start-up

    index = pd.DatetimeIndex(clean_frame[p.data.time_column])
    bounds = split_bounds(index, fractions=p.split.fractions, rows=p.split.rows, times=p.split.times)
    for split in ("train", "val", "test"):
        check_enough_windows(bounds.span(split), p.window.lookback, p.window.horizon, split, len(index))
    log.info("split rows: %s", bounds.as_dict())
    return bounds.as_dict()


def fit_scaler(clean_frame: pd.DataFrame, split: dict[str, int], p: ForecastParams) -> dict[str, Any]:
    if p.is_panel:
        return _panel().fit_scaler(clean_frame, p)
    return StandardScaler.fit(clean_frame[_columns(p)], split["train_end"]).as_dict()


# ------------------------------------------------------------------------------------------------------ train
def training_data(clean_frame: pd.DataFrame, split: dict[str, int], scaler: dict[str, Any],
                  p: ForecastParams) -> dict[str, Any]:
    """What the forecast task trains on (in memory, not saved); also what ``tune_forecast`` hands to trials."""
    if p.is_panel:
        return _panel().training_data(clean_frame, scaler, p)
    inputs = scaled_inputs(clean_frame, StandardScaler.from_dict(scaler), _columns(p))  # (N, F), targets first
    targets = inputs[:, : len(p.data.target_columns)].copy()  # (N, C)
    return {"inputs": inputs, "targets": targets, "bounds": dict(split), "scaler": scaler}


def train_forecaster(data: dict[str, Any], p: ForecastParams) -> tuple[dict[str, Any], pd.DataFrame]:
    from lstm_lab.tracking import active_target
    from lstm_lab.training.forecast.task import train

    checkpoint, history = train(p, data, tracking=active_target())  # one network, or an ensemble (panels)
    return checkpoint, pd.DataFrame(history)


# --------------------------------------------------------------------------------------------------- evaluate
def evaluate_forecaster(checkpoint: dict[str, Any], clean_frame: pd.DataFrame, split: dict[str, int],
                        scaler: dict[str, Any], p: ForecastParams) -> tuple[dict[str, Any], pd.DataFrame]:
    if p.is_panel:
        return _panel().evaluate(checkpoint, clean_frame, scaler, p)
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
    if p.is_panel:
        return _panel().plot(predictions, p)
    from lstm_lab.evaluation import plots

    return plots.forecast_vs_actual(predictions, p.data.target_columns[0], p.window.horizon)


def backtest_forecaster(checkpoint: dict[str, Any], clean_frame: pd.DataFrame, scaler: dict[str, Any],
                        p: ForecastParams) -> dict[str, Any]:
    """Rolling-origin scores (``forecast.backtest``; panels). One series has its test split instead."""
    if not p.is_panel:
        return {"n_windows": 0}
    return _panel().backtest(checkpoint, clean_frame, scaler, p)


def forecast_future(checkpoint: dict[str, Any], clean_frame: pd.DataFrame, scaler: dict[str, Any],
                    future_covariates: pd.DataFrame | None, p: ForecastParams) -> pd.DataFrame:
    """The H steps after the end of the data (every series of a panel, with intervals): what a user ships."""
    if p.is_panel:
        return _panel().forecast_future(checkpoint, clean_frame, scaler, future_covariates, p)
    from lstm_lab.serving.forecast_pyfunc import ForecastSpec, forecast, metadata, training_frequency

    d = p.data
    frequency = training_frequency(clean_frame, d.time_column, d.frequency)
    spec = ForecastSpec.from_meta(metadata(checkpoint, d.time_column, frequency))
    return forecast(TASK.from_checkpoint(checkpoint).net, spec, clean_frame)


def score_future(future: pd.DataFrame, actuals: pd.DataFrame | None, clean_frame: pd.DataFrame,
                 p: ForecastParams) -> dict[str, Any]:
    """``forecast_future`` scored against ``forecast_future_actuals`` when given (M4's test file)."""
    if actuals is None:
        return {"scored": False}
    if not p.is_panel:
        raise LstmLabError("forecast_future_actuals: scoring the future is for panel runs (set data.id_column or a "
                           "probabilistic output.kind)")
    return _panel().score_future(future, actuals, clean_frame, p)


def log_serving_model(checkpoint: dict[str, Any], metrics: dict[str, Any], future_metrics: dict[str, Any],
                      clean_frame: pd.DataFrame, p: ForecastParams) -> None:
    """The pyfunc model (recent history → the next H steps) logged into the active MLflow run and registered by
    the champion/challenger rule. No output: nothing here may change a DVC-tracked file."""
    from lstm_lab.serving.registry import publish

    publish("forecast", p, checkpoint, {**metrics, "future": future_metrics}, history=clean_frame)
