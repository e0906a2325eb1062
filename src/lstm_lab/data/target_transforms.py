"""What a panel model is trained to predict, and how its quantiles become quantiles of the series again.

    none                the series itself
    log                 log y (positive series): errors become relative, as sMAPE and MASE on trending data like
    seasonal_log_diff   d_k = log y_t - log y_(t-k) for k in ``lags`` (m, 2m, ... until the horizon is covered),
                        one target column per lag; a zero forecast of every d_k is the seasonal naive forecast

Step h after an origin (h = 0 .. H-1) is rebuilt from the smallest lag k > h: ``y_(o+h) = y_(o+h-k) · exp(d_k)``,
where ``y_(o+h-k)`` is observed (k > h). exp and a known shift are monotone, so the quantiles of d_k map to
quantiles of y; with the model's output layer at zero the untrained forecast is exactly sNaive, the score a
seasonal panel like M4 Hourly must beat (Smyl's ES-RNN removes seasonality for the same reason, with learned
Holt-Winters factors instead of a fixed lag).

Transforms act on the clean long table before the panel is built (``transform_frame``) and are undone on
forecasts (``restore``) given the original level series.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from lstm_lab.errors import LstmLabError

TRANSFORMS = ("none", "log", "seasonal_log_diff")


def seasonal_lags(horizon: int, season: int) -> tuple[int, ...]:
    """m, 2m, ... up to the first multiple of the season that reaches the horizon (1, 2, ... H for m = 1)."""
    return tuple(season * j for j in range(1, math.ceil(horizon / season) + 1))


def target_names(kind: str, targets: list[str], lags: tuple[int, ...]) -> list[str]:
    """Column names the model predicts."""
    if kind == "seasonal_log_diff":
        return [f"{targets[0]}_d{k}" for k in lags]
    return list(targets)


def dropped_rows(kind: str, lags: tuple[int, ...]) -> int:
    """Leading rows of every series without a transformed value (the first max(lags) for differences)."""
    return max(lags) if kind == "seasonal_log_diff" else 0


def transform_frame(frame: pd.DataFrame, kind: str, *, id_column: str, targets: list[str],
                    lags: tuple[int, ...] = (), source: str = "forecast data") -> pd.DataFrame:
    """``frame`` (sorted by id, then time) with its targets replaced by what the model predicts; for
    differences the first ``max(lags)`` rows of every series are dropped. Non-positive values are an error
    naming the id and column (a log needs y > 0)."""
    if kind not in TRANSFORMS:
        raise LstmLabError(f"forecast.data.target_transform: {kind!r}; expected one of {list(TRANSFORMS)}")
    if kind == "none":
        return frame
    values = frame[targets].to_numpy(np.float64)
    bad = ~(values > 0)
    if bad.any():
        i, j = (int(k[0]) for k in np.nonzero(bad))
        raise LstmLabError(f"{source}: target {targets[j]!r} is {float(values[i, j])!r} at id {frame[id_column].iloc[i]!r}; "
                           f"target_transform {kind} needs positive values")
    out = frame.copy()
    if kind == "log":
        out[targets] = np.log(values)
        return out
    log_y = pd.Series(np.log(values[:, 0]), index=frame.index)
    by_id = log_y.groupby(frame[id_column].to_numpy(), sort=False)
    for k in lags:
        out[f"{targets[0]}_d{k}"] = (log_y - by_id.shift(k)).to_numpy()
    out = out.drop(columns=targets)
    position = frame.groupby(id_column, sort=False).cumcount().to_numpy()
    return out[position >= max(lags)]


def restore(kind: str, quantiles: np.ndarray, *, lags: tuple[int, ...] = (), levels: np.ndarray | None = None,
            origins: np.ndarray | None = None) -> np.ndarray:
    """Quantiles of the model's targets, unscaled, (N, H, K, Q) → quantiles of the series (N, H, C, Q).

    ``seasonal_log_diff`` also needs ``levels`` (M,) — the original target of every series concatenated — and
    ``origins`` (N,): for each forecast the row of ``levels`` holding its first forecast step (for a forecast
    after a series' end, one past its last row)."""
    if kind == "none":
        return quantiles
    if kind == "log":
        return np.exp(quantiles)
    if kind != "seasonal_log_diff":
        raise LstmLabError(f"target transform {kind!r}; expected one of {list(TRANSFORMS)}")
    N, H, K, Q = quantiles.shape
    lag_array = np.asarray(lags, dtype=np.int64)
    h = np.arange(H)
    which = np.searchsorted(lag_array, h, side="right")  # (H,) the smallest lag > h
    if (which >= K).any():
        raise LstmLabError(f"seasonal_log_diff: lags {list(lags)} do not cover the horizon {H}")
    rows = np.asarray(origins, dtype=np.int64)[:, None] + h - lag_array[which]  # (N, H) observed rows
    base = np.log(np.asarray(levels, dtype=np.float64)[rows])  # (N, H)
    d = quantiles[:, h, which, :]  # (N, H, Q)
    return np.exp(base[..., None] + d)[:, :, None, :]  # (N, H, 1, Q)
