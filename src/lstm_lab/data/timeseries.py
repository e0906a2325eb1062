"""Time-series preparation: validate, clean, regularise, split and scale one table of observations.

Pure functions on pandas/numpy; the forecast pipeline's nodes call them with validated parameters. Every
problem with the user's data raises ``LstmLabError`` with a one-line message naming the source, the column and
the offending value, so a bad file fails before anything downstream is overwritten.
"""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from lstm_lab.errors import LstmLabError

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------------------------
# Validation and cleaning
# --------------------------------------------------------------------------------------------------------------
def clean_series(
    raw: pd.DataFrame,
    *,
    time_column: str,
    value_columns: list[str],
    frequency: str | None = None,
    max_gap: int = 0,
    source: str = "raw data",
) -> pd.DataFrame:
    """Return a frame indexed by a regular DatetimeIndex with float64 ``value_columns`` and no missing values.

    Steps: parse and sort time, reject duplicate timestamps, infer (or take) the frequency and reindex onto
    that regular grid, then fill runs of missing values up to ``max_gap`` steps by time interpolation.
    A longer run, a non-numeric cell, or a timestamp off the grid is an error. Leading and trailing rows with
    missing values are trimmed (there is nothing to interpolate from).
    """
    if raw is None or len(raw) == 0:
        raise LstmLabError(f"{source}: the table is empty; expected rows with a time column and value columns")
    frame = raw
    if time_column not in frame.columns:
        if frame.index.name == time_column or (isinstance(frame.index, pd.DatetimeIndex) and time_column == "index"):
            frame = frame.reset_index()
            if time_column == "index":
                frame = frame.rename(columns={frame.columns[0]: "index"})
        else:
            raise LstmLabError(
                f"{source}: time column {time_column!r} not found; columns are {list(map(str, frame.columns))}"
            )
    missing = [c for c in value_columns if c not in frame.columns]
    if missing:
        raise LstmLabError(
            f"{source}: column {missing[0]!r} not found; columns are {list(map(str, frame.columns))}"
        )

    times = _parse_times(frame[time_column], source, time_column)
    values = pd.DataFrame({c: _parse_numbers(frame[c], source, c) for c in value_columns})
    values.index = pd.DatetimeIndex(times, name=time_column)
    values = values.sort_index(kind="stable")

    duplicated = values.index.duplicated()
    if duplicated.any():
        stamp = values.index[duplicated][0]
        raise LstmLabError(
            f"{source}: duplicate timestamp {stamp} in column {time_column!r}; expected one row per time step"
        )
    if len(values) < 2:
        raise LstmLabError(f"{source}: only {len(values)} row(s); a series needs at least 2 time steps")

    step = _resolve_step(values.index, frequency, source, time_column)
    grid = pd.date_range(values.index[0], values.index[-1], freq=step, name=time_column)
    off_grid = values.index.difference(grid)
    if len(off_grid):
        # The grid can be empty (frequency 'ME' on ten days of data): there is then no start to name.
        start = f" starting at {grid[0]}" if len(grid) else f" between {values.index[0]} and {values.index[-1]}"
        raise LstmLabError(
            f"{source}: timestamp {off_grid[0]} is not on the regular {step.freqstr} grid{start}; "
            f"set forecast.data.frequency or resample the file"
        )
    regular = values.reindex(grid)
    regular = _trim_edges(regular, source)
    _check_gaps(regular, max_gap, source)
    filled = regular.interpolate(method="time", limit_area="inside") if regular.isna().any().any() else regular
    filled.index.freq = step
    n_filled = int(regular.isna().sum().sum())
    if n_filled:
        log.info("%s: filled %d missing value(s) in gaps of at most %d step(s)", source, n_filled, max_gap)
    return filled.astype(np.float64)


def _parse_times(column: pd.Series, source: str, name: str) -> pd.DatetimeIndex:
    parsed = pd.to_datetime(column, errors="coerce")
    bad = parsed.isna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise LstmLabError(f"{source}: column {name!r} row {row}: {column.iloc[row]!r} is not a date/time")
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    return pd.DatetimeIndex(parsed)


def _parse_numbers(column: pd.Series, source: str, name: str) -> np.ndarray:
    numbers = pd.to_numeric(column, errors="coerce")
    # A cell that was present but did not parse is an error; an empty cell is a gap to fill.
    bad = numbers.isna() & column.notna() & (column.astype(str).str.strip() != "")
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise LstmLabError(f"{source}: column {name!r} row {row}: {column.iloc[row]!r} is not a number")
    values = numbers.to_numpy(dtype=np.float64)
    if np.isinf(values).any():
        row = int(np.flatnonzero(np.isinf(values))[0])
        raise LstmLabError(f"{source}: column {name!r} row {row}: infinite value")
    return values


def _resolve_step(index: pd.DatetimeIndex, frequency: str | None, source: str, name: str):
    if frequency:
        return _parse_frequency(frequency)
    inferred = pd.infer_freq(index) if len(index) >= 3 else None
    if inferred:
        return pd.tseries.frequencies.to_offset(inferred)
    # With gaps infer_freq gives up: take the most common spacing, the regular step of the series.
    step = pd.Series(index[1:] - index[:-1]).mode().iloc[0]  # Timedelta, whatever the index's resolution
    if step <= pd.Timedelta(0):
        raise LstmLabError(f"{source}: cannot infer a frequency from column {name!r}")
    return pd.tseries.frequencies.to_offset(step)


FREQUENCY_EXAMPLES = "'h', 'D', 'W-SUN', 'MS', '15min' or '2D'"


def _parse_frequency(frequency: str):
    """``forecast.data.frequency`` as a pandas offset with a positive step, or one line saying why not.

    pandas nests its parse errors ("Invalid frequency: 3X. Failed to parse with error message:
    ValueError("Invalid frequency: X. Failed to parse with error message: KeyError('X')."))"): only the
    innermost reason is worth showing, and only when it says more than "unknown name" (e.g. 'M' → use 'ME').
    """
    try:
        offset = pd.tseries.frequencies.to_offset(frequency)
    except (ValueError, TypeError) as exc:
        reason = _innermost_reason(str(exc), frequency)
        detail = f" ({reason})" if reason else ""
        raise LstmLabError(
            f"forecast.data.frequency: {frequency!r} is not a pandas frequency{detail}; expected an offset alias "
            f"such as {FREQUENCY_EXAMPLES}"
        ) from None
    # '0D' or '-1D' parse, but a grid needs a forward step (pandas divides by it, or builds an empty grid).
    if offset.n <= 0:
        raise LstmLabError(
            f"forecast.data.frequency: {frequency!r} is not a forward step; expected a positive multiple such as "
            f"{FREQUENCY_EXAMPLES}"
        )
    return offset


def _innermost_reason(message: str, frequency: str) -> str:
    """The last "error message: X(...)" of a nested pandas error: ``unknown unit 'X'`` for a KeyError, the
    text of anything else; empty when it would only repeat the frequency (``'fortnight'``)."""
    last = message.rsplit("error message: ", 1)[-1] if "error message: " in message else ""
    match = re.match(r"(\w+)\((['\"])(.*?)\2\)", last)
    if match is None:
        return ""
    kind, text = match.group(1), match.group(3)
    if kind == "KeyError":
        return f"unknown unit {text!r}" if text != frequency.strip() else ""
    return re.sub(r"^Invalid frequency: [^ ]*\.\s*", "", text).rstrip(".")


def _trim_edges(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    complete = frame.notna().all(axis=1).to_numpy()
    if not complete.any():
        raise LstmLabError(f"{source}: no row has a value in every column {list(frame.columns)}")
    first, last = int(np.argmax(complete)), len(complete) - 1 - int(np.argmax(complete[::-1]))
    if first or last < len(frame) - 1:
        log.info("%s: trimmed %d leading and %d trailing incomplete row(s)", source, first, len(frame) - 1 - last)
    return frame.iloc[first : last + 1]


def _check_gaps(frame: pd.DataFrame, max_gap: int, source: str) -> None:
    for column in frame.columns:
        missing = frame[column].isna().to_numpy()
        if not missing.any():
            continue
        # Run lengths of consecutive missing values, found without a Python loop over rows.
        edges = np.diff(np.concatenate(([0], missing.astype(np.int8), [0])))
        starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        lengths = ends - starts
        worst = int(np.argmax(lengths))
        if lengths[worst] > max_gap:
            raise LstmLabError(
                f"{source}: column {column!r} has a gap of {lengths[worst]} missing step(s) starting at "
                f"{frame.index[starts[worst]]}; forecast.data.max_gap allows at most {max_gap}"
            )


# --------------------------------------------------------------------------------------------------------------
# Chronological split
# --------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SplitBounds:
    """Row boundaries of a chronological split: train [0, train_end), val [train_end, val_end),
    test [val_end, test_end). Rows from test_end on are unused (as in the ETT protocol)."""

    train_end: int
    val_end: int
    test_end: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    def span(self, split: str) -> tuple[int, int]:
        return {
            "train": (0, self.train_end),
            "val": (self.train_end, self.val_end),
            "test": (self.val_end, self.test_end),
        }[split]


def split_bounds(
    index: pd.DatetimeIndex,
    *,
    fractions: tuple[float, float, float] | None = None,
    rows: tuple[int, int, int] | None = None,
    times: tuple[str, str, str | None] | None = None,
) -> SplitBounds:
    """Chronological boundaries from fractions, explicit row numbers, or explicit timestamps (exactly one).

    ``times`` are exclusive ends: ``("2017-07-01", "2017-11-01", "2018-03-01")`` puts rows before
    2017-07-01 in train. A ``None`` test end means "to the last row".
    """
    n = len(index)
    if sum(x is not None for x in (fractions, rows, times)) != 1:
        raise LstmLabError("forecast.split: give exactly one of fractions, rows or times")
    if fractions is not None:
        train, val, test = fractions
        train_end = int(np.floor(n * train))
        val_end = train_end + int(np.floor(n * val))
        test_end = n if abs(train + val + test - 1.0) < 1e-9 else val_end + int(np.floor(n * test))
    elif rows is not None:
        train_end, val_end, test_end = rows
    else:
        ends = [int(index.searchsorted(pd.Timestamp(t), side="left")) if t is not None else n for t in times]
        train_end, val_end, test_end = ends
    if not 0 < train_end < val_end < test_end <= n:
        raise LstmLabError(
            f"forecast.split: boundaries train_end={train_end}, val_end={val_end}, test_end={test_end} must satisfy "
            f"0 < train_end < val_end < test_end <= {n} (rows in the cleaned series)"
        )
    return SplitBounds(train_end, val_end, test_end)


# --------------------------------------------------------------------------------------------------------------
# Scaling, fitted on the training rows only
# --------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StandardScaler:
    """Per-column z-normalisation; JSON-serialisable so it is saved and logged as plain text."""

    columns: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]

    @classmethod
    def fit(cls, frame: pd.DataFrame, train_end: int) -> StandardScaler:
        train = frame.iloc[:train_end].to_numpy(dtype=np.float64)  # never look past the training rows
        mean, std = train.mean(axis=0), train.std(axis=0)  # ddof=0, as scikit-learn's StandardScaler
        std = np.where(std > 0, std, 1.0)
        return cls(tuple(map(str, frame.columns)), tuple(mean.tolist()), tuple(std.tolist()))

    @classmethod
    def from_dict(cls, data: dict) -> StandardScaler:
        return cls(tuple(data["columns"]), tuple(map(float, data["mean"])), tuple(map(float, data["scale"])))

    def as_dict(self) -> dict:
        return {"columns": list(self.columns), "mean": list(self.mean), "scale": list(self.scale)}

    def _params(self, columns) -> tuple[np.ndarray, np.ndarray]:
        idx = [self.columns.index(c) for c in columns]
        return np.asarray(self.mean)[idx], np.asarray(self.scale)[idx]

    def transform(self, values: np.ndarray, columns) -> np.ndarray:
        mean, scale = self._params(columns)
        return (values - mean) / scale

    def inverse(self, values: np.ndarray, columns) -> np.ndarray:
        mean, scale = self._params(columns)
        return values * scale + mean


def scaled_inputs(frame: pd.DataFrame, scaler: StandardScaler, columns: list[str]) -> np.ndarray:
    """The model's input matrix (N, F): ``columns`` of ``frame`` z-normalised by ``scaler``, as float32 (the
    forecast task puts its targets first, so the first C columns are also its scaled targets)."""
    return scaler.transform(frame[columns].to_numpy(np.float64), columns).astype(np.float32)
