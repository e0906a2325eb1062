"""Lazy sliding windows over a panel, and the forecast origins at the end of each series.

A window is (series s, row t of its first target), as in ``windowing.py``: inputs are rows ``[t - L, t)``,
targets ``[t, t + H)``, both inside series ``s``. In split ``[a, b)`` of a series the targets stay inside
``[a, b)`` while the inputs may reach back into the previous split. Windows are never materialised, nor even
listed: per series we keep the global row of its first window and the cumulative window count (S + 1), and a
flat index ``i`` is mapped back with one ``np.searchsorted`` per batch:

    s = searchsorted(cum, i, 'right') - 1        t = first_row[s] + (i - cum[s]) * stride

so the index costs O(S) memory, whatever the number of windows. A batch reads rows ``[t - L, t + H)`` of
``values`` → (B, L + H, F) in one go (``residency.read_windows``: one fancy index, or for a np.memmap reads from
its file that map nothing into the process), then cuts them into the model's tensors. Training on a panel
larger than memory holds O(batch) of it, not every page it has drawn from.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np
import torch

from lstm_lab.data.panel import Panel, _fmt, _parse_numbers, _parse_times, _show
from lstm_lab.data.residency import read_windows, release
from lstm_lab.data.windowing import already_batched
from lstm_lab.errors import LstmLabError

if TYPE_CHECKING:  # imported where a table is read (as in panel.py)
    import pandas as pd

log = logging.getLogger(__name__)

__all__ = ["ForecastOrigins", "PanelWindows", "WindowsAt", "already_batched", "future_for_origins"]

SPLITS = ("train", "val", "test")


def split_spans(panel: Panel, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Local ``[a, b)`` of ``split`` in every series: two (S,) arrays."""
    if panel.bounds is None:
        raise LstmLabError("panel: no split boundaries; call with_bounds(split_last(...) or split_times(...)) first")
    if split not in SPLITS:
        raise LstmLabError(f"panel windows: split {split!r}; expected one of {list(SPLITS)}")
    k = SPLITS.index(split)
    a = panel.bounds[:, k - 1] if k else np.zeros(panel.n_series, dtype=np.int64)
    return a, panel.bounds[:, k]


class PanelWindows(torch.utils.data.Dataset):
    """Map-style dataset of every window of one split, over all series of a panel.

    A batch (``__getitems__``, use with ``collate_fn=already_batched``) is a dict:
        x       (B, L, C + P)  targets and past covariates over the lookback
        future  (B, H, U)      future-known covariates over the horizon (U may be 0)
        y       (B, H, C)      targets over the horizon
        series  (B,)           int64 series index into ``panel.ids`` (for an id embedding)
        mask    (B, L)         bool, True on real rows; only when the panel was padded (``panel.pad``)
    """

    def __init__(self, panel: Panel, split: str, lookback: int, horizon: int, stride: int = 1):
        if lookback < 1 or horizon < 1 or stride < 1:
            raise LstmLabError(f"panel windows: lookback={lookback}, horizon={horizon}, stride={stride}; expected >= 1")
        self.panel, self.split = panel, split
        self.lookback, self.horizon, self.stride = lookback, horizon, stride
        a, b = split_spans(panel, split)  # (S,), (S,)
        pad = panel.pad if panel.pad is not None else 0
        first = np.maximum(a, np.maximum(lookback, pad))  # first target row: full lookback, real targets
        last = b - horizon  # last target row whose horizon fits in the split
        counts = np.where(last >= first, (last - first) // stride + 1, 0)  # (S,) windows per series
        self.first_row = panel.offsets[:-1] + first  # (S,) global row of each series' first window
        self.cum = np.concatenate(([0], np.cumsum(counts)))  # (S + 1,) windows before series s

    @property
    def index_nbytes(self) -> int:
        """Memory of the window index: O(S), never O(windows)."""
        return self.first_row.nbytes + self.cum.nbytes

    def __len__(self) -> int:
        return int(self.cum[-1])

    def locate(self, indices) -> tuple[np.ndarray, np.ndarray]:
        """Flat window indices → (series (B,), global row of the first target (B,))."""
        i = np.asarray(indices, dtype=np.int64)  # (B,)
        if i.size and (i.min() < 0 or i.max() >= len(self)):
            raise IndexError(f"window index out of range 0..{len(self) - 1}")
        s = np.searchsorted(self.cum, i, side="right") - 1  # (B,)
        return s, self.first_row[s] + (i - self.cum[s]) * self.stride

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {k: v[0] for k, v in self.__getitems__([i]).items()}

    def __getitems__(self, indices) -> dict[str, torch.Tensor]:
        return self.batch(*self.locate(indices))

    def batch(self, s: np.ndarray, t: np.ndarray) -> dict[str, torch.Tensor]:
        """The batch of windows of series ``s`` (B,) whose first target is global row ``t`` (B,)."""
        L, H, C, CP = self.lookback, self.horizon, self.panel.n_targets, self.panel.n_inputs
        window = read_windows(self.panel.values, t - L, L + H)  # (B, L + H, F); a memmap: from its file
        batch = {
            "x": torch.from_numpy(np.ascontiguousarray(window[:, :L, :CP])),  # (B, L, C + P)
            "future": torch.from_numpy(np.ascontiguousarray(window[:, L:, CP:])),  # (B, H, U)
            "y": torch.from_numpy(np.ascontiguousarray(window[:, L:, :C])),  # (B, H, C)
            "series": torch.from_numpy(s),  # (B,)
        }
        if self.panel.pad is not None:
            local = (t - self.panel.offsets[s] - L)[:, None] + np.arange(L)  # (B, L) local row of each input
            batch["mask"] = torch.from_numpy(local >= self.panel.pad[s][:, None])  # (B, L)
        return batch


class WindowsAt(PanelWindows):
    """Windows at given origins rather than all of a split: series ``series`` (N,), first target at global row
    ``rows`` (N,) (a backtest's cut-offs). The caller keeps inputs and targets inside each series."""

    def __init__(self, panel: Panel, series: np.ndarray, rows: np.ndarray, lookback: int, horizon: int):
        self.panel, self.split, self.lookback, self.horizon, self.stride = panel, "given", lookback, horizon, 1
        self.series = np.asarray(series, dtype=np.int64)
        self.rows = np.asarray(rows, dtype=np.int64)
        local = self.rows - panel.offsets[self.series]
        if len(self.rows) and ((local < lookback).any() or (local + horizon > panel.lengths[self.series]).any()):
            raise LstmLabError("panel windows: an origin leaves its series (needs lookback rows before it and "
                               "horizon rows from it)")

    @property
    def index_nbytes(self) -> int:
        return self.series.nbytes + self.rows.nbytes

    def __len__(self) -> int:
        return len(self.rows)

    def locate(self, indices) -> tuple[np.ndarray, np.ndarray]:
        i = np.asarray(indices, dtype=np.int64)
        return self.series[i], self.rows[i]


class ForecastOrigins(torch.utils.data.Dataset):
    """One item per series: its last ``lookback`` rows, to forecast the ``horizon`` steps after its end.

    ``future`` (S, H, U) holds the future-known covariates of those steps, in ``panel.ids`` order (see
    ``future_for_origins``); it may be omitted when U = 0. Batches are dicts like PanelWindows' without ``y``;
    ``mask`` (B, L) is there when the panel was padded or a series is shorter than the lookback (its missing
    rows are zeros, masked out).
    """

    def __init__(self, panel: Panel, lookback: int, horizon: int, future: np.ndarray | None = None):
        if future is None:
            if panel.n_future:
                raise LstmLabError(
                    f"forecast origins: the panel has future covariates {list(panel.future_columns)}; "
                    f"give their values for the {horizon} steps after each series"
                )
            future = np.zeros((panel.n_series, horizon, 0), dtype=np.float32)
        expected = (panel.n_series, horizon, panel.n_future)
        if tuple(future.shape) != expected:
            raise LstmLabError(
                f"forecast origins: future covariates of shape {tuple(future.shape)}; expected {expected} (S, H, U)"
            )
        self.panel, self.lookback, self.horizon = panel, lookback, horizon
        self.future = torch.as_tensor(np.asarray(future, dtype=np.float32))  # (S, H, U)
        self.has_mask = panel.pad is not None or bool((panel.lengths < lookback).any())

    def __len__(self) -> int:
        return self.panel.n_series

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {k: v[0] for k, v in self.__getitems__([i]).items()}

    def __getitems__(self, indices) -> dict[str, torch.Tensor]:
        s = np.asarray(indices, dtype=np.int64)  # (B,)
        L, panel = self.lookback, self.panel
        local = (panel.lengths[s] - L)[:, None] + np.arange(L)  # (B, L) local rows; < 0 before the series starts
        real = local >= (panel.pad[s][:, None] if panel.pad is not None else 0)  # (B, L)
        rows = panel.offsets[s][:, None] + np.maximum(local, 0)  # (B, L) clipped into the series
        x = np.asarray(panel.values[rows])[:, :, : panel.n_inputs] * real[:, :, None]  # (B, L, C + P)
        release(panel.values)
        batch = {
            "x": torch.from_numpy(x.astype(np.float32, copy=False)),
            "future": self.future[torch.from_numpy(s)],  # (B, H, U)
            "series": torch.from_numpy(s),
        }
        if self.has_mask:
            batch["mask"] = torch.from_numpy(real)
        return batch


def future_for_origins(
    frame: pd.DataFrame, panel: Panel, id_column: str, time_column: str, horizon: int, *, source: str = "future data",
    columns: list[str] | None = None,
) -> np.ndarray:
    """The (S, H, U) future covariates for ForecastOrigins from a long frame (id, time, future columns).

    Every id of the panel needs exactly ``horizon`` rows, all after its series' last time (when the panel
    knows its times), without missing values. Ids the panel does not have (e.g. dropped as too short) are
    ignored, with a logged count.
    """
    import pandas as pd

    columns = list(panel.future_columns if columns is None else columns)
    for name in (id_column, time_column, *columns):
        if name not in frame.columns:
            raise LstmLabError(f"{source}: column {name!r} not found; columns are {list(map(str, frame.columns))}")
    series = pd.Index(panel.ids).get_indexer(frame[id_column])  # (N,) -1 for ids not in the panel
    known = series >= 0
    if not known.all():
        log.info("%s: ignored %d row(s) of ids not in the panel", source, int((~known).sum()))
    series = series[known]
    times = _parse_times(frame[time_column][known], source, time_column)
    order = np.lexsort((times.view(np.int64), series))
    series, times = series[order], times[order]

    same = (series[1:] == series[:-1]) & (times[1:] == times[:-1])
    if same.any():
        i = int(np.flatnonzero(same)[0])
        raise LstmLabError(
            f"{source}: duplicate (id, time) pair: id {_show(panel.ids[series[i]])} at {time_column} {_fmt(times[i])} "
            f"appears more than once"
        )
    counts = np.bincount(series, minlength=panel.n_series)
    if (counts != horizon).any():
        s = int(np.flatnonzero(counts != horizon)[0])
        raise LstmLabError(
            f"{source}: id {_show(panel.ids[s])} has {counts[s]} row(s); expected {horizon} (the forecast horizon)"
        )
    values = np.empty((len(series), len(columns)), dtype=np.float32)  # (S * H, U)
    for j, name in enumerate(columns):
        values[:, j] = _parse_numbers(frame[name][known], source, name)[order]
    bad = ~np.isfinite(values)
    if bad.any():
        i, j = (int(k[0]) for k in np.nonzero(bad))
        raise LstmLabError(
            f"{source}: future covariate {columns[j]!r} is missing at id {_show(panel.ids[series[i]])}, "
            f"{time_column} {_fmt(times[i])}; expected a value for each of the {horizon} forecast steps"
        )
    firsts = np.arange(panel.n_series) * horizon  # (S,) each series' first future row
    if panel.times is not None and panel.times.dtype == times.dtype:
        last = panel.times[panel.offsets[1:] - 1]  # (S,) each series' last time
        early = times[firsts] <= last
        if early.any():
            s = int(np.flatnonzero(early)[0])
            raise LstmLabError(
                f"{source}: id {_show(panel.ids[s])} starts at {time_column} {_fmt(times[firsts[s]])}, not after the "
                f"series' last time {_fmt(last[s])}; expected the {horizon} steps after the end of each series"
            )
    return values.reshape(panel.n_series, horizon, len(columns))
