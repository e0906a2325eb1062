"""The M4 competition's measures and statistical benchmarks, vectorised over many series.

Reference: S. Makridakis, E. Spiliotis, V. Assimakopoulos, "The M4 Competition: 100,000 time series and 61
forecasting methods", International Journal of Forecasting 36 (2020) 54-74, and the benchmark/evaluation code
description that came with it. Arrays are (S, H): series × horizon. Each measure is computed per series and then
averaged over series, as the competition did; in-sample data are ragged (a sequence of 1-D arrays, or an (S, N)
array NaN-padded on the right).

Point forecasts, for a series ``x_1..x_n`` (training part only), actuals ``y`` and forecasts ``ŷ`` over h = 1..H:

- sMAPE = (1/H) Σ_h 200·|y_h − ŷ_h| / (|y_h| + |ŷ_h|), in percent (0/0 counts as 0);
- MASE  = (1/H) Σ_h |y_h − ŷ_h| / s, with s = (1/(n−m)) Σ_{t>m} |x_t − x_{t−m}|, the in-sample MAE of the
  seasonal naive forecast with the group's seasonality m (m = 1: the naive one);
- OWA   = ½·(sMAPE / sMAPE_Naive2 + MASE / MASE_Naive2), on the measures already averaged over series.

Prediction intervals [L, U] at level 1 − α (α = 0.05 for the competition's 95 %):

- MSIS = (1/H) Σ_h [(U_h − L_h) + (2/α)(L_h − y_h)·1{y_h < L_h} + (2/α)(y_h − U_h)·1{y_h > U_h}] / s, the
  interval score of Gneiting & Raftery (JASA 2007) scaled like MASE;
- coverage = share of all (series, step) points with L ≤ y ≤ U; ACD = |coverage − (1 − α)|.
- pinball loss at quantile level q: mean over steps and levels of max(q·(y − ŷ_q), (q − 1)·(y − ŷ_q)).

Benchmarks:

- Naive: ŷ_h = x_n. Its 95 % interval is the random-walk one, x_n ± z_{0.975}·σ·√h with σ² = (1/(n−1))
  Σ_{t≥2} (x_t − x_{t−1})², the mean squared one-step in-sample error (not demeaned; this reproduces the
  competition's Naive MSIS and ACD).
- sNaive: ŷ_h = x_{n − m + ((h − 1) mod m) + 1}, the last observed season repeated.
- Naive2: Naive on the seasonally adjusted series, re-seasonalised. A series is adjusted only when m > 1,
  n ≥ 3m and it passes the 90 % autocorrelation test at lag m: |r_m| > 1.645·√((1 + 2 Σ_{k=1}^{m−1} r_k²) / n),
  r_k the sample autocorrelation (deviations from the overall mean, denominator Σ (x_t − x̄)²). The seasonal
  indices come from classical multiplicative decomposition: a centred moving average (2×m for even m, m for
  odd m) as trend, the ratios x_t / trend_t averaged per position in the season, normalised to mean 1. Then
  ŷ_h = (x_n / I(n)) · I(n + h), I(t) the index of t's position (counted from the first observation).
"""

from __future__ import annotations

from statistics import NormalDist
from typing import Sequence

import numpy as np

from lstm_lab.errors import LstmLabError

Insample = np.ndarray | Sequence[np.ndarray]

M4_NAIVE2_OFFICIAL: dict[str, tuple[float, float]] = {"Hourly": (18.383, 2.395)}  # (sMAPE, MASE), Makridakis 2020
SEASONALITY_CRITICAL = 1.645  # one-sided 90 % normal quantile of the M4 seasonality test


# --------------------------------------------------------------------------------------------------------------
# point-forecast measures: (S, H) in, (S,) out
# --------------------------------------------------------------------------------------------------------------
def smape(actual: np.ndarray, forecast: np.ndarray) -> np.ndarray:
    """(S,) sMAPE in percent per series."""
    y, f = _pair(actual, forecast, "forecast")
    denom = np.abs(y) + np.abs(f)
    ratio = np.divide(np.abs(y - f), denom, out=np.zeros_like(denom), where=denom > 0)
    return 200.0 * ratio.mean(axis=1)


def mase(actual: np.ndarray, forecast: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """(S,) MASE per series; ``scale`` (S,) from :func:`mase_scale`."""
    y, f = _pair(actual, forecast, "forecast")
    return np.abs(y - f).mean(axis=1) / _scale(scale, len(y))


def owa(smape_value: float, mase_value: float, naive2_smape: float, naive2_mase: float) -> float:
    """Overall weighted average of the relative sMAPE and MASE (1.0 = as good as Naive2)."""
    return 0.5 * (float(smape_value) / float(naive2_smape) + float(mase_value) / float(naive2_mase))


# --------------------------------------------------------------------------------------------------------------
# interval and quantile measures
# --------------------------------------------------------------------------------------------------------------
def msis(actual: np.ndarray, lower: np.ndarray, upper: np.ndarray, scale: np.ndarray,
         alpha: float = 0.05) -> np.ndarray:
    """(S,) mean scaled interval score per series."""
    y, lo = _pair(actual, lower, "lower")
    _, hi = _pair(actual, upper, "upper")
    score = (hi - lo) + (2.0 / alpha) * ((lo - y) * (y < lo) + (y - hi) * (y > hi))
    return score.mean(axis=1) / _scale(scale, len(y))


def coverage(actual: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> float:
    """Share of all points inside their interval (bounds included)."""
    y, lo = _pair(actual, lower, "lower")
    _, hi = _pair(actual, upper, "upper")
    return float(((y >= lo) & (y <= hi)).mean())


def acd(actual: np.ndarray, lower: np.ndarray, upper: np.ndarray, level: float = 0.95) -> float:
    """Absolute coverage difference |coverage − level| over all points."""
    return abs(coverage(actual, lower, upper) - level)


def pinball(actual: np.ndarray, quantiles: np.ndarray, levels: Sequence[float]) -> np.ndarray:
    """(S,) mean pinball (quantile) loss per series; ``quantiles`` (S, H, Q) for the Q ``levels`` in (0, 1)."""
    y = np.atleast_2d(np.asarray(actual, dtype=np.float64))
    q = np.asarray(quantiles, dtype=np.float64)
    levels = np.asarray(levels, dtype=np.float64).reshape(-1)
    if q.shape != (*y.shape, len(levels)):
        raise LstmLabError(f"pinball: quantiles have shape {q.shape}; expected {(*y.shape, len(levels))} "
                           f"(series, horizon, levels)")
    if ((levels <= 0) | (levels >= 1)).any():
        raise LstmLabError(f"pinball: quantile levels {levels.tolist()}; expected values strictly between 0 and 1")
    diff = y[..., None] - q
    return np.maximum(levels * diff, (levels - 1.0) * diff).mean(axis=(1, 2))


# --------------------------------------------------------------------------------------------------------------
# in-sample quantities and benchmarks
# --------------------------------------------------------------------------------------------------------------
def mase_scale(insample: Insample, m: int) -> np.ndarray:
    """(S,) in-sample mean absolute seasonal difference, lag ``m`` (the MASE and MSIS scale)."""
    flat = _Flat(insample)
    m = _period(m)
    short = np.flatnonzero(flat.lengths <= m)
    if short.size:
        raise LstmLabError(f"mase_scale: series {int(short[0])} has {int(flat.lengths[short[0]])} in-sample values; "
                           f"expected more than the seasonality {m}")
    keep = flat.pos >= m
    diff = np.abs(flat.values[m:] - flat.values[:-m])[keep[m:]]
    total = np.bincount(flat.series[keep], weights=diff, minlength=flat.count)
    return total / (flat.lengths - m)


def acf(insample: Insample, max_lag: int) -> np.ndarray:
    """(S, max_lag) sample autocorrelations r_1..r_max_lag per series (R's ``acf``); NaN for a constant series."""
    flat = _Flat(insample)
    means = np.bincount(flat.series, weights=flat.values, minlength=flat.count) / flat.lengths
    dev = flat.values - means[flat.series]
    c0 = np.bincount(flat.series, weights=dev * dev, minlength=flat.count)
    # Deviations with max_lag zeros after each series: a lagged product across two series is then 0.
    gap_starts = flat.starts + max_lag * np.arange(flat.count)
    gapped = np.zeros(len(dev) + max_lag * flat.count)
    gapped[flat.pos + gap_starts[flat.series]] = dev
    out = np.full((flat.count, max_lag), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        for k in range(1, max_lag + 1):
            ck = np.add.reduceat(gapped[:-k] * gapped[k:], gap_starts)
            out[:, k - 1] = np.where(c0 > 0, ck / c0, np.nan)
    return out


def seasonality_test(insample: Insample, m: int) -> np.ndarray:
    """(S,) bool: the M4 90 % autocorrelation test at lag m (False when m = 1 or n < 3m)."""
    flat = _Flat(insample)
    m = _period(m)
    if m == 1:
        return np.zeros(flat.count, dtype=bool)
    r = acf(flat, m)
    limit = SEASONALITY_CRITICAL * np.sqrt((1.0 + 2.0 * np.sum(r[:, : m - 1] ** 2, axis=1)) / flat.lengths)
    with np.errstate(invalid="ignore"):
        seasonal = np.abs(r[:, m - 1]) > limit
    return seasonal & (flat.lengths >= 3 * m) & np.isfinite(r[:, m - 1])


def seasonal_indices(insample: Insample, m: int, *, test: bool = True) -> np.ndarray:
    """(S, m) multiplicative seasonal indices by position in the season (position 0 = the first observation),
    mean 1; all ones for a series that fails the seasonality test (``test``) or when m = 1."""
    flat = _Flat(insample)
    m = _period(m)
    out = np.ones((flat.count, m))
    if m == 1:
        return out
    seasonal = seasonality_test(flat, m) if test else flat.lengths >= 2 * m
    if not seasonal.any():
        return out
    half = m // 2
    weights_edge = 0.5 if m % 2 == 0 else 1.0  # 2×m MA for even m: half weight on the two end points
    csum = np.concatenate([[0.0], np.cumsum(flat.values)])
    idx = np.arange(len(flat.values))
    inside = (flat.pos >= half) & (flat.pos < flat.lengths[flat.series] - half)
    lo, hi = np.clip(idx - half, 0, None), np.clip(idx + half, None, len(flat.values) - 1)
    window = csum[hi + 1] - csum[lo]
    if weights_edge != 1.0:
        window = window - (1.0 - weights_edge) * (flat.values[lo] + flat.values[hi])
    trend = window / m
    ok = inside & seasonal[flat.series]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = flat.values[ok] / trend[ok]
    cell = flat.series[ok] * m + flat.pos[ok] % m
    sums = np.bincount(cell, weights=ratio, minlength=flat.count * m).reshape(flat.count, m)
    counts = np.bincount(cell, minlength=flat.count * m).reshape(flat.count, m)
    with np.errstate(divide="ignore", invalid="ignore"):
        figure = sums / counts
        figure = figure / figure.mean(axis=1, keepdims=True)
    out[seasonal] = figure[seasonal]
    return out


def naive_forecast(insample: Insample, horizon: int) -> np.ndarray:
    """(S, H): the last value repeated."""
    flat = _Flat(insample)
    return np.repeat(flat.last()[:, None], horizon, axis=1)


def snaive_forecast(insample: Insample, horizon: int, m: int) -> np.ndarray:
    """(S, H): the last m values repeated (seasonal naive)."""
    flat = _Flat(insample)
    m = _period(m)
    if (flat.lengths < m).any():
        row = int(np.flatnonzero(flat.lengths < m)[0])
        raise LstmLabError(f"snaive_forecast: series {row} has {int(flat.lengths[row])} values; expected at least "
                           f"the seasonality {m}")
    h = np.arange(horizon)
    rows = (flat.starts + flat.lengths - m)[:, None] + (h % m)[None, :]
    return flat.values[rows]


def naive2_forecast(insample: Insample, horizon: int, m: int) -> np.ndarray:
    """(S, H): the M4 Naive2 benchmark (naive on the seasonally adjusted series, re-seasonalised)."""
    flat = _Flat(insample)
    m = _period(m)
    index = seasonal_indices(flat, m)
    rows = np.arange(flat.count)[:, None]
    last_phase = (flat.lengths - 1) % m
    future_phase = (flat.lengths[:, None] + np.arange(horizon)[None, :]) % m
    level = flat.last() / index[np.arange(flat.count), last_phase]
    return level[:, None] * index[rows, future_phase]


def naive_interval(insample: Insample, horizon: int, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper), each (S, H): the random-walk interval around the Naive forecast, x_n ± z·σ·√h."""
    flat = _Flat(insample)
    z = NormalDist().inv_cdf(0.5 + level / 2.0)  # 1.95996... at 95 %
    keep = flat.pos[1:] >= 1  # differences inside one series
    squares = np.diff(flat.values)[keep] ** 2
    var = np.bincount(flat.series[1:][keep], weights=squares, minlength=flat.count) / (flat.lengths - 1)
    spread = z * np.sqrt(var)[:, None] * np.sqrt(np.arange(1, horizon + 1))[None, :]
    point = flat.last()[:, None]
    return point - spread, point + spread


def m4_scores(actual: np.ndarray, forecast: np.ndarray, insample: Insample, m: int, *,
              naive2: tuple[float, float] | None = None, lower: np.ndarray | None = None,
              upper: np.ndarray | None = None, alpha: float = 0.05) -> dict[str, float]:
    """The competition's summary for one group: ``smape``, ``mase``, ``owa`` (against ``naive2`` = (sMAPE, MASE),
    e.g. ``M4_NAIVE2_OFFICIAL["Hourly"]``, or Naive2 computed on ``insample`` when None), and with an interval
    ``msis``, ``coverage``, ``acd``; each the mean over series."""
    scale = mase_scale(insample, m)
    out = {"smape": float(smape(actual, forecast).mean()), "mase": float(mase(actual, forecast, scale).mean())}
    if naive2 is None:
        base = naive2_forecast(insample, np.shape(actual)[-1], m)
        naive2 = (float(smape(actual, base).mean()), float(mase(actual, base, scale).mean()))
    out["owa"] = owa(out["smape"], out["mase"], *naive2)
    if (lower is None) != (upper is None):
        raise LstmLabError("m4_scores: got only one interval bound; expected both lower and upper, or neither")
    if lower is not None:
        out["msis"] = float(msis(actual, lower, upper, scale, alpha).mean())
        out["coverage"] = coverage(actual, lower, upper)
        out["acd"] = abs(out["coverage"] - (1.0 - alpha))
    return out


# --------------------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------------------
class _Flat:
    """Ragged series concatenated: ``values`` (T,), ``lengths``/``starts`` (S,), ``series``/``pos`` (T,)."""

    def __init__(self, insample: Insample | _Flat):
        if isinstance(insample, _Flat):
            self.__dict__.update(insample.__dict__)
            return
        if isinstance(insample, np.ndarray) and insample.ndim == 2:
            rows = [row[: _padded_length(row)] for row in insample.astype(np.float64)]
        else:
            rows = [np.asarray(row, dtype=np.float64).reshape(-1) for row in insample]
        for k, row in enumerate(rows):
            if len(row) == 0 or not np.isfinite(row).all():
                raise LstmLabError(f"in-sample series {k}: {'no values' if len(row) == 0 else 'NaN or infinite value'}"
                                   f"; expected finite values (NaN only as right padding)")
        self.lengths = np.array([len(r) for r in rows], dtype=np.int64)
        self.count = len(rows)
        self.starts = np.cumsum(self.lengths) - self.lengths
        self.values = np.concatenate(rows) if rows else np.zeros(0)
        self.series = np.repeat(np.arange(self.count), self.lengths)
        self.pos = np.arange(len(self.values)) - self.starts[self.series]

    def last(self) -> np.ndarray:
        return self.values[self.starts + self.lengths - 1]


def _padded_length(row: np.ndarray) -> int:
    present = np.flatnonzero(~np.isnan(row))
    return int(present[-1]) + 1 if present.size else 0


def _pair(actual, other, name: str) -> tuple[np.ndarray, np.ndarray]:
    y = np.atleast_2d(np.asarray(actual, dtype=np.float64))
    f = np.atleast_2d(np.asarray(other, dtype=np.float64))
    if y.shape != f.shape or y.ndim != 2:
        raise LstmLabError(f"{name} has shape {f.shape}; expected {y.shape}, the actuals' (series, horizon)")
    for label, arr in (("actual", y), (name, f)):
        if not np.isfinite(arr).all():
            row, step = (int(v[0]) for v in np.nonzero(~np.isfinite(arr)))
            raise LstmLabError(f"{label} series {row} step {step + 1}: {arr[row, step]}; expected a finite number")
    return y, f


def _scale(scale, count: int) -> np.ndarray:
    s = np.asarray(scale, dtype=np.float64).reshape(-1)
    if s.shape != (count,):
        raise LstmLabError(f"scale has {s.size} values; expected {count}, one per series")
    if (bad := np.flatnonzero(~(s > 0) | ~np.isfinite(s))).size:
        raise LstmLabError(f"scale of series {int(bad[0])} is {s[bad[0]]}; expected a positive number (a constant "
                           f"in-sample series has no MASE scale)")
    return s


def _period(m) -> int:
    if int(m) != m or m < 1:
        raise LstmLabError(f"seasonality {m!r}; expected a positive integer")
    return int(m)

