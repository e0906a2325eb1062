"""Per-series scaling of a panel, fitted on each series' training rows only, and per-window normalisation.

``PanelScaler`` keeps one (center, scale) pair per series and column as (S, K) arrays:

    standard   center = mean,   scale = std (ddof 0)          a constant series gets scale 1
    robust     center = median, scale = IQR (q75 - q25)        an IQR of 0 gets scale 1
    mase       center = mean,   scale = mean |v_t - v_(t-m)|   the MASE scale: the pinball loss then weighs
                                                               series as MASE and MSIS do (m = ``season``)
    mean_abs   center = 0,      scale = mean |v|               for differences: zero keeps meaning "no change"

Statistics come from the rows ``[pad, train_end)`` of each series, never from val/test. The panel is
processed in blocks of whole series (at most ``max_rows`` rows each) so that a memmapped panel never needs a
full-size temporary, and each block's pages are handed back once done (``residency.release``); inside a block
everything is vectorised: per-series sums with ``np.add.reduceat``, per-series quantiles by sorting on (series,
value), per-row statistics with ``np.repeat(stats, lengths)``.
The state (method, columns, ids, stats) is plain JSON for a checkpoint.

``window_normalise`` is the other option: values relative to the last (or mean) lookback value of each
window, undone by ``window_restore`` after the model. It works on a batch and needs no fitted state.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from lstm_lab.data.panel import Panel, _show, plain_list, ragged_rows
from lstm_lab.data.residency import release
from lstm_lab.errors import LstmLabError

METHODS = ("standard", "robust", "mase", "mean_abs")
WINDOW_NORMS = ("none", "window_last", "window_mean")
MAX_ROWS = 1 << 19  # rows per block: 4 MiB per float64 column, each block's temporaries ~30 MiB in all


def series_blocks(sizes: np.ndarray, max_rows: int = MAX_ROWS):
    """Consecutive series ranges ``[s0, s1)`` of at most ``max_rows`` rows (a longer single series alone)."""
    cum = np.cumsum(sizes)
    start = 0
    while start < len(sizes):
        base = cum[start - 1] if start else 0
        stop = max(int(np.searchsorted(cum, base + max_rows, side="right")), start + 1)
        yield start, stop
        start = stop


def ragged_quantile(ordered: np.ndarray, firsts: np.ndarray, n: np.ndarray, q: float) -> np.ndarray:
    """Quantile ``q`` of each sorted segment ``ordered[firsts[k] : firsts[k] + n[k]]`` (numpy's 'linear')."""
    pos = q * (n - 1)  # (K,) fractional position inside each segment
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, n - 1)
    low, high = ordered[firsts + lo], ordered[firsts + hi]  # (K, ...)
    frac = (pos - lo).reshape(-1, *([1] * (ordered.ndim - 1)))
    return low + (high - low) * frac


@dataclass(frozen=True, eq=False)
class PanelScaler:
    """Per-series, per-column affine scaling ``(v - center) / scale``; the columns start with the targets."""

    method: str
    ids: tuple  # (S,) series ids, the row order of center/scale
    columns: tuple[str, ...]  # (K,) scaled columns: the targets, then any covariates asked for
    center: np.ndarray  # (S, K) float64
    scale: np.ndarray  # (S, K) float64, > 0

    @classmethod
    def fit(cls, panel: Panel, method: str = "standard", covariates=(), max_rows: int = MAX_ROWS,
            season: int = 1) -> PanelScaler:
        """Fit on the training rows of every series; ``covariates`` names past/future columns to scale too;
        ``season``: the lag m of the ``mase`` method."""
        if method not in METHODS:
            raise LstmLabError(f"forecast.scaling.method: {method!r}; expected one of {list(METHODS)}")
        if panel.bounds is None:
            raise LstmLabError("panel: no split boundaries; the scaler is fitted on the training rows only")
        columns = (*panel.target_columns, *covariates)
        cols = _column_indices(panel, columns)
        pad = panel.pad if panel.pad is not None else np.zeros(panel.n_series, dtype=np.int64)
        starts, n = panel.offsets[:-1] + pad, panel.bounds[:, 0] - pad  # (S,) first train row, train rows
        if (n < 1).any():
            s = int(np.flatnonzero(n < 1)[0])
            raise LstmLabError(
                f"panel: series id {_show(panel.ids[s])} has no training rows to fit the scaler on; "
                f"drop it first (pad_or_skip_short)"
            )
        center = np.empty((panel.n_series, len(cols)))
        scale = np.empty((panel.n_series, len(cols)))
        for s0, s1 in series_blocks(n, max_rows):
            nb = n[s0:s1]  # (k,)
            x = np.asarray(panel.values[ragged_rows(starts[s0:s1], nb)][:, cols], dtype=np.float64)  # (M, K)
            release(panel.values)  # a memmap's pages read: handed back (all: see residency.release)
            firsts = np.cumsum(nb) - nb  # (k,) first row of each series in x
            if method in ("standard", "mase"):
                mean = np.add.reduceat(x, firsts, axis=0) / nb[:, None]  # (k, K)
                dev = x - np.repeat(mean, nb, axis=0)  # (M, K)
                spread = np.sqrt(np.add.reduceat(dev * dev, firsts, axis=0) / nb[:, None])
                if method == "mase":
                    spread = seasonal_mae(x, nb, firsts, season, fallback=spread)
            elif method == "mean_abs":
                mean = np.zeros((len(nb), x.shape[1]))
                spread = np.add.reduceat(np.abs(x), firsts, axis=0) / nb[:, None]
            else:
                segment = np.repeat(np.arange(len(nb)), nb)  # (M,)
                ordered = np.stack([x[np.lexsort((x[:, j], segment)), j] for j in range(len(cols))], axis=1)
                mean = ragged_quantile(ordered, firsts, nb, 0.5)  # the median, (k, K)
                spread = ragged_quantile(ordered, firsts, nb, 0.75) - ragged_quantile(ordered, firsts, nb, 0.25)
            center[s0:s1], scale[s0:s1] = mean, np.where(spread > 0, spread, 1.0)
        return cls(method, tuple(plain_list(panel.ids)), columns, center, scale)

    # --- applying -------------------------------------------------------------------------------------------
    def transform(self, panel: Panel, inplace: bool = False, max_rows: int = MAX_ROWS) -> Panel:
        """The panel with its columns scaled, into a new in-memory array, or written into ``panel.values`` when
        ``inplace`` (a memmap opened 'r+' is then changed on disk). Padding rows stay zero."""
        self._check_ids(panel)
        cols = _column_indices(panel, self.columns)
        out = panel.values if inplace else np.array(panel.values)  # np.array: a plain ndarray copy
        if not inplace:
            release(panel.values)  # a memmap read whole for the copy: its pages handed back
        pad = panel.pad if panel.pad is not None else np.zeros(panel.n_series, dtype=np.int64)
        lengths = panel.lengths
        for s0, s1 in series_blocks(lengths, max_rows):
            r0, r1, nb = panel.offsets[s0], panel.offsets[s1], lengths[s0:s1]
            block = np.asarray(out[r0:r1][:, cols], dtype=np.float64)  # (M, K)
            z = (block - np.repeat(self.center[s0:s1], nb, axis=0)) / np.repeat(self.scale[s0:s1], nb, axis=0)
            local = np.arange(r1 - r0) - np.repeat(panel.offsets[s0:s1] - r0, nb)  # (M,) row inside its series
            z[local < np.repeat(pad[s0:s1], nb)] = 0.0
            out[r0:r1, cols] = z
            release(out)  # a memmap's pages written: in the page cache and the file, out of this process
        return dataclasses.replace(panel, values=out)

    def inverse(self, y, series):
        """Undo the scaling of forecasts ``y`` (B, H, C') of series ``series`` (B,); C' <= K leading columns
        (the targets). numpy in → numpy out, torch in → torch out (same device and dtype)."""
        s = series.detach().cpu().numpy() if isinstance(series, torch.Tensor) else np.asarray(series)
        k = y.shape[-1]
        center, scale = self.center[s, None, :k], self.scale[s, None, :k]  # (B, 1, C')
        if isinstance(y, torch.Tensor):
            center = torch.as_tensor(center, dtype=y.dtype, device=y.device)
            scale = torch.as_tensor(scale, dtype=y.dtype, device=y.device)
            return y * scale + center
        return (y * scale + center).astype(y.dtype, copy=False)

    def align(self, ids) -> PanelScaler:
        """The scaler with its rows in the order of ``ids`` (a later panel's), failing on an unknown id."""
        import pandas as pd

        rows = pd.Index(self.ids).get_indexer(pd.Index(ids))
        if (rows < 0).any():
            bad = pd.Index(ids)[int(np.flatnonzero(rows < 0)[0])]
            raise LstmLabError(f"panel scaler: id {_show(bad)} was not in the training panel; no statistics for it")
        return dataclasses.replace(self, ids=tuple(pd.Index(ids).tolist()), center=self.center[rows],
                                   scale=self.scale[rows])

    def _check_ids(self, panel: Panel) -> None:
        if plain_list(panel.ids) != list(self.ids):
            raise LstmLabError(
                f"panel scaler: fitted on {len(self.ids)} series whose ids differ from this panel's "
                f"{panel.n_series}; use scaler.align(panel.ids) first"
            )

    # --- state ----------------------------------------------------------------------------------------------
    def as_dict(self) -> dict:
        return {"method": self.method, "columns": list(self.columns), "ids": list(self.ids),
                "center": self.center.tolist(), "scale": self.scale.tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> PanelScaler:
        k = len(data["columns"])
        center = np.asarray(data["center"], dtype=np.float64).reshape(-1, k)
        scale = np.asarray(data["scale"], dtype=np.float64).reshape(-1, k)
        return cls(data["method"], tuple(data["ids"]), tuple(data["columns"]), center, scale)


def seasonal_mae(x: np.ndarray, n: np.ndarray, firsts: np.ndarray, m: int, fallback: np.ndarray) -> np.ndarray:
    """(k, K) mean |x_t - x_(t-m)| inside each series of ``x`` (M, K), series after series (``n`` rows each,
    starting at ``firsts``): the MASE scale. A series with m rows or fewer gets its ``fallback``."""
    local = np.arange(len(x)) - np.repeat(firsts, n)  # (M,) row inside its series
    keep = local[m:] >= m  # the lag-m pair lies in one series
    diff = np.abs(x[m:] - x[:-m]) * keep[:, None]  # (M - m, K)
    segment = np.repeat(np.arange(len(n)), n)[m:]  # (M - m,)
    total = np.stack([np.bincount(segment, weights=diff[:, j], minlength=len(n)) for j in range(x.shape[1])], 1)
    out = total / np.maximum(n - m, 1)[:, None]
    return np.where((n > m)[:, None], out, fallback)


def _column_indices(panel: Panel, columns) -> list[int]:
    for name in columns:
        if name not in panel.columns:
            raise LstmLabError(f"panel scaler: column {name!r} is not in the panel; columns are {list(panel.columns)}")
    return [panel.columns.index(name) for name in columns]


# --------------------------------------------------------------------------------------------------------------
# Per-window normalisation (no fitted state: the model undoes it)
# --------------------------------------------------------------------------------------------------------------
def window_normalise(x: torch.Tensor, y: torch.Tensor | None, mode: str, n_targets: int, mask=None):
    """Shift the first ``n_targets`` columns of a batch by a per-window level.

    x (B, L, F), y (B, H, C) or None, mask (B, L) bool or None → (x', y', shift (B, 1, C)), where
    ``window_last`` uses the last lookback value and ``window_mean`` the mean over real (unmasked) rows;
    ``none`` gives a zero shift. Only the targets move; covariates and padded rows (kept at 0) do not.
    """
    if mode not in WINDOW_NORMS:
        raise LstmLabError(f"forecast.scaling.window: {mode!r}; expected one of {list(WINDOW_NORMS)}")
    target = x[..., :n_targets]  # (B, L, C)
    if mode == "window_last":
        shift = target[:, -1:, :]  # (B, 1, C); the last lookback row is always real
    elif mode == "window_mean":
        weight = torch.ones_like(target[..., :1]) if mask is None else mask[..., None].to(target.dtype)  # (B, L, 1)
        shift = (target * weight).sum(1, keepdim=True) / weight.sum(1, keepdim=True).clamp_min(1)
    else:
        shift = torch.zeros_like(target[:, :1, :])
    moved = target - shift
    if mask is not None:
        moved = moved * mask[..., None].to(moved.dtype)  # padding stays zero
    x = torch.cat([moved, x[..., n_targets:]], dim=-1)  # (B, L, F)
    return x, (None if y is None else y - shift), shift


def window_restore(prediction: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Undo ``window_normalise`` on a forecast (B, H, C) with the shift (B, 1, C) it returned."""
    return prediction + shift
