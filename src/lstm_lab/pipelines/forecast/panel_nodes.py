"""The forecast pipeline's nodes on a panel (``ForecastParams.is_panel``); ``nodes.py`` hands over to these.

prepare:  forecast_raw → clean (long table, checked) → split summary, per-series scaler (train rows only)
train:    (clean, scaler) → {"kind": "panel", scaled panel} → the global PanelForecaster (or N of them)
evaluate: test windows → quantiles in original units → scores beside naive / seasonal naive, predictions,
          a plot of a few series with their intervals; rolling-origin backtest; the H steps after every
          series' end (``forecast_future``, what a user ships) and, when the actual future is given
          (``forecast_future_actuals``, e.g. M4's test file), its scores.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from lstm_lab.errors import LstmLabError
from lstm_lab.training.forecast import panel_data as pd_
from lstm_lab.training.forecast.params import ForecastParams
from lstm_lab.training.forecast.task import TASK

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------------- prepare
def clean(raw: pd.DataFrame, p: ForecastParams) -> pd.DataFrame:
    return pd_.clean_panel_table(raw, p)


def split_series(frame: pd.DataFrame, p: ForecastParams) -> dict[str, Any]:
    summary = pd_.split_summary(frame, p)
    log.info("panel split: %d series; rows train %d, val %d, test %d", summary["series"], summary["train_rows"],
             summary["val_rows"], summary["test_rows"])
    return summary


def fit_scaler(frame: pd.DataFrame, p: ForecastParams) -> dict[str, Any]:
    prepared = pd_.prepare_panel(frame, p)
    return pd_.fit_panel_scaler(prepared, p).as_dict()


def _scaled(frame: pd.DataFrame, scaler: dict[str, Any], p: ForecastParams):
    from lstm_lab.data.panel_scaling import PanelScaler

    prepared = pd_.prepare_panel(frame, p)
    fitted = PanelScaler.from_dict(scaler)
    if list(fitted.ids) != pd.Index(prepared.panel.ids).tolist():
        raise LstmLabError("forecast_scaler: fitted on other series than forecast_clean holds; re-run the prepare "
                           "nodes (kedro run --pipelines=forecast --tags=prepare)")
    return prepared, fitted, fitted.transform(prepared.panel)


# ------------------------------------------------------------------------------------------------------ train
def training_data(frame: pd.DataFrame, scaler: dict[str, Any], p: ForecastParams) -> dict[str, Any]:
    prepared, _, scaled = _scaled(frame, scaler, p)
    return {"kind": "panel", "panel": scaled, "scaler": scaler, "lags": prepared.lags}


# --------------------------------------------------------------------------------------------------- evaluate
def _net(checkpoint: dict[str, Any], p: ForecastParams):
    """The checkpoint's network, for windows of the parameters' lookback: the one it was trained on (a folded
    encoder cannot read another, and no network is meant to)."""
    trained = checkpoint["hyper_parameters"].get("lookback")
    if trained is not None and int(trained) != p.window.lookback:
        raise LstmLabError(f"forecast_model: trained with window.lookback {trained}, the parameters say "
                           f"{p.window.lookback}; set it back or retrain (kedro run --pipelines=forecast)")
    return TASK.from_checkpoint(checkpoint).net


def _levels(checkpoint: dict[str, Any]) -> list[float]:
    return [float(q) for q in checkpoint["hyper_parameters"]["levels"]]


def _score_at(net, prepared, scaler, scaled, series: np.ndarray, rows: np.ndarray, p: ForecastParams,
              levels: list[float], window: np.ndarray | None = None):
    """(metrics, predictions) of forecasts from global model rows ``rows`` of series ``series``."""
    from lstm_lab.data.panel_windows import WindowsAt
    from lstm_lab.evaluation import panel_forecast as pf

    H, m = p.window.horizon, p.evaluation.seasonal_period
    origins = prepared.level_row(series, rows)  # (N,) level rows of the first forecast step
    q = pd_.forecast_at(net, WindowsAt(scaled, series, rows, p.window.lookback, H), prepared, scaler, series, origins, p)
    steps = origins[:, None] + np.arange(H)  # (N, H)
    actual = prepared.levels[steps]  # (N, H, C)
    starts = prepared.level_offsets[:-1]  # (S,)
    pad = prepared.panel.pad if prepared.panel.pad is not None else 0
    train_rows = prepared.panel.bounds[:, 0] - pad + prepared.dropped  # (S,) level rows before val
    C = actual.shape[2]
    scale = np.stack([pf.in_sample_scale(prepared.levels[:, c], starts, train_rows, m) for c in range(C)], 1)
    naive = np.stack([pf.naive(prepared.levels[:, c], origins, H) for c in range(C)], axis=2)  # (N, H, C)
    back = steps - m * (np.arange(H) // m + 1)  # (N, H) the same phase in the last season before the origin
    seen = back >= starts[series][:, None]  # a season before the origin lies inside the series
    snaive = np.where(seen[..., None], prepared.levels[np.maximum(back, starts[series][:, None])], naive)
    baselines = {"naive": naive, "seasonal_naive": snaive}
    metrics = pf.score_windows(actual, q, levels, scale[series], baselines)
    metrics["windows"] = int(len(rows))
    table = pf.predictions_table(prepared.panel.ids[series], prepared.level_times[origins],
                                 prepared.level_times[steps], list(p.data.target_columns), actual, q, levels,
                                 baselines, window=window)
    return metrics, table


def evaluate(checkpoint: dict[str, Any], frame: pd.DataFrame, scaler: dict[str, Any],
             p: ForecastParams) -> tuple[dict[str, Any], pd.DataFrame]:
    """Scores on every test window of every series (stride 1), the model beside naive and seasonal naive."""
    from lstm_lab.data.panel_windows import PanelWindows

    prepared, fitted, scaled = _scaled(frame, scaler, p)
    test = PanelWindows(scaled, "test", p.window.lookback, p.window.horizon)
    if len(test) == 0:
        log.info("panel: no test windows (split.last test steps %s); scored on forecast_future_actuals if given",
                 p.split.last[1] if p.split.last else "n/a")
        return {"windows": 0}, pd.DataFrame(columns=["id", "origin", "step", "target", "time", "actual", "median"])
    series, rows = test.locate(np.arange(len(test)))
    metrics, table = _score_at(_net(checkpoint, p), prepared, fitted, scaled, series, rows, p, _levels(checkpoint))
    m = metrics
    log.info("test (%d windows): MASE lstm %.4f naive %.4f seasonal naive %.4f; sMAPE lstm %.3f", m["windows"],
             m["lstm"]["mase"], m["naive"]["mase"], m["seasonal_naive"]["mase"], m["lstm"]["smape"])
    return metrics, table


def backtest(checkpoint: dict[str, Any], frame: pd.DataFrame, scaler: dict[str, Any],
             p: ForecastParams) -> dict[str, Any]:
    """Rolling-origin evaluation: ``backtest.n_windows`` cut-offs ``step`` apart, the last H steps before each
    series' end. Without ``refit`` the trained model forecasts from every cut-off (cut-offs inside the training
    rows flatter it: keep them in val/test); with ``refit`` a model is trained on the rows before each cut-off
    (its last ``split.last[0]`` — or H — rows as validation) and the scaler refitted on them."""
    b = p.backtest
    if b.n_windows == 0:
        return {"n_windows": 0}
    H, L, step = p.window.horizon, p.window.lookback, b.step or p.window.horizon
    prepared, fitted, scaled = _scaled(frame, scaler, p)
    panel = prepared.panel
    pad = panel.pad if panel.pad is not None else np.zeros(panel.n_series, dtype=np.int64)
    levels = _levels(checkpoint)
    net = None if b.refit else _net(checkpoint, p)
    out: dict[str, Any] = {"n_windows": b.n_windows, "step": step, "refit": b.refit, "cutoffs": []}
    for j in range(b.n_windows):
        back = H + (b.n_windows - 1 - j) * step  # rows from each cut-off to the series' end
        local = panel.lengths - back  # (S,) model-local row of the first forecast step
        ok = local >= np.maximum(L, pad + 1)
        if not ok.any():
            raise LstmLabError(f"forecast.backtest: cut-off {j + 1} lies {back} steps before the series' ends: no "
                               f"series keeps lookback {L} rows before it; use fewer windows or a smaller step")
        series = np.flatnonzero(ok)
        rows = panel.offsets[series] + local[series]
        if b.refit:
            net, fitted_j, scaled_j = _refit(prepared, local, p, j)
        else:
            fitted_j, scaled_j = fitted, scaled
        metrics, _ = _score_at(net, prepared, fitted_j, scaled_j, series, rows, p, levels)
        out["cutoffs"].append({"cutoff": j + 1, "steps_before_end": back, "series": int(len(series)), **metrics})
        log.info("backtest cut-off %d/%d (%d steps before the ends, %d series): MASE lstm %.4f seasonal naive %.4f",
                 j + 1, b.n_windows, back, len(series), metrics["lstm"]["mase"], metrics["seasonal_naive"]["mase"])
    out["overall"] = {name: {k: float(np.mean([c[name][k] for c in out["cutoffs"]])) for k in out["cutoffs"][0][name]}
                      for name in ("lstm", "naive", "seasonal_naive")}
    return out


def _refit(prepared, local: np.ndarray, p: ForecastParams, j: int):
    """A network trained only on the rows before the cut-off ``local`` (S,) (validation: the last val steps
    before it), with the scaler refitted on its training rows."""
    import dataclasses

    val = pd_.val_steps(p)
    cut = np.maximum(local, 0)
    bounds = np.stack([np.maximum(cut - val, 0), cut, cut], axis=1)
    panel = dataclasses.replace(prepared.panel, bounds=bounds)
    fitted = pd_.fit_panel_scaler(dataclasses.replace(prepared, panel=panel), p)
    scaled = fitted.transform(panel)
    from lstm_lab.training.forecast.task import train

    pj = p.model_copy(update={"training": p.training.model_copy(update={"resume": "never"})})
    log.info("backtest cut-off %d: refitting on the rows before it", j + 1)
    checkpoint, _ = train(pj, {"kind": "panel", "panel": scaled, "scaler": fitted.as_dict(), "lags": prepared.lags})
    return _net(checkpoint, p), fitted, dataclasses.replace(scaled, bounds=prepared.panel.bounds)


def forecast_future(checkpoint: dict[str, Any], frame: pd.DataFrame, scaler: dict[str, Any],
                    future_frame: pd.DataFrame | None, p: ForecastParams) -> pd.DataFrame:
    """The H steps after every series' end, with intervals: id, origin, step, target, time, median, lo/hi."""
    from lstm_lab.data.panel_windows import ForecastOrigins
    from lstm_lab.evaluation import panel_forecast as pf

    prepared, fitted, scaled = _scaled(frame, scaler, p)
    future = pd_.future_covariates(prepared, p, fitted, future_frame)
    S = scaled.n_series
    dataset = ForecastOrigins(scaled, p.window.lookback, p.window.horizon, future)
    q = pd_.forecast_at(_net(checkpoint, p), dataset, prepared, fitted, np.arange(S), prepared.ends, p)
    times = pd_.future_times(prepared, p)
    log.info("forecast of the %d steps after the end of %d series", p.window.horizon, S)
    return pf.predictions_table(scaled.ids, times[:, 0], times, list(p.data.target_columns), None, q,
                                _levels(checkpoint))


def score_future(future: pd.DataFrame, actuals: pd.DataFrame | None, frame: pd.DataFrame,
                 p: ForecastParams) -> dict[str, Any]:
    """Scores of ``forecast_future`` against the actual future when it is known (M4: the test file): sMAPE,
    MASE, OWA (against the official Naive2 for an M4 group where published, else Naive2 computed here), the
    intervals' coverage and MSIS, beside naive, seasonal naive and Naive2."""
    if actuals is None:
        return {"scored": False}
    from lstm_lab.evaluation import m4, panel_forecast as pf

    d, H, m = p.data, p.window.horizon, p.evaluation.seasonal_period
    idc = pd_.id_column(p)
    ids = pd.unique(future["id"])
    for name in (idc, *d.target_columns):
        if name not in actuals.columns:
            raise LstmLabError(f"forecast_future_actuals: column {name!r} not found; columns are {list(actuals.columns)}")
    counts = actuals.groupby(idc, sort=False).size().reindex(ids)
    if counts.isna().any() or (counts != H).any():
        bad = counts.index[(counts.isna() | (counts != H)).to_numpy()][0]
        got = 0 if pd.isna(counts[bad]) else int(counts[bad])
        raise LstmLabError(f"forecast_future_actuals: id {bad!r} has {got} row(s); expected {H} (the horizon)")
    order = pd.Index(ids)
    rows = actuals.assign(_s=order.get_indexer(actuals[idc]))
    rows = rows[rows["_s"] >= 0]
    sort_by = ["_s", d.time_column] if d.time_column in rows.columns else ["_s"]
    rows = rows.sort_values(sort_by, kind="stable")
    levels_q = list(_quantile_columns(future))
    C = len(d.target_columns)
    actual = rows[list(d.target_columns)].to_numpy(np.float64).reshape(len(ids), H, C)
    q = _quantiles_from_table(future, len(ids), H, C)  # (S, H, C, Q)

    history = frame.assign(_s=order.get_indexer(frame[idc]))
    history = history[history["_s"] >= 0].sort_values(["_s", d.time_column], kind="stable")
    out: dict[str, Any] = {"scored": True, "series": int(len(ids))}
    for c, target in enumerate(d.target_columns):
        values = history[target].to_numpy(np.float64)
        n = history.groupby("_s", sort=True).size().reindex(range(len(ids))).to_numpy()
        starts = np.cumsum(n) - n
        insample = [values[a: a + k] for a, k in zip(starts, n)]
        scale = pf.in_sample_scale(values, starts, n, m)
        naive2 = m4.naive2_forecast(insample, H, m)
        baselines = {"naive": m4.naive_forecast(insample, H), "seasonal_naive": m4.snaive_forecast(insample, H, m),
                     "naive2": naive2}
        scores = pf.score_windows(actual[:, :, c:c + 1], q[:, :, c:c + 1], levels_q, scale[:, None],
                                  {k: v[..., None] for k, v in baselines.items()})
        official = m4.M4_NAIVE2_OFFICIAL.get(p.evaluation.m4_group or "")
        reference = official or (scores["naive2"]["smape"], scores["naive2"]["mase"])
        for name in scores:
            scores[name]["owa"] = m4.owa(scores[name]["smape"], scores[name]["mase"], *reference)
        if 95 in pf.interval_bounds(levels_q):
            scores["lstm"]["acd95"] = abs(scores["lstm"]["coverage95"] - 0.95)
        scores["owa_reference"] = "official Naive2" if official else "Naive2 computed on these series"
        if C == 1:
            out.update(scores)
        else:
            out[target] = scores
    s = out.get("lstm", {})  # one target: its scores at the top level
    if s:
        log.info("future scored (%d series): sMAPE %.3f, MASE %.3f, OWA %.3f%s", len(ids), s["smape"], s["mase"],
                 s["owa"], f", MSIS95 {s['msis95']:.3f}" if "msis95" in s else "")
    return out


def _quantile_columns(table: pd.DataFrame) -> dict[float, str]:
    """{level: column} of a forecast table: 0.5 → median, and each interval's lo<c>/hi<c>, in increasing level."""
    columns = {0.5: "median"}
    for name in table.columns:
        if name.startswith("lo") and name[2:].isdigit():
            c = int(name[2:]) / 100
            columns[round((1 - c) / 2, 6)] = name
            columns[round(1 - (1 - c) / 2, 6)] = f"hi{name[2:]}"
    return dict(sorted(columns.items()))


def _quantiles_from_table(table: pd.DataFrame, S: int, H: int, C: int) -> np.ndarray:
    columns = list(_quantile_columns(table).values())
    return table[columns].to_numpy(np.float64).reshape(S, H, C, len(columns))


def plot(predictions: pd.DataFrame, p: ForecastParams):
    from lstm_lab.evaluation import plots

    return plots.panel_intervals(predictions, p.data.target_columns[0])
