"""From the typed ``forecast`` parameters and a clean long table to the panel the global model trains on.

A panel run keeps two views of the same series, row for row where both exist:

- ``levels``: the original targets (M, C) of every kept series, concatenated (``level_offsets``): what forecasts
  are scored against and what ``target_transforms.restore`` rebuilds from;
- ``panel``: what the model sees — the transformed targets, past covariates, future-known columns (the user's,
  then calendar features), split per series, short series skipped or left-padded. Its local row r of series s
  is level row ``r - pad[s] + dropped`` (``level_row``), ``dropped`` being the rows a transform consumes.

Everything is a function of (table, parameters): the scaler node, the training-data node and the evaluation
node each rebuild the panel identically instead of passing a large object through the catalog.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from lstm_lab.data.calendar_features import calendar_columns, calendar_features
from lstm_lab.data.panel import Panel, _parse_times, pad_or_skip_short, split_last, split_times
from lstm_lab.data.panel_scaling import PanelScaler
from lstm_lab.data.target_transforms import dropped_rows, seasonal_lags, target_names, transform_frame
from lstm_lab.errors import LstmLabError
from lstm_lab.training.forecast.params import ForecastParams

log = logging.getLogger(__name__)

SINGLE_SERIES_ID = "series"  # the id column a one-series table gets when it runs as a panel of one


def id_column(p: ForecastParams) -> str:
    return p.data.id_column or SINGLE_SERIES_ID


def lags(p: ForecastParams) -> tuple[int, ...]:
    if p.data.target_transform != "seasonal_log_diff":
        return ()
    return seasonal_lags(p.window.horizon, p.evaluation.seasonal_period)


def input_columns(p: ForecastParams) -> list[str]:
    d = p.data
    return [*d.target_columns, *d.covariate_columns, *d.future_columns]


# --------------------------------------------------------------------------------------------------------------
# the clean table
# --------------------------------------------------------------------------------------------------------------
def clean_panel_table(raw: pd.DataFrame, p: ForecastParams, source: str = "forecast_raw") -> pd.DataFrame:
    """The long table ``id, time, targets, covariates, future columns``, sorted by id (first appearance) and
    time. Every defect ``Panel.from_long`` knows (a missing column, an id with one row, a duplicate (id, time),
    a missing target or covariate) is one error line naming the id, the time and the column. A one-series
    table goes through the single-series cleaning (frequency, gap filling) and gets a constant id."""
    d = p.data
    if d.id_column is None:
        from lstm_lab.data.timeseries import clean_series

        frame = clean_series(raw, time_column=d.time_column, value_columns=input_columns(p),
                             frequency=d.frequency, max_gap=d.max_gap, source=source).reset_index()
        frame.insert(0, SINGLE_SERIES_ID, d.target_columns[0])
        return frame
    columns = [d.id_column, d.time_column, *input_columns(p)]
    panel = Panel.from_long(raw, d.id_column, d.time_column, d.target_columns, d.covariate_columns,
                            d.future_columns, source=source)  # validates; its row order is (id, time)
    codes, _ = pd.factorize(raw[d.id_column], sort=False)
    times = _parse_times(raw[d.time_column], source, d.time_column)
    order = np.lexsort((times.view(np.int64), codes))
    frame = raw[columns].iloc[order].reset_index(drop=True)
    frame[d.time_column] = times[order]
    log.info("panel: %d series, %d rows, lengths %d..%d", panel.n_series, len(frame), panel.lengths.min(),
             panel.lengths.max())
    return frame


# --------------------------------------------------------------------------------------------------------------
# splits
# --------------------------------------------------------------------------------------------------------------
def val_steps(p: ForecastParams) -> int:
    """Validation rows at the end of every series (before the test rows): ``split.last[0]``, null = H."""
    if p.split.last is None or p.split.last[0] is None:
        return p.window.horizon
    return int(p.split.last[0])


def panel_bounds(panel: Panel, p: ForecastParams) -> np.ndarray:
    """(S, 3) local (train_end, val_end, test_end) of every series from ``forecast.split``."""
    split = p.split
    if split.last is not None:
        return split_last(panel.lengths, val_steps(p), split.last[1])
    if split.times is not None:
        if panel.times is None:
            raise LstmLabError("forecast.split.times: the panel has no times")
        return split_times(panel.times, panel.offsets, *split.times)
    if split.fractions is not None:
        n = panel.lengths.astype(np.float64)
        f = np.cumsum(split.fractions)
        ends = np.floor(n[:, None] * f[None, :]).astype(np.int64)  # (S, 3)
        if abs(f[-1] - 1.0) < 1e-9:
            ends[:, 2] = panel.lengths
        return ends
    raise LstmLabError("forecast.split.rows is for one series; a panel splits by fractions, times or last")


def split_summary(frame: pd.DataFrame, p: ForecastParams) -> dict:
    """What ``forecast_split.json`` records for a panel: the rule and the rows per split, over all series."""
    levels = Panel.from_long(frame, id_column(p), p.data.time_column, list(p.data.target_columns),
                             source="forecast_clean")
    b = panel_bounds(levels, p)
    rule = p.split.model_dump(exclude_none=True)
    return {"rule": {k: list(v) for k, v in rule.items()}, "series": levels.n_series,
            "train_rows": int(b[:, 0].sum()), "val_rows": int((b[:, 1] - b[:, 0]).sum()),
            "test_rows": int((b[:, 2] - b[:, 1]).sum()), "rows": int(levels.lengths.sum())}


# --------------------------------------------------------------------------------------------------------------
# the panel
# --------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class PreparedPanel:
    panel: Panel  # what the model sees, unscaled; bounds set, short series handled
    levels: np.ndarray  # (M, C) float64 original targets of the kept series
    level_offsets: np.ndarray  # (S + 1,)
    level_times: np.ndarray  # (M,) datetime64[ns] or int64
    dropped: int  # leading rows of each series the transform consumed
    lags: tuple[int, ...]
    calendar_columns: tuple[str, ...]

    def level_row(self, series: np.ndarray, model_rows: np.ndarray) -> np.ndarray:
        """Global level rows of global model rows ``model_rows`` in series ``series``."""
        pad = self.panel.pad[series] if self.panel.pad is not None else 0
        local = model_rows - self.panel.offsets[series] - pad + self.dropped
        return self.level_offsets[series] + local

    @property
    def ends(self) -> np.ndarray:
        """(S,) global level row one past each series' end: where a forecast of the future starts."""
        return self.level_offsets[1:]


def _calendar(times: np.ndarray, steps_from_end: np.ndarray, p: ForecastParams) -> pd.DataFrame:
    d = p.data
    if d.calendar_phase == "series_end" or times.dtype.kind in "iu":
        source = steps_from_end if d.calendar_phase == "series_end" else times
        if d.frequency is None:
            raise LstmLabError("forecast.data.frequency: integer time steps need a frequency for calendar features "
                               "(e.g. 'h')")
        return calendar_features(np.asarray(source, dtype=np.int64), d.calendar, frequency=d.frequency,
                                 start="2001-01-01")  # a Monday 00:00: the phase of step 0
    return calendar_features(times, d.calendar)


def prepare_panel(frame: pd.DataFrame, p: ForecastParams, split: bool = True) -> PreparedPanel:
    """The panel of ``frame`` (a clean table from ``clean_panel_table``) for ``p``: split per series and short
    series handled; ``split=False`` (serving recent history) keeps every series whole and unsplit."""
    d, idc = p.data, id_column(p)
    frame = frame.reset_index(drop=True)
    times = _parse_times(frame[d.time_column], "forecast_clean", d.time_column)
    lengths = frame.groupby(idc, sort=False)[d.time_column].transform("size").to_numpy()
    position = frame.groupby(idc, sort=False).cumcount().to_numpy()
    cal_columns = calendar_columns(d.calendar) if d.calendar else []
    if cal_columns:
        frame = pd.concat([frame, _calendar(times, position - lengths, p).reset_index(drop=True)], axis=1)
    frame_lags = lags(p)
    model = transform_frame(frame, d.target_transform, id_column=idc, targets=list(d.target_columns),
                            lags=frame_lags, source="forecast_clean")
    targets = target_names(d.target_transform, list(d.target_columns), frame_lags)
    panel = Panel.from_long(model, idc, d.time_column, targets, d.covariate_columns,
                            [*d.future_columns, *cal_columns], source="forecast_clean")
    if split:
        panel = pad_or_skip_short(panel.with_bounds(panel_bounds(panel, p)), p.window.lookback, p.window.horizon,
                                  d.short_series)
    levels = Panel.from_long(frame, idc, d.time_column, list(d.target_columns), source="forecast_clean")
    keep = pd.Index(levels.ids).get_indexer(pd.Index(panel.ids))  # (S,) kept series among all
    lengths = levels.lengths[keep]
    from lstm_lab.data.panel import ragged_rows

    rows = ragged_rows(levels.offsets[:-1][keep], lengths)
    return PreparedPanel(
        panel=panel, levels=np.asarray(levels.values[rows], dtype=np.float64),
        level_offsets=np.concatenate(([0], np.cumsum(lengths))), level_times=levels.times[rows],
        dropped=dropped_rows(d.target_transform, frame_lags), lags=frame_lags, calendar_columns=tuple(cal_columns),
    )


def scaled_columns(p: ForecastParams) -> list[str]:
    """Columns scaled per series besides the targets: past covariates and the user's future columns (calendar
    features are already on the unit circle)."""
    return [*p.data.covariate_columns, *p.data.future_columns]


def fit_panel_scaler(prepared: PreparedPanel, p: ForecastParams) -> PanelScaler:
    panel, method = prepared.panel, p.panel.scaling
    if method == "none":
        k = panel.n_targets + len(scaled_columns(p))
        return PanelScaler("none", tuple(pd.Index(panel.ids).tolist()), (*panel.target_columns, *scaled_columns(p)),
                           np.zeros((panel.n_series, k)), np.ones((panel.n_series, k)))
    return PanelScaler.fit(panel, method, covariates=scaled_columns(p), season=p.evaluation.seasonal_period)


# --------------------------------------------------------------------------------------------------------------
# forecasts in original units
# --------------------------------------------------------------------------------------------------------------
def forecast_at(net, dataset, prepared, scaler, series: np.ndarray, origins: np.ndarray,
                p: ForecastParams) -> np.ndarray:
    """Quantiles (N, H, C, Q) in original units of the items of ``dataset``: series ``series``, first forecast at
    level row ``origins``."""
    from lstm_lab.data.target_transforms import restore
    from lstm_lab.training.panel_module import predict_quantiles

    q = predict_quantiles(net, dataset, batch_size=1024).astype(np.float64)  # (N, H, K, Q) scaled
    N, H, K, Q = q.shape
    flat = q.transpose(0, 1, 3, 2).reshape(N, H * Q, K)
    unscaled = scaler.inverse(flat, series).reshape(N, H, Q, K).transpose(0, 1, 3, 2)  # (N, H, K, Q)
    return restore(p.data.target_transform, unscaled, lags=prepared.lags, levels=prepared.levels[:, 0],
                   origins=origins)


# --------------------------------------------------------------------------------------------------------------
# the future
# --------------------------------------------------------------------------------------------------------------
def future_times(prepared: PreparedPanel, p: ForecastParams) -> np.ndarray:
    """(S, H) times of the H steps after each series' end (datetime64 or integer steps)."""
    last = prepared.level_times[prepared.ends - 1]  # (S,)
    h = np.arange(1, p.window.horizon + 1)
    if last.dtype.kind in "iu":
        return last[:, None] + h[None, :]
    frequency = p.data.frequency
    if frequency is None:
        first = prepared.level_times[prepared.level_offsets[0]: prepared.level_offsets[1]]
        frequency = pd.infer_freq(pd.DatetimeIndex(first[: min(len(first), 100)]))
        if frequency is None:
            raise LstmLabError("forecast.data.frequency: cannot infer the series' frequency to date the future "
                               "steps; set it (e.g. 'h', 'D', 'W-SAT')")
    offset = pd.tseries.frequencies.to_offset(frequency)
    return np.stack([(pd.DatetimeIndex(last) + k * offset).to_numpy("datetime64[ns]") for k in h], axis=1)


def future_covariates(prepared: PreparedPanel, p: ForecastParams, scaler: PanelScaler,
                      future_frame: pd.DataFrame | None) -> np.ndarray:
    """(S, H, U) future-known values for the H steps after each end, scaled as in training: the user's future
    columns from ``future_frame`` (``forecast_future_covariates``), then the calendar features."""
    d, panel, H = p.data, prepared.panel, p.window.horizon
    parts = []
    if d.future_columns:
        if future_frame is None:
            raise LstmLabError(f"forecast_future_covariates: no data; the future columns {list(d.future_columns)} "
                               f"must be given for the {H} steps after each series' end")
        from lstm_lab.data.panel_windows import future_for_origins

        user = future_for_origins(future_frame, _timed(prepared, panel), id_column(p), d.time_column, H,
                                  source="forecast_future_covariates", columns=list(d.future_columns))
        k0 = panel.n_targets + len(d.covariate_columns)  # the user's future columns in the scaler's order
        center = scaler.center[:, None, k0: k0 + len(d.future_columns)]
        scale = scaler.scale[:, None, k0: k0 + len(d.future_columns)]
        parts.append(((user - center) / scale).astype(np.float32))
    if prepared.calendar_columns:
        steps = np.broadcast_to(np.arange(H), (panel.n_series, H))
        times = future_times(prepared, p)
        cal = _calendar(times.reshape(-1), steps.reshape(-1), p).to_numpy(np.float32)
        parts.append(cal.reshape(panel.n_series, H, -1))
    if not parts:
        return np.zeros((panel.n_series, H, 0), dtype=np.float32)
    return np.concatenate(parts, axis=2)


def _timed(prepared: PreparedPanel, panel: Panel) -> Panel:
    """The model panel with the level rows' times (for checks that the future starts after each end)."""
    import dataclasses

    empty = np.broadcast_to(np.zeros((1, panel.values.shape[1]), np.float32), (len(prepared.levels), panel.values.shape[1]))
    return dataclasses.replace(panel, values=empty,
                               offsets=prepared.level_offsets, times=prepared.level_times, bounds=None, pad=None)
