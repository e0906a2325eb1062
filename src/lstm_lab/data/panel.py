"""A panel: many series of different lengths in ONE contiguous array, split per series.

Layout. All series are concatenated row-wise into ``values`` (N, F) float32, series ``s`` owning rows
``[offsets[s], offsets[s + 1])``. Columns come in three groups, always in this order:

    targets (C) | past-only covariates (P) | future-known covariates (U)        F = C + P + U

so ``values[:, :C + P]`` is what the model sees over the lookback and ``values[:, C + P:]`` what it is told
about the horizon. Splits are per series, in LOCAL row numbers: ``bounds[s] = (train_end, val_end, test_end)``
means train ``[0, train_end)``, val ``[train_end, val_end)``, test ``[val_end, test_end)`` of series ``s``.

Nothing here loops over rows in Python: per-series quantities are (S,) arrays and per-row ones are made with
``np.repeat(per_series, lengths)``. A ``np.memmap`` can be wrapped as ``values`` without a copy, so a panel
larger than memory is indexed straight from disk. One series is simply a panel of one.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from lstm_lab.errors import LstmLabError

if TYPE_CHECKING:  # pandas is imported by the functions that read tables: a panel built from arrays (a memmap)
    import pandas as pd  # never loads it, ~60 MiB of the process (benchmarks/results/panel_scale.md)

log = logging.getLogger(__name__)

SHORT_SERIES = ("skip", "pad")


@dataclass(frozen=True, eq=False)
class Panel:
    """Series concatenated in one array; see the module docstring for the layout."""

    values: np.ndarray  # (N, F) float32, F = C + P + U; may be a np.memmap (never copied here)
    offsets: np.ndarray  # (S + 1,) int64, series s = rows [offsets[s], offsets[s + 1])
    ids: np.ndarray  # (S,) the series' ids, in order of first appearance
    target_columns: tuple[str, ...]
    past_columns: tuple[str, ...] = ()
    future_columns: tuple[str, ...] = ()
    bounds: np.ndarray | None = None  # (S, 3) int64 local (train_end, val_end, test_end); None = not split
    times: np.ndarray | None = None  # (N,) datetime64[ns] or int64 step index; None when not known
    pad: np.ndarray | None = None  # (S,) int64 leading zero rows added by pad_or_skip_short; None = no padding

    def __post_init__(self):
        v, off = self.values, np.asarray(self.offsets)
        if v.ndim != 2 or v.dtype != np.float32:
            raise LstmLabError(f"panel values: got a {v.ndim}-d {v.dtype} array; expected 2-d float32 (N, F)")
        if v.shape[1] != len(self.columns):
            raise LstmLabError(f"panel values: {v.shape[1]} column(s) but {len(self.columns)} column name(s) given")
        if off.ndim != 1 or off.size < 2 or off[0] != 0 or off[-1] != len(v) or (np.diff(off) < 1).any():
            raise LstmLabError(
                f"panel offsets: expected (S + 1,) increasing row numbers from 0 to {len(v)}, every series non-empty"
            )
        object.__setattr__(self, "offsets", off.astype(np.int64, copy=False))
        if len(self.ids) != self.n_series:
            raise LstmLabError(f"panel ids: {len(self.ids)} id(s) for {self.n_series} series")
        if self.bounds is not None:
            b = np.asarray(self.bounds, dtype=np.int64)
            ok = b.shape == (self.n_series, 3) and (b[:, 0] >= 0).all() and (np.diff(b, axis=1) >= 0).all()
            if not ok or (b[:, 2] > self.lengths).any():
                raise LstmLabError(
                    "panel bounds: expected (S, 3) local rows with 0 <= train_end <= val_end <= test_end <= length"
                )
            object.__setattr__(self, "bounds", b)
        if self.times is not None and len(self.times) != len(v):
            raise LstmLabError(f"panel times: {len(self.times)} time(s) for {len(v)} row(s)")

    # --- shapes ---------------------------------------------------------------------------------------------
    @property
    def n_series(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)  # (S,)

    @property
    def n_targets(self) -> int:
        return len(self.target_columns)

    @property
    def n_inputs(self) -> int:
        """Columns seen over the lookback: targets + past covariates (C + P)."""
        return len(self.target_columns) + len(self.past_columns)

    @property
    def n_future(self) -> int:
        return len(self.future_columns)

    @property
    def columns(self) -> tuple[str, ...]:
        return (*self.target_columns, *self.past_columns, *self.future_columns)

    def digest_parts(self) -> dict:
        """What identifies the panel's content (``training.resume``'s data digest): arrays and plain values."""
        times = None if self.times is None else self.times.view(np.int64)  # datetime64 has no buffer
        optional = {"bounds": self.bounds, "times": times, "pad": self.pad}
        return {"values": self.values, "offsets": self.offsets, "ids": [str(i) for i in self.ids],
                "columns": [list(self.target_columns), list(self.past_columns), list(self.future_columns)],
                **{k: v for k, v in optional.items() if v is not None}}

    def with_bounds(self, bounds: np.ndarray) -> Panel:
        """The same panel with per-series split boundaries (S, 3), e.g. from split_last or split_times."""
        return dataclasses.replace(self, bounds=bounds)

    # --- construction ---------------------------------------------------------------------------------------
    @classmethod
    def from_arrays(cls, values: np.ndarray, lengths, ids=None, *, target_columns, past_columns=(),
                    future_columns=(), times=None) -> Panel:
        """Wrap an existing (N, F) float32 array or np.memmap (no copy) given per-series ``lengths``."""
        offsets = np.concatenate(([0], np.cumsum(np.asarray(lengths, dtype=np.int64))))
        ids = np.arange(len(offsets) - 1) if ids is None else np.asarray(ids)
        return cls(values, offsets, ids, tuple(target_columns), tuple(past_columns), tuple(future_columns),
                   times=times)

    @classmethod
    def from_long(
        cls,
        frame: pd.DataFrame,
        id_column: str,
        time_column: str,
        target_columns: list[str],
        past_columns: list[str] = (),
        future_columns: list[str] = (),
        *,
        source: str = "panel data",
    ) -> Panel:
        """Build from a long frame (one row per id and time). Rows are sorted by (id, time), stably, ids kept in
        order of first appearance. Duplicate (id, time) pairs, an id with a single row, a non-finite target or
        past covariate and a missing future covariate are errors naming the id, the time and the column."""
        import pandas as pd

        columns = [*target_columns, *past_columns, *future_columns]
        for name in (id_column, time_column, *columns):
            if name not in frame.columns:
                raise LstmLabError(f"{source}: column {name!r} not found; columns are {list(map(str, frame.columns))}")
        if len(frame) == 0:
            raise LstmLabError(f"{source}: the table is empty; expected one row per id and time")
        if frame[id_column].isna().any():
            row = int(np.flatnonzero(frame[id_column].isna().to_numpy())[0])
            raise LstmLabError(f"{source}: column {id_column!r} row {row} has no id; expected an id on every row")
        codes, ids = pd.factorize(frame[id_column], sort=False)  # codes follow first appearance
        times = _parse_times(frame[time_column], source, time_column)  # (N,) datetime64[ns] or int64
        order = np.lexsort((times.view(np.int64), codes))  # stable: by id code, then time
        codes, times = codes[order], times[order]

        same = (codes[1:] == codes[:-1]) & (times[1:] == times[:-1])
        if same.any():
            i = int(np.flatnonzero(same)[0])
            raise LstmLabError(
                f"{source}: duplicate (id, time) pair: id {_show(ids[codes[i]])} at {time_column} {_fmt(times[i])} "
                f"appears more than once; expected one row per id and time"
            )
        counts = np.bincount(codes, minlength=len(ids))
        if (counts < 2).any():
            s = int(np.flatnonzero(counts < 2)[0])
            raise LstmLabError(f"{source}: id {_show(ids[s])} has a single row; a series needs at least 2 time steps")

        values = np.empty((len(frame), len(columns)), dtype=np.float32)  # (N, F)
        for j, name in enumerate(columns):
            values[:, j] = _parse_numbers(frame[name], source, name)[order]
        finite = np.isfinite(values)
        if not finite.all():
            i, j = (int(k[0]) for k in np.nonzero(~finite))  # first bad cell, in (id, time) order
            name, kind = columns[j], _group(j, len(target_columns), len(past_columns))
            what = "missing" if np.isnan(values[i, j]) else "infinite (or too large for float32)"
            raise LstmLabError(
                f"{source}: {kind} {name!r} is {what} at id {_show(ids[codes[i]])}, {time_column} {_fmt(times[i])}; "
                + ("future-known covariates must be given on every row" if kind == "future covariate"
                   else "expected a finite number (fill or drop gaps before building the panel)")
            )
        offsets = np.concatenate(([0], np.cumsum(counts)))
        return cls(values, offsets, np.asarray(ids), tuple(target_columns), tuple(past_columns),
                   tuple(future_columns), times=times)


def _group(j: int, n_targets: int, n_past: int) -> str:
    return "target" if j < n_targets else "past covariate" if j < n_targets + n_past else "future covariate"


def plain_list(ids: np.ndarray) -> list:
    """Series ids as ``pd.Index(ids).tolist()`` gives them (Python scalars; Timestamps for times), without
    importing pandas unless they are times."""
    ids = np.asarray(ids)
    return ids.tolist() if ids.dtype.kind not in "Mm" else __import__("pandas").Index(ids).tolist()


def _show(value) -> str:
    """A value (an id, a cell) as the user wrote it: 'A' or 17, not np.int64(17)."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def _fmt(time) -> str:
    import pandas as pd
    return str(pd.Timestamp(time)) if isinstance(time, np.datetime64) else str(int(time))


def _parse_times(column: pd.Series, source: str, name: str) -> np.ndarray:
    """Integer step indices (M4-style) stay int64; anything else is parsed as a timestamp."""
    import pandas as pd

    if pd.api.types.is_integer_dtype(column):
        return column.to_numpy(np.int64)
    if pd.api.types.is_float_dtype(column):  # steps read as floats (a gap made the column float): whole numbers only
        steps = column.to_numpy(np.float64)
        bad = ~np.isfinite(steps) | (steps != np.round(steps))
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            value = _show(column.iloc[row])
            raise LstmLabError(f"{source}: column {name!r} row {row}: {value} is not a whole time step")
        return steps.astype(np.int64)
    parsed = pd.to_datetime(column, errors="coerce")
    if parsed.isna().any():
        row = int(np.flatnonzero(parsed.isna().to_numpy())[0])
        raise LstmLabError(f"{source}: column {name!r} row {row}: {column.iloc[row]!r} is not a date/time")
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    return parsed.to_numpy("datetime64[ns]")


def _parse_numbers(column: pd.Series, source: str, name: str) -> np.ndarray:
    import pandas as pd

    numbers = pd.to_numeric(column, errors="coerce")
    bad = numbers.isna() & column.notna()  # present but not a number ('n/a', 'abc'); NaN is checked per group
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise LstmLabError(f"{source}: column {name!r} row {row}: {column.iloc[row]!r} is not a number")
    return numbers.to_numpy(np.float64)


# --------------------------------------------------------------------------------------------------------------
# Per-series splits
# --------------------------------------------------------------------------------------------------------------
def split_last(lengths: np.ndarray, val_steps: int, test_steps: int) -> np.ndarray:
    """(S, 3) bounds: the last ``test_steps`` rows of each series are test, the ``val_steps`` before them val, the
    rest train (neuralforecast's convention). A series too short for that gets an empty (0-row) train part,
    which pad_or_skip_short then drops."""
    if val_steps < 0 or test_steps < 0:
        raise LstmLabError(f"forecast.split: val_steps={val_steps}, test_steps={test_steps}; expected >= 0")
    n = np.asarray(lengths, dtype=np.int64)  # (S,)
    val_end = np.maximum(n - test_steps, 0)
    train_end = np.maximum(val_end - val_steps, 0)
    return np.stack([train_end, val_end, n], axis=1)  # (S, 3)


def split_times(times: np.ndarray, offsets: np.ndarray, train_end, val_end, test_end=None) -> np.ndarray:
    """(S, 3) bounds from timestamps (or step numbers) shared by the panel: exclusive ends, so rows before
    ``train_end`` are train; ``test_end=None`` means to the end of each series."""
    times = np.asarray(times)
    ends = [train_end, val_end, test_end]
    if not all(a is None or b is None or _as_time(a, times) < _as_time(b, times) for a, b in zip(ends, ends[1:])):
        raise LstmLabError(f"forecast.split: times {ends} must increase (train_end < val_end < test_end)")
    columns = []
    for end in ends:
        if end is None:
            columns.append(np.diff(offsets))
        else:  # rows of each series before `end` (times are sorted within a series, no series is empty)
            columns.append(np.add.reduceat(times < _as_time(end, times), offsets[:-1], dtype=np.int64))
    return np.stack(columns, axis=1).astype(np.int64)  # (S, 3)


def _as_time(value, times: np.ndarray):
    import pandas as pd

    return np.datetime64(pd.Timestamp(value), "ns") if times.dtype.kind == "M" else np.int64(value)


# --------------------------------------------------------------------------------------------------------------
# Series too short to train on
# --------------------------------------------------------------------------------------------------------------
def pad_or_skip_short(panel: Panel, lookback: int, horizon: int, short_series: str = "skip") -> Panel:
    """Make every series' train part hold at least one window of ``lookback + horizon`` rows.

    ``skip`` drops the short series; ``pad`` left-pads each with zeros to exactly ``lookback + horizon`` train
    rows and records the count in ``panel.pad`` (the windows then carry a mask). A series whose train part
    cannot hold ``horizon`` real targets after at least one real input row is dropped in both modes. Both log
    how many series they touched.
    With nothing to change the panel is returned as it is (a memmap stays a memmap); otherwise the kept rows
    are copied into a new in-memory array.
    """
    if short_series not in SHORT_SERIES:
        raise LstmLabError(f"forecast.data.short_series: {short_series!r}; expected one of {list(SHORT_SERIES)}")
    if panel.bounds is None:
        raise LstmLabError("panel: no split boundaries; call with_bounds(split_last(...) or split_times(...)) first")
    need = lookback + horizon
    n_train = panel.bounds[:, 0]  # (S,)
    least = need if short_series == "skip" else horizon + 1  # pad: H real targets + at least one real input
    keep = n_train >= least
    pad = np.where(keep, np.maximum(need - n_train, 0), 0) if short_series == "pad" else np.zeros_like(n_train)
    if not keep.all():
        log.info("panel: dropped %d of %d series with fewer than %d training rows", int((~keep).sum()),
                 panel.n_series, least)
    if short_series == "pad" and pad.any():
        log.info("panel: left-padded %d series with zeros to %d training rows", int((pad > 0).sum()), need)
    if keep.all() and not pad.any():
        return panel if short_series == "skip" or panel.pad is not None else dataclasses.replace(panel, pad=pad)
    if not keep.any():
        raise LstmLabError(
            f"panel: no series has {need} training rows (lookback {lookback} + horizon {horizon}); "
            f"use a smaller lookback/horizon or fewer validation/test steps"
        )

    lengths, pad = panel.lengths[keep], pad[keep]  # (K,)
    src = ragged_rows(panel.offsets[:-1][keep], lengths)  # (M,) rows of the kept series, in order
    new_offsets = np.concatenate(([0], np.cumsum(lengths + pad)))
    dst = np.arange(len(src)) + np.repeat(np.cumsum(pad), lengths)  # (M,) each row shifted by the padding so far
    values = np.zeros((new_offsets[-1], panel.values.shape[1]), dtype=np.float32)
    values[dst] = panel.values[src]
    times = None
    if panel.times is not None:  # padded rows repeat their series' first time: they are masked out anyway
        times = np.repeat(panel.times[panel.offsets[:-1][keep]], lengths + pad)
        times[dst] = panel.times[src]
    return dataclasses.replace(
        panel, values=values, offsets=new_offsets, ids=panel.ids[keep], bounds=panel.bounds[keep] + pad[:, None],
        times=times, pad=pad if short_series == "pad" else None,
    )


def ragged_rows(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(starts[k], starts[k] + lengths[k])`` over k, without a Python loop."""
    starts, lengths = np.asarray(starts, np.int64), np.asarray(lengths, np.int64)
    firsts = np.cumsum(lengths) - lengths  # position of each segment's first row in the output
    return np.arange(lengths.sum()) + np.repeat(starts - firsts, lengths)
