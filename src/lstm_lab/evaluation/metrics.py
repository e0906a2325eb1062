"""Forecast accuracy on windows: the model and two baselines scored on exactly the same windows.

All arrays are (W, H, C): windows × horizon × target columns. Baselines read the true series, indexed by each
window's first-target row ``t`` (see ``lstm_lab.data.windowing``):

- naive: every step repeats the last observed value ``y[t-1]``;
- seasonal naive: step h (0-based) repeats the value one season back, ``y[t + h - m·(⌊h/m⌋ + 1)]``.

MASE (Hyndman & Koehler 2006) divides the MAE by the in-sample MAE of the seasonal-naive one-step forecast on
the training split, per target column, then averages over columns; < 1 beats that in-sample benchmark.
"""

from __future__ import annotations

import numpy as np

from lstm_lab.errors import LstmLabError


def naive_forecast(series: np.ndarray, starts: np.ndarray, horizon: int) -> np.ndarray:
    last = series[starts - 1]  # (W, C)
    return np.repeat(last[:, None, :], horizon, axis=1)  # (W, H, C)


def seasonal_naive_forecast(series: np.ndarray, starts: np.ndarray, horizon: int, period: int) -> np.ndarray:
    h = np.arange(horizon)
    back = period * (h // period + 1)  # (H,) how far back each step looks
    rows = starts[:, None] + h[None, :] - back[None, :]  # (W, H)
    if rows.min() < 0:
        raise LstmLabError(
            f"forecast.evaluation.seasonal_period: {period} reaches before the first row for the earliest test "
            f"window; use a shorter season or a later test split"
        )
    return series[rows]  # (W, H, C)


def mase_scale(train: np.ndarray, period: int) -> np.ndarray:
    """(C,) mean absolute seasonal difference on the training rows."""
    if len(train) <= period:
        raise LstmLabError(f"forecast.evaluation.seasonal_period: {period} is not shorter than the training split")
    scale = np.abs(train[period:] - train[:-period]).mean(axis=0)
    return np.where(scale > 0, scale, np.nan)


def scores(pred: np.ndarray, true: np.ndarray, scale: np.ndarray | None = None) -> dict[str, float]:
    err = pred - true
    out = {"mse": float(np.mean(err**2)), "mae": float(np.mean(np.abs(err)))}
    if scale is not None:
        per_column_mae = np.abs(err).mean(axis=(0, 1))  # (C,)
        out["mase"] = float(np.nanmean(per_column_mae / scale))
    return out
