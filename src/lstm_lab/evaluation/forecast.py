"""Forecast evaluation: the model and the naive / seasonal-naive baselines on exactly the same test windows.

Scores are computed in original units (MSE, MAE, MASE) and on the z-normalised scale; the predictions table
has one row per (window, step, target) with the actual value and every forecast beside it.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
import torch

from lstm_lab.data.timeseries import StandardScaler, scaled_inputs
from lstm_lab.data.windowing import gather, target_starts
from lstm_lab.evaluation.metrics import mase_scale, naive_forecast, scores, seasonal_naive_forecast

log = logging.getLogger(__name__)


def predict_windows(net: torch.nn.Module, inputs: np.ndarray, starts: np.ndarray, lookback: int,
                    batch_size: int = 512) -> np.ndarray:
    """Model forecasts (W, H, C) for the windows whose first target row is in ``starts``, in scaled units."""
    net.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(starts), batch_size):
            x = gather(torch.from_numpy(inputs), starts[i : i + batch_size], lookback, offset=-lookback)  # (B, L, F)
            out.append(net(x).numpy())  # (B, H, C)
    return np.concatenate(out).astype(np.float64)


def evaluate_test_windows(
    net: torch.nn.Module,
    frame: pd.DataFrame,
    bounds: dict[str, int],
    scaler: StandardScaler,
    *,
    targets: list[str],
    covariates: list[str],
    time_column: str,
    lookback: int,
    horizon: int,
    seasonal_period: int,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """``(metrics, predictions)`` on every test window: ``{model: {mse, mae, mase, mse_scaled, mae_scaled}}``."""
    inputs = scaled_inputs(frame, scaler, [*targets, *covariates])
    starts = target_starts((bounds["val_end"], bounds["test_end"]), lookback, horizon)
    series = frame[targets].to_numpy(np.float64)  # original units (N, C)
    truth = gather(series, starts, horizon)  # (W, H, C)
    forecasts = {
        "lstm": scaler.inverse(predict_windows(net, inputs, starts, lookback), targets),
        "naive": naive_forecast(series, starts, horizon),
        "seasonal_naive": seasonal_naive_forecast(series, starts, horizon, seasonal_period),
    }
    scale = mase_scale(series[: bounds["train_end"]], seasonal_period)
    metrics: dict[str, Any] = {}
    for name, pred in forecasts.items():
        metrics[name] = scores(pred, truth, scale)
        scaled = scores(scaler.transform(pred, targets), scaler.transform(truth, targets))
        metrics[name].update({"mse_scaled": scaled["mse"], "mae_scaled": scaled["mae"]})
    log.info("test MSE  lstm %.4f  naive %.4f  seasonal naive %.4f (%d windows, horizon %d)",
             metrics["lstm"]["mse"], metrics["naive"]["mse"], metrics["seasonal_naive"]["mse"], len(starts), horizon)

    times = pd.DatetimeIndex(frame[time_column]).to_numpy()
    rows = starts[:, None] + np.arange(horizon)[None, :]  # (W, H)
    table = {
        "window": np.repeat(np.arange(len(starts)), horizon * len(targets)),
        "step": np.tile(np.repeat(np.arange(1, horizon + 1), len(targets)), len(starts)),
        "target": np.tile(targets, len(starts) * horizon),
        "time": np.repeat(times[rows].reshape(-1), len(targets)),
        "actual": truth.reshape(-1),
        **{name: pred.reshape(-1) for name, pred in forecasts.items()},
    }
    return metrics, pd.DataFrame(table)
