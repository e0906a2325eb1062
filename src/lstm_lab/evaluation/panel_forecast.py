"""Scoring probabilistic panel forecasts: the model and the naive / seasonal-naive baselines on the same windows.

Every forecast is a window: series s, origin o (the first forecast row), H steps, for each target a set of
quantiles. Scores are in original units and follow the M4 competition's definitions (``evaluation/m4.py``):
per window sMAPE (%), MASE (MAE over the series' in-sample seasonal-naive MAE), and for every central interval
its coverage and MSIS (the interval score scaled like MASE), plus the mean pinball loss over the levels on the
same scale. A window plays the part an M4 series plays; the means over windows are what is reported.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from lstm_lab.evaluation import m4

# --------------------------------------------------------------------------------------------------------------
# levels and intervals
# --------------------------------------------------------------------------------------------------------------


def interval_bounds(levels: Sequence[float]) -> dict[int, tuple[int, int]]:
    """{coverage in % : (index of the lower level, index of the upper)} of the central intervals in ``levels``."""
    values = [round(float(q), 6) for q in levels]
    out = {}
    for i, lo in enumerate(values):
        hi = round(1.0 - lo, 6)
        if lo < 0.5 and hi in values:
            out[int(round((hi - lo) * 100))] = (i, values.index(hi))
    return dict(sorted(out.items()))


def median_index(levels: Sequence[float]) -> int:
    values = [round(float(q), 6) for q in levels]
    return values.index(0.5)


# --------------------------------------------------------------------------------------------------------------
# baselines and scales
# --------------------------------------------------------------------------------------------------------------
def naive(levels: np.ndarray, origins: np.ndarray, horizon: int) -> np.ndarray:
    """(N, H) the last value before each origin, repeated; ``levels`` (M,) one target, series concatenated."""
    return np.repeat(levels[origins - 1][:, None], horizon, axis=1)


def seasonal_naive(levels: np.ndarray, origins: np.ndarray, horizon: int, m: int) -> np.ndarray:
    """(N, H) the value one season before, from the last observed season: y_(o+h) = y_(o+h-m·ceil((h+1)/m))."""
    h = np.arange(horizon)
    back = m * ((h // m) + 1)  # (H,) steps back to the same phase before the origin
    return levels[origins[:, None] + h[None, :] - back[None, :]]


def in_sample_scale(levels: np.ndarray, starts: np.ndarray, train_rows: np.ndarray, m: int) -> np.ndarray:
    """(S,) mean |y_t - y_(t-m)| over each series' training rows (``evaluation.m4.mase_scale``'s definition, the
    MASE / MSIS scale); a series with m training rows or fewer, or a zero scale, falls back to lag 1, then 1."""
    n = np.asarray(train_rows, dtype=np.int64)
    out = np.full(len(starts), np.nan)
    for lag in dict.fromkeys((m, 1)):
        todo = np.isnan(out) & (n > lag)
        if todo.any():
            value = _mean_abs_diff(levels, np.asarray(starts)[todo], n[todo], lag)
            idx = np.flatnonzero(todo)[value > 0]
            out[idx] = value[value > 0]
    return np.where(np.isnan(out), 1.0, out)


def _mean_abs_diff(levels: np.ndarray, starts: np.ndarray, n: np.ndarray, lag: int) -> np.ndarray:
    from lstm_lab.data.panel import ragged_rows
    from lstm_lab.data.panel_scaling import seasonal_mae

    y = levels[ragged_rows(starts, n)][:, None]  # (K, 1) the series' rows, one after the other
    return seasonal_mae(y, n, np.cumsum(n) - n, lag, fallback=np.zeros((len(n), 1)))[:, 0]


# --------------------------------------------------------------------------------------------------------------
# scores
# --------------------------------------------------------------------------------------------------------------
def point_scores(actual: np.ndarray, forecast: np.ndarray, scale: np.ndarray) -> dict[str, float]:
    """MSE, MAE, sMAPE (%), MASE of point forecasts (N, H) with per-window scales (N,)."""
    err = forecast - actual
    return {"mse": float(np.mean(err ** 2)), "mae": float(np.mean(np.abs(err))),
            "smape": float(m4.smape(actual, forecast).mean()), "mase": float(m4.mase(actual, forecast, scale).mean())}


def quantile_scores(actual: np.ndarray, quantiles: np.ndarray, levels: Sequence[float],
                    scale: np.ndarray) -> dict[str, float]:
    """Point scores of the median, and for each central interval its coverage and MSIS, and the scaled mean
    pinball loss; ``quantiles`` (N, H, Q)."""
    out = point_scores(actual, quantiles[..., median_index(levels)], scale)
    for pct, (lo, hi) in interval_bounds(levels).items():
        low, high = quantiles[..., lo], quantiles[..., hi]
        out[f"coverage{pct}"] = m4.coverage(actual, low, high)
        out[f"msis{pct}"] = float(m4.msis(actual, low, high, scale, alpha=1 - pct / 100).mean())
    out["pinball"] = float((m4.pinball(actual, quantiles, levels) / scale).mean())
    return out


def score_windows(actual: np.ndarray, quantiles: np.ndarray, levels: Sequence[float], scale: np.ndarray,
                  baselines: dict[str, np.ndarray]) -> dict[str, Any]:
    """``{"lstm": {...}, "<baseline>": {...}}`` for forecasts of C targets: actual (N, H, C), quantiles
    (N, H, C, Q), baselines {name: (N, H, C)}, scale (N, C); means over targets."""
    C = actual.shape[2]

    def mean(dicts: list[dict[str, float]]) -> dict[str, float]:
        return {k: float(np.mean([d[k] for d in dicts])) for k in dicts[0]}

    metrics = {"lstm": mean([quantile_scores(actual[:, :, c], quantiles[:, :, c], levels, scale[:, c])
                             for c in range(C)])}
    for name, forecast in baselines.items():
        metrics[name] = mean([point_scores(actual[:, :, c], forecast[:, :, c], scale[:, c]) for c in range(C)])
    return metrics


def predictions_table(ids: np.ndarray, origin_times: np.ndarray, times: np.ndarray, targets: Sequence[str],
                      actual: np.ndarray | None, quantiles: np.ndarray, levels: Sequence[float],
                      baselines: dict[str, np.ndarray] | None = None, window: np.ndarray | None = None,
                      ) -> pd.DataFrame:
    """One row per (window, step, target): id, origin, step, time, actual, median, lo<c>/hi<c> per interval,
    and the baselines. ``times`` (N, H); ``actual`` may be None (the future)."""
    N, H, C, _ = quantiles.shape
    rep = H * C
    table: dict[str, Any] = {}
    if window is not None:
        table["window"] = np.repeat(window, rep)
    table.update({
        "id": np.repeat(np.asarray(ids, dtype=object), rep),
        "origin": np.repeat(origin_times, rep),
        "step": np.tile(np.repeat(np.arange(1, H + 1), C), N),
        "target": np.tile(np.asarray(targets, dtype=object), N * H),
        "time": np.repeat(np.asarray(times).reshape(-1), C),
    })
    if actual is not None:
        table["actual"] = actual.reshape(-1)
    table["median"] = quantiles[..., median_index(levels)].reshape(-1)
    for pct, (lo, hi) in interval_bounds(levels).items():
        table[f"lo{pct}"] = quantiles[..., lo].reshape(-1)
        table[f"hi{pct}"] = quantiles[..., hi].reshape(-1)
    for name, forecast in (baselines or {}).items():
        table[name] = forecast.reshape(-1)
    return pd.DataFrame(table)
