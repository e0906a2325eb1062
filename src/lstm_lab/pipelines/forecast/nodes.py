"""Nodes of the forecast pipeline: thin wrappers from catalog data + ``params:forecast`` to library calls.

prepare:  forecast_raw → clean_series → forecast_clean → split_series → forecast_split
                                                        └→ fit_scaler  → forecast_scaler
train:    (clean, split, scaler) → training_data → forecast_training_data (memory)
          → train_forecaster → forecast_model (best checkpoint), forecast_history
evaluate: (model, clean, split, scaler) → evaluate_forecaster → forecast_metrics, forecast_predictions → plots
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
import torch

from lstm_lab.data.timeseries import StandardScaler, clean_series, split_bounds
from lstm_lab.data.windowing import check_enough_windows, gather, target_starts
from lstm_lab.evaluation import plots
from lstm_lab.evaluation.metrics import mase_scale, naive_forecast, scores, seasonal_naive_forecast
from lstm_lab.pipelines.forecast.params import ForecastParams
from lstm_lab.tracking import active_target
from lstm_lab.training.entry import run_training
from lstm_lab.training.forecast import ForecastModule

log = logging.getLogger(__name__)


def _params(raw: dict[str, Any]) -> ForecastParams:
    from lstm_lab.params import validate

    return validate("forecast", raw)


def _columns(p: ForecastParams) -> list[str]:
    return [*p.data.target_columns, *p.data.covariate_columns]


# ---------------------------------------------------------------------------------------------------- prepare
def clean(raw: pd.DataFrame, params: dict[str, Any]) -> pd.DataFrame:
    p = _params(params)
    frame = clean_series(
        raw,
        time_column=p.data.time_column,
        value_columns=_columns(p),
        frequency=p.data.frequency,
        max_gap=p.data.max_gap,
        source="forecast_raw",
    )
    log.info("cleaned series: %d rows at frequency %s, %s .. %s", len(frame), frame.index.freqstr,
             frame.index[0], frame.index[-1])
    return frame.reset_index()  # time as a column: parquet-friendly and explicit


def split_series(clean_frame: pd.DataFrame, params: dict[str, Any]) -> dict[str, int]:
    p = _params(params)
    index = pd.DatetimeIndex(clean_frame[p.data.time_column])
    bounds = split_bounds(index, fractions=p.split.fractions, rows=p.split.rows, times=p.split.times)
    for split in ("train", "val", "test"):
        check_enough_windows(bounds.span(split), p.window.lookback, p.window.horizon, split, len(index))
    log.info("split rows: %s", bounds.as_dict())
    return bounds.as_dict()


def fit_scaler(clean_frame: pd.DataFrame, split: dict[str, int], params: dict[str, Any]) -> dict[str, Any]:
    p = _params(params)
    return StandardScaler.fit(clean_frame[_columns(p)], split["train_end"]).as_dict()


def _scaled_arrays(clean_frame: pd.DataFrame, scaler: dict[str, Any], p: ForecastParams):
    s = StandardScaler.from_dict(scaler)
    cols, targets = _columns(p), p.data.target_columns
    inputs = s.transform(clean_frame[cols].to_numpy(np.float64), cols).astype(np.float32)  # (N, F)
    return inputs, inputs[:, : len(targets)].copy()  # targets are the first C input columns


# ------------------------------------------------------------------------------------------------------ train
def training_data(
    clean_frame: pd.DataFrame, split: dict[str, int], scaler: dict[str, Any], params: dict[str, Any]
) -> dict[str, Any]:
    """What ``run_training("forecast", ...)`` takes: scaled arrays and split rows (in memory, not saved).

    Every tunable pipeline ends its data preparation in ``<pipeline>_training_data``; the sweep pipelines
    (``tune_<pipeline>``) reuse the nodes up to it and hand the result to each Ray trial.
    """
    p = _params(params)
    inputs, targets = _scaled_arrays(clean_frame, scaler, p)
    return {"inputs": inputs, "targets": targets, "bounds": dict(split)}


def train_forecaster(data: dict[str, Any], params: dict[str, Any]) -> tuple[dict[str, Any], pd.DataFrame]:
    p = _params(params)
    result = run_training("forecast", p.model_dump(mode="json"), data, tracking=active_target())
    return result.checkpoint, pd.DataFrame(result.history)


# --------------------------------------------------------------------------------------------------- evaluate
def predict_windows(module: torch.nn.Module, inputs: np.ndarray, starts: np.ndarray, lookback: int,
                    batch_size: int = 512) -> np.ndarray:
    """Model forecasts (W, H, C) for the windows starting at ``starts``, in scaled units."""
    module.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(starts), batch_size):
            x = gather(torch.from_numpy(inputs), starts[i : i + batch_size], lookback, offset=-lookback)
            out.append(module(x).numpy())
    return np.concatenate(out).astype(np.float64)


def evaluate_forecaster(
    checkpoint: dict[str, Any],
    clean_frame: pd.DataFrame,
    split: dict[str, int],
    scaler: dict[str, Any],
    params: dict[str, Any],
) -> tuple[dict[str, Any], pd.DataFrame]:
    p = _params(params)
    module = ForecastModule(**checkpoint["hyper_parameters"])
    module.load_state_dict(checkpoint["state_dict"])
    inputs, targets_scaled = _scaled_arrays(clean_frame, scaler, p)
    s, names = StandardScaler.from_dict(scaler), p.data.target_columns
    L, H, m = p.window.lookback, p.window.horizon, p.evaluation.seasonal_period
    starts = target_starts((split["val_end"], split["test_end"]), L, H)

    series = clean_frame[names].to_numpy(np.float64)  # original units (N, C)
    truth = gather(series, starts, H)  # (W, H, C)
    forecasts = {
        "lstm": s.inverse(predict_windows(module, inputs, starts, L), names),
        "naive": naive_forecast(series, starts, H),
        "seasonal_naive": seasonal_naive_forecast(series, starts, H, m),
    }
    scale = mase_scale(series[: split["train_end"]], m)
    metrics: dict[str, Any] = {}
    for name, pred in forecasts.items():
        metrics[name] = scores(pred, truth, scale)
        scaled = scores(s.transform(pred, names), s.transform(truth, names))
        metrics[name].update({"mse_scaled": scaled["mse"], "mae_scaled": scaled["mae"]})
    log.info("test MSE  lstm %.4f  naive %.4f  seasonal naive %.4f (%d windows, horizon %d)",
             metrics["lstm"]["mse"], metrics["naive"]["mse"], metrics["seasonal_naive"]["mse"], len(starts), H)

    times = pd.DatetimeIndex(clean_frame[p.data.time_column]).to_numpy()
    rows = starts[:, None] + np.arange(H)[None, :]  # (W, H)
    table = {
        "window": np.repeat(np.arange(len(starts)), H * len(names)),
        "step": np.tile(np.repeat(np.arange(1, H + 1), len(names)), len(starts)),
        "target": np.tile(names, len(starts) * H),
        "time": np.repeat(times[rows].reshape(-1), len(names)),
        "actual": truth.reshape(-1),
        **{name: pred.reshape(-1) for name, pred in forecasts.items()},
    }
    return metrics, pd.DataFrame(table)


def plot_learning_curves(history: pd.DataFrame):
    return plots.learning_curves(history, "forecast: learning curves")


def plot_forecast(predictions: pd.DataFrame, params: dict[str, Any]):
    p = _params(params)
    return plots.forecast_vs_actual(predictions, p.data.target_columns[0], p.window.horizon)
