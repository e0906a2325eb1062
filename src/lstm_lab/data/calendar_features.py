"""Calendar features (future-known covariates) from timestamps, or from integer step numbers.

Each feature is a position inside its season, encoded as a (sin, cos) pair on the unit circle:

    hour          hour / 24                         day_of_week   weekday / 7 (Monday = 0)
    minute        minute / 60                       day_of_month  (day - 1) / days in that month
    month         (month - 1) / 12                  day_of_year   (day of year - 1) / days in that year

Why sin/cos rather than one column scaled to [-0.5, 0.5] (GluonTS / Informer's ``timeF``): the ramp puts
23:00 and 00:00, or December and January, at opposite ends, a jump the network must learn to ignore; on the
circle neighbours in time are neighbours in feature space, and every season is continuous. The price is two
columns per feature instead of one, nothing for an LSTM input.

Integer steps (M4-style data has no timestamps): give ``frequency`` and ``start``; step ``t`` is placed at
``start + t * frequency`` on the calendar, so for ``'h'`` from midnight the hour is ``t mod 24`` and the
weekday ``(t // 24 + weekday(start)) mod 7``; for month/quarter/year frequencies the month advances by whole
months (``'MS'`` → month ``t mod 12`` from January). Everything is numpy datetime64 arithmetic in seconds
(no pandas offsets per row, no overflow for long indices).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lstm_lab.data.timeseries import _parse_frequency
from lstm_lab.errors import LstmLabError

FEATURES = ("minute", "hour", "day_of_week", "day_of_month", "month", "day_of_year")
DEFAULT_FEATURES = ("hour", "day_of_week", "day_of_month", "month")
_MONTHS_PER_STEP = {"MonthBegin": 1, "MonthEnd": 1, "QuarterBegin": 3, "QuarterEnd": 3, "YearBegin": 12,
                    "YearEnd": 12}


def calendar_columns(names=DEFAULT_FEATURES) -> list[str]:
    """Column names ``calendar_features`` produces for ``names``: ``hour_sin, hour_cos, ...``."""
    return [f"{name}_{part}" for name in names for part in ("sin", "cos")]


def calendar_features(times, names=DEFAULT_FEATURES, *, frequency: str | None = None,
                      start: str = "1970-01-01") -> pd.DataFrame:
    """A (N, 2 * len(names)) float32 frame of (sin, cos) calendar features, one row per time.

    ``times``: timestamps (datetime64, a DatetimeIndex, a Series of datetimes or date strings), or integer
    step numbers together with ``frequency`` (a pandas alias such as 'h', 'D', 'W', 'MS', 'QS', 'YS') and
    ``start``. The index of a Series is kept, so the result can be assigned to the frame it came from.
    """
    unknown = [n for n in names if n not in FEATURES]
    if unknown:
        raise LstmLabError(f"calendar features: unknown feature {unknown[0]!r}; expected some of {list(FEATURES)}")
    index = times.index if isinstance(times, pd.Series) else None
    raw = np.asarray(times)
    if raw.dtype.kind in "iu":
        if frequency is None:
            raise LstmLabError("calendar features: integer time steps need a frequency (e.g. 'h') and a start date")
        stamps = steps_to_times(raw, frequency, start)
    else:
        stamps = np.asarray(pd.to_datetime(raw), dtype="datetime64[s]")

    columns = {}
    for name in names:
        angle = 2 * np.pi * _phase(stamps, name)  # (N,) position in the season, in [0, 1)
        columns[f"{name}_sin"] = np.sin(angle).astype(np.float32)
        columns[f"{name}_cos"] = np.cos(angle).astype(np.float32)
    return pd.DataFrame(columns, index=index)


def steps_to_times(steps: np.ndarray, frequency: str, start: str = "1970-01-01") -> np.ndarray:
    """Integer steps → datetime64[s] timestamps ``start + steps * frequency``: step 0 is the first time of
    ``pd.date_range(start, freq=frequency)`` (anchored frequencies roll forward: 'QE' from 2000-01-15 starts on
    2000-03-31), and month-like steps move by whole calendar months."""
    t = np.asarray(steps, dtype=np.int64)  # (N,)
    offset = _parse_frequency(frequency)
    origin = np.datetime64(pd.Timestamp(start).to_datetime64(), "s")
    kind = type(offset).__name__
    if kind == "Week" and offset.weekday is not None:  # 'W-SUN': from the first such day on or after start
        origin = np.datetime64(offset.rollforward(pd.Timestamp(start)).to_datetime64(), "s")
    if kind in ("Day", "Week") or isinstance(offset, pd.offsets.Tick):  # a fixed step
        seconds = 86400 * offset.n * (7 if kind == "Week" else 1) if kind in ("Day", "Week") else \
            int(pd.Timedelta(offset).total_seconds())
        return origin + t * np.timedelta64(seconds, "s")
    if kind not in _MONTHS_PER_STEP:
        raise LstmLabError(
            f"calendar features: frequency {frequency!r} is not supported for integer steps; expected a fixed "
            f"step ('min', 'h', 'D', 'W') or a month, quarter or year ('MS', 'ME', 'QS', 'QE', 'YS', 'YE')"
        )
    first = offset.rollforward(pd.Timestamp(start))  # on the anchor, as pd.date_range(start, freq=...) starts
    months = np.datetime64(first.to_datetime64(), "M") + t * (_MONTHS_PER_STEP[kind] * offset.n)  # (N,) [M]
    days = (months + 1).astype("datetime64[D]") - 1 if kind.endswith("End") else months.astype("datetime64[D]")
    return days.astype("datetime64[s]") + np.timedelta64(int((first - first.normalize()).total_seconds()), "s")


def _phase(stamps: np.ndarray, name: str) -> np.ndarray:
    """Position of each timestamp in the season of ``name``, as a fraction in [0, 1)."""
    days = stamps.astype("datetime64[D]")
    seconds_of_day = (stamps - days).astype(np.int64)  # (N,)
    if name == "minute":
        return (seconds_of_day // 60 % 60) / 60
    if name == "hour":
        return (seconds_of_day // 3600) / 24
    if name == "day_of_week":
        return ((days.astype(np.int64) + 3) % 7) / 7  # 1970-01-01 was a Thursday (Monday = 0)
    if name in ("day_of_month", "month"):
        months = days.astype("datetime64[M]")
        if name == "month":
            return (months.astype(np.int64) % 12) / 12
        first, following = months.astype("datetime64[D]"), (months + 1).astype("datetime64[D]")
        return (days - first).astype(np.int64) / (following - first).astype(np.int64)
    years = days.astype("datetime64[Y]")  # day_of_year
    first, following = years.astype("datetime64[D]"), (years + 1).astype("datetime64[D]")
    return (days - first).astype(np.int64) / (following - first).astype(np.int64)
