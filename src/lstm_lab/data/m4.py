"""M4 competition files: the wide CSV layout read into a long ``id, t, y`` frame, and back for submissions.

The M4 files (Makridakis et al., "The M4 Competition: 100,000 time series and 61 forecasting methods", IJF 2020)
have one row per series: column ``V1`` holds the id (``H1``, ``D4227`` ...), ``V2`` onwards the values, oldest
first. Series have different lengths, so shorter rows are padded on the right with empty cells. There are no
timestamps; ``t`` is the step index from 0, and ``M4_GROUPS[group].freq`` is a pandas alias for building a
synthetic calendar from it (:func:`m4_time_index`) where a tool insists on dates.

The test files have the same layout with exactly ``horizon`` values in every row (``read_m4_test``); the
submission layout is ``id, F1..FH`` (``m4_long_to_wide``).
"""

from __future__ import annotations

import warnings
from os import PathLike
from typing import NamedTuple

import numpy as np
import pandas as pd

from lstm_lab.errors import LstmLabError


class M4Group(NamedTuple):
    horizon: int  # forecast steps the competition asked for
    seasonality: int  # m: periods per season used by MASE, sNaive and Naive2
    freq: str  # pandas alias for a synthetic time index
    lookback: int  # this project's default input window (2 years / 4 years / 3 years / 1 year / 4 weeks / 1 week)
    # lookback rows per LSTM step (panel.fold) by default: a day of hours for Hourly, the one group it was measured
    # on (benchmarks/results/m4_hourly_variants.md); one row per step elsewhere
    fold: int = 1


M4_GROUPS: dict[str, M4Group] = {
    "Yearly": M4Group(6, 1, "YS", 12),
    "Quarterly": M4Group(8, 4, "QS", 16),
    "Monthly": M4Group(18, 12, "MS", 36),
    "Weekly": M4Group(13, 1, "W", 52),
    "Daily": M4Group(14, 1, "D", 28),
    "Hourly": M4Group(48, 24, "h", 168, fold=24),
}


def m4_group(name: str) -> M4Group:
    """The group's horizon, seasonality and frequency; an unknown name is a one-line error."""
    if name not in M4_GROUPS:
        raise LstmLabError(f"M4 group {name!r} is unknown; expected one of {', '.join(M4_GROUPS)}")
    return M4_GROUPS[name]


def read_m4_wide(path: str | PathLike, group: str | None = None) -> pd.DataFrame:
    """A wide M4 file as a long frame ``id`` (str), ``t`` (int64, 0..n-1 per series), ``y`` (float64).

    Series keep the file's order; trailing empty cells are dropped. A gap inside a series, a non-numeric or
    infinite cell, a missing or duplicate id, or a series with fewer than 2 values is a one-line error naming the
    file, the id and the column. With ``group`` ("Hourly" ...) every id must start with the group's letter (M4
    ids are ``H1``, ``D1`` ...), which catches a file read as the wrong group; ``frame.attrs["m4_group"]`` is
    set either way (None without one).
    """
    ids, values, columns = _read_wide(path)
    lengths = _lengths(values)
    _check_series(path, ids, values, lengths, columns, group)
    mask = np.arange(values.shape[1])[None, :] < lengths[:, None]
    offsets = np.repeat(np.cumsum(lengths) - lengths, lengths)
    frame = pd.DataFrame({
        "id": pd.Series(np.repeat(ids, lengths), dtype=object),
        "t": np.arange(int(lengths.sum()), dtype=np.int64) - offsets,
        "y": values[mask],  # row-major: series by series, oldest value first
    })
    frame.attrs["m4_group"] = group
    return frame


def read_m4_test(path: str | PathLike, group: str | None = None, *, horizon: int | None = None,
                 train: pd.DataFrame | None = None) -> pd.DataFrame:
    """An M4 test file (same layout, exactly ``horizon`` values a row) as a long ``id, t, y`` frame.

    ``horizon`` defaults to the group's, else to the number of value columns in the file; a row with another
    number of values is an error naming the file, id and first missing column. ``t`` counts forecast steps from 0
    (t = k-1 is ``Fk``); with ``train`` (a frame from :func:`read_m4_wide`) the ids must be the same, in the same
    order, and ``t`` continues each series' training index instead.
    """
    if horizon is None and group is not None:
        horizon = m4_group(group).horizon
    ids, values, columns = _read_wide(path)
    horizon = values.shape[1] if horizon is None else int(horizon)
    if values.shape[1] < horizon:
        raise LstmLabError(f"{path}: has {values.shape[1]} value columns; expected {horizon} (the horizon)")
    lengths = _lengths(values)
    short = np.flatnonzero(lengths != horizon)
    if short.size:
        i = int(short[0])
        raise LstmLabError(f"{path}: id {ids[i]!r} has {lengths[i]} values; expected exactly {horizon} "
                           f"(columns {columns[0]}..{columns[horizon - 1]})")
    _check_series(path, ids, values, lengths, columns, group)
    frame = pd.DataFrame({
        "id": pd.Series(np.repeat(ids, horizon), dtype=object),
        "t": np.tile(np.arange(horizon, dtype=np.int64), len(ids)),
        "y": values[:, :horizon].reshape(-1),
    })
    if train is not None:
        train_ids = pd.unique(train["id"])
        if len(train_ids) != len(ids) or not np.array_equal(train_ids.astype(object), ids):
            pos = next((k for k, (a, b) in enumerate(zip(train_ids, ids)) if a != b), min(len(ids), len(train_ids)))
            got = ids[pos] if pos < len(ids) else "(end of file)"
            want = train_ids[pos] if pos < len(train_ids) else "(no more training series)"
            raise LstmLabError(f"{path}: row {pos + 1} has id {got!r}; expected {want!r}, the training file's "
                               f"series in the same order")
        start = train.groupby("id", sort=False)["t"].max().to_numpy() + 1
        frame["t"] += np.repeat(start.astype(np.int64), horizon)
    frame.attrs["m4_group"] = group
    return frame


def m4_long_to_wide(frame: pd.DataFrame, horizon: int, *, value: str = "y") -> pd.DataFrame:
    """The submission layout ``id, F1..FH``: one row per id (first-seen order), its ``horizon`` rows by ``t``.

    Each id needs exactly ``horizon`` rows with consecutive ``t`` (from any start: 0..H-1, or continuing the
    training index) and finite values; anything else is a one-line error naming the id.
    """
    for name in ("id", "t", value):
        if name not in frame.columns:
            raise LstmLabError(f"m4_long_to_wide: column {name!r} missing; expected columns id, t, {value}")
    ordered = frame.sort_values(["t"], kind="stable")
    ids = pd.unique(frame["id"])
    counts = ordered.groupby("id", sort=False).size().reindex(ids)
    if (bad := counts[counts != horizon]).size:
        raise LstmLabError(f"m4_long_to_wide: id {bad.index[0]!r} has {int(bad.iloc[0])} rows; expected {horizon}")
    position = {key: k for k, key in enumerate(ids)}
    ordered = ordered.assign(_row=ordered["id"].map(position)).sort_values(["_row", "t"], kind="stable")
    steps = ordered["t"].to_numpy(np.int64).reshape(len(ids), horizon)
    if (gap := np.flatnonzero((np.diff(steps, axis=1) != 1).any(axis=1))).size:
        raise LstmLabError(f"m4_long_to_wide: id {ids[gap[0]]!r} has t {steps[gap[0]].tolist()}; expected "
                           f"{horizon} consecutive steps")
    values = pd.to_numeric(ordered[value], errors="coerce").to_numpy(np.float64).reshape(len(ids), horizon)
    if (bad_rows := np.flatnonzero(~np.isfinite(values).all(axis=1))).size:
        row = int(bad_rows[0])
        step = int(np.flatnonzero(~np.isfinite(values[row]))[0])
        raise LstmLabError(f"m4_long_to_wide: id {ids[row]!r} F{step + 1}: {float(values[row, step])} in column "
                           f"{value!r}; expected a finite number")
    wide = pd.DataFrame(values, columns=[f"F{k + 1}" for k in range(horizon)])
    wide.insert(0, "id", pd.Series(ids, dtype=object))
    return wide


def long_to_padded(frame: pd.DataFrame, *, value: str = "y") -> tuple[np.ndarray, np.ndarray]:
    """``(ids (S,), values (S, N))``: each id's values by ``t`` in a row, NaN-padded on the right to the longest
    series (what ``lstm_lab.evaluation.m4`` takes as in-sample data)."""
    ordered = frame.assign(_row=frame.groupby("id", sort=False).ngroup()).sort_values(["_row", "t"], kind="stable")
    rows = ordered["_row"].to_numpy()
    lengths = np.bincount(rows)
    cols = np.arange(len(rows)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    out = np.full((len(lengths), int(lengths.max(initial=0))), np.nan)
    out[rows, cols] = ordered[value].to_numpy(np.float64)
    return pd.unique(frame["id"]).astype(object), out


def m4_time_index(steps: np.ndarray | pd.Series, group: str, start: str = "2000-01-01") -> pd.DatetimeIndex:
    """A synthetic calendar for the step index ``t``: ``start`` + t steps of the group's frequency."""
    steps = np.asarray(steps, dtype=np.int64)
    calendar = pd.date_range(start, periods=int(steps.max(initial=-1)) + 1, freq=m4_group(group).freq)
    return pd.DatetimeIndex(calendar[steps])


# --------------------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------------------
def _read_wide(path: str | PathLike) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``(ids, values (S, N) float64 with NaN for empty cells, value column names)``."""
    try:
        with warnings.catch_warnings():  # rows wider than the header: pandas warns and drops cells; refuse
            warnings.simplefilter("error", pd.errors.ParserWarning)
            raw = pd.read_csv(path, dtype={0: str}, keep_default_na=False, na_values=[""], index_col=False,
                              low_memory=False)
    except FileNotFoundError:
        raise LstmLabError(f"{path}: file not found") from None
    except (pd.errors.ParserError, pd.errors.ParserWarning, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        detail = " ".join(str(exc).split())
        raise LstmLabError(f"{path}: not a readable M4 wide CSV ({detail}); expected a header V1,V2,... and one "
                           f"row per series") from None
    if raw.shape[1] < 2:
        raise LstmLabError(f"{path}: has {raw.shape[1]} column(s); expected an id column V1 then value columns")
    id_col = raw.columns[0]
    ids = raw[id_col]
    if (missing := np.flatnonzero(ids.isna().to_numpy())).size:
        raise LstmLabError(f"{path}: row {int(missing[0]) + 1}: column {id_col!r} is empty; expected a series id")
    ids = ids.astype(str).str.strip().to_numpy(dtype=object)
    body = raw.iloc[:, 1:]
    columns = [str(c) for c in body.columns]
    text_columns = [k for k, dtype in enumerate(body.dtypes) if not pd.api.types.is_numeric_dtype(dtype)]
    if text_columns:  # a column with a non-numeric cell came back as text: find the first such cell
        body = body.copy()
        for k in text_columns:
            col = body.iloc[:, k]
            numbers = pd.to_numeric(col, errors="coerce")
            bad = numbers.isna().to_numpy() & col.notna().to_numpy()
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                raise LstmLabError(f"{path}: id {ids[row]!r} column {columns[k]!r}: {col.iloc[row]!r} is not a "
                                   f"number")
            body[body.columns[k]] = numbers
    values = body.to_numpy(dtype=np.float64, na_value=np.nan)
    if np.isinf(values).any():
        row, k = (int(v[0]) for v in np.nonzero(np.isinf(values)))
        raise LstmLabError(f"{path}: id {ids[row]!r} column {columns[k]!r}: {values[row, k]} is infinite; expected "
                           f"a finite number")
    return ids, values, columns


def _lengths(values: np.ndarray) -> np.ndarray:
    """(S,) number of cells up to and including each row's last non-empty one."""
    present = ~np.isnan(values)
    last_from_end = np.argmax(present[:, ::-1], axis=1)
    return np.where(present.any(axis=1), values.shape[1] - last_from_end, 0).astype(np.int64)


def _check_series(path, ids: np.ndarray, values: np.ndarray, lengths: np.ndarray, columns: list[str],
                  group: str | None) -> None:
    duplicated = pd.Series(ids).duplicated().to_numpy()
    if duplicated.any():
        row = int(np.flatnonzero(duplicated)[0])
        first = int(np.flatnonzero(ids == ids[row])[0])
        raise LstmLabError(f"{path}: id {ids[row]!r} appears again in row {row + 1} (first in row {first + 1}); "
                           f"expected each series once")
    short = np.flatnonzero(lengths < 2)
    if short.size:
        row = int(short[0])
        raise LstmLabError(f"{path}: id {ids[row]!r} has {lengths[row]} value(s) in columns {columns[0]}.. ; "
                           f"expected at least 2")
    inside = np.isnan(values) & (np.arange(values.shape[1])[None, :] < lengths[:, None])
    if inside.any():
        row = int(np.flatnonzero(inside.any(axis=1))[0])
        k = int(np.flatnonzero(inside[row])[0])
        raise LstmLabError(f"{path}: id {ids[row]!r} column {columns[k]!r} is empty inside the series (it has "
                           f"values up to {columns[lengths[row] - 1]}); expected no gaps, padding only at the end")
    if group is not None:
        m4_group(group)  # an unknown group name is an error too
        letter = group[0]
        wrong = np.flatnonzero(~pd.Series(ids).str.startswith(letter).to_numpy())
        if wrong.size:
            raise LstmLabError(f"{path}: id {ids[wrong[0]]!r} (row {int(wrong[0]) + 1}) is not a {group} series; "
                               f"expected ids starting with {letter!r}")
