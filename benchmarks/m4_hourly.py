"""M4 Hourly with the global panel forecaster: a preliminary measurement from a script, not yet the pipeline.

Fits one PanelForecaster (LSTM encoder, MQ-RNN-style direct 48-step decoder, series-id embedding, quantile head
at 0.025/0.1/0.5/0.9/0.975) on all 414 Hourly-train series, forecasts the 48 steps after each series' end and
scores them against Hourly-test with the competition's measures (sMAPE, MASE, OWA against the official Naive2,
MSIS and ACD of the 95 % interval [q0.025, q0.975]).

    .venv/bin/python benchmarks/m4_hourly.py --minutes 30

Data (``--target sdiff``, the default): the targets are the seasonal log-differences ``d_k = log y_t - log
y_(t-k)`` for k = 24 and 48, each divided by its mean absolute value on the series' training rows (for d_24 the
MASE scale of log y, so the pinball loss weighs series alike, as MASE and MSIS do). Step h after the end is
rebuilt exactly from the smallest k > h (``y_(n+h) = y_(n+h-k) · exp(d_k)``), so quantiles stay quantiles, and
with a zero-initialised output layer the untrained model is exactly sNaive: the initial validation then makes
sNaive the score to beat. ``--target level`` models the series itself (log y, or y with ``--no-log``, scaled per
series by its MASE scale or, with ``--scaling standard``, its std) relative to its last value (residual mode: the
untrained model is the naive forecast).

Validation (early stopping, the best epoch) = the last ``--val-steps`` (48) values of every training series.
Future-known covariates: hour of day and day of week as (sin, cos), from the step index counted back from each
series' end (the M4 files carry no timestamps: hour 0 is the first forecast step of every series, a shared phase
that is not the wall clock).

Writes benchmarks/results/m4_hourly.md (``--results``) and the submission-format files ``id,F1..F48``
(forecast, lo95, hi95) into ``--out`` (default data/07_model_output/m4/, git-ignored).
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import shlex
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/machine.py, also when loaded by path
from machine import cpu_model  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
GROUP = "Hourly"
LEVELS = (0.025, 0.1, 0.5, 0.9, 0.975)
CALENDAR = ("hour", "day_of_week")
LAGS = (24, 48)  # seasonal log-differences: d24 for steps 1-24 after the end, d48 for steps 25-48
CALENDAR_START = "2001-01-01"  # a Monday at 00:00: step 0 from the end = hour 0 of a Monday (arbitrary phase)
ANCHOR_ROWS = {"Naive2": "Naive2", "sNaive": "sNaive", "118": "ES-RNN (Smyl, winner)",
               "238": "best Hourly entry (Doornik)"}


# --------------------------------------------------------------------------------------------------------------
# glue: files → panel, forecasts → scores and submission files
# --------------------------------------------------------------------------------------------------------------
def load_m4(m4_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, test) long frames ``id, t, y``; the test's ``t`` continues each training series."""
    from lstm_lab.data.m4 import read_m4_test, read_m4_wide

    train = read_m4_wide(Path(m4_dir) / f"{GROUP}-train.csv", GROUP)
    test = read_m4_test(Path(m4_dir) / f"{GROUP}-test.csv", GROUP, train=train)
    return train, test


def calendar(steps_from_end: np.ndarray) -> pd.DataFrame:
    from lstm_lab.data.calendar_features import calendar_features

    return calendar_features(np.asarray(steps_from_end, dtype=np.int64), CALENDAR, frequency="h",
                             start=CALENDAR_START)


def build_panel(train: pd.DataFrame, horizon: int, val_steps: int):
    """(panel with bounds: train | last ``val_steps`` as val | no test, future covariates (S, H, U) of the
    ``horizon`` steps after every series' end)."""
    from lstm_lab.data.calendar_features import calendar_columns
    from lstm_lab.data.panel import Panel, split_last

    lengths = train.groupby("id", sort=False)["t"].transform("size").to_numpy()
    frame = pd.concat([train.reset_index(drop=True), calendar(train["t"].to_numpy() - lengths)], axis=1)
    columns = calendar_columns(CALENDAR)
    panel = Panel.from_long(frame, "id", "t", ["y"], future_columns=columns, source="M4 Hourly train")
    panel = panel.with_bounds(split_last(panel.lengths, val_steps, 0))
    future = calendar(np.arange(horizon)).to_numpy(np.float32)  # (H, U): the same phase after every end
    return panel, np.broadcast_to(future, (panel.n_series, horizon, len(columns))).copy()


def fit_scaler(panel, method: str, m: int = 24):
    """Per-series scaling fitted on each series' training rows: ``standard`` (mean, std) or ``seasonal`` (mean,
    in-sample MAE of the lag-``m`` seasonal naive forecast: the MASE scale, so that the pinball loss weighs every
    series as MASE and MSIS do; a smooth trending series has a std dozens of times its MASE scale)."""
    from lstm_lab.data.panel import ragged_rows
    from lstm_lab.data.panel_scaling import PanelScaler

    if method == "standard":
        return PanelScaler.fit(panel, "standard")
    n = panel.bounds[:, 0]  # (S,) training rows
    rows = ragged_rows(panel.offsets[:-1], n)
    y = np.asarray(panel.values[rows, 0], dtype=np.float64)  # (M,) training targets, series after series
    series = np.repeat(np.arange(panel.n_series), n)
    local = np.arange(len(y)) - np.repeat(np.cumsum(n) - n, n)
    center = np.bincount(series, weights=y, minlength=panel.n_series) / n
    keep = local[m:] >= m  # lag-m differences inside one series
    diff = np.abs(y[m:] - y[:-m])[keep]
    scale = np.bincount(series[m:][keep], weights=diff, minlength=panel.n_series) / np.maximum(n - m, 1)
    scale = np.where(scale > 0, scale, 1.0)
    return PanelScaler("seasonal", tuple(pd.Index(panel.ids).tolist()), tuple(panel.target_columns[:1]),
                       center[:, None], scale[:, None])


def with_log_target(panel):
    """The panel with log(y) as its target (every M4 Hourly value is positive): errors become relative."""
    import dataclasses

    values = np.array(panel.values)
    if not (values[:, 0] > 0).all():
        raise ValueError("--log needs positive targets")
    values[:, 0] = np.log(values[:, 0])
    return dataclasses.replace(panel, values=values)


def to_original_scale(quantiles: np.ndarray, scaler, log: bool, clip_at_zero: bool) -> np.ndarray:
    """Scaled quantiles (S, H, 1, Q) → (S, H, Q) in the data's units (monotone maps keep them quantiles)."""
    S, H, _, Q = quantiles.shape
    flat = scaler.inverse(quantiles.reshape(S, H * Q, 1).astype(np.float64), np.arange(S)).reshape(S, H, Q)
    if log:
        return np.exp(flat)
    return np.maximum(flat, 0.0) if clip_at_zero else flat


def build_sdiff_panel(train: pd.DataFrame, horizon: int, val_steps: int, lags=LAGS):
    """Like ``build_panel``, but the targets are the seasonal log-differences ``d_k = log y_t - log y_(t-k)``, one
    column per lag k in ``lags`` (rows t >= max(lags) of every series). Step h after the end is rebuilt exactly
    from the smallest lag k > h: ``y_(n+h) = y_(n+h-k) · exp(d_k)``, with y_(n+h-k) observed; a zero forecast of
    every d_k is then the seasonal naive forecast (sNaive)."""
    from lstm_lab.data.calendar_features import calendar_columns
    from lstm_lab.data.panel import Panel, split_last

    if max(lags) < horizon:
        raise ValueError(f"lags {lags}: the largest must cover the horizon {horizon}")
    frame = train.reset_index(drop=True)
    if not (frame["y"] > 0).all():
        raise ValueError("seasonal log-differences need positive values")
    log_y = np.log(frame["y"].to_numpy(np.float64))
    by_id = frame.groupby("id", sort=False)
    lengths = by_id["t"].transform("size").to_numpy()
    columns = {f"d{k}": log_y - pd.Series(log_y).groupby(frame["id"], sort=False).shift(k).to_numpy()
               for k in lags}
    parts = pd.concat([frame[["id", "t"]], pd.DataFrame(columns), calendar(frame["t"].to_numpy() - lengths)], axis=1)
    parts = parts[by_id.cumcount().to_numpy() >= max(lags)]
    future_columns = calendar_columns(CALENDAR)
    panel = Panel.from_long(parts, "id", "t", list(columns), future_columns=future_columns,
                            source="M4 Hourly train (seasonal log-differences)")
    panel = panel.with_bounds(split_last(panel.lengths, val_steps, 0))
    future = calendar(np.arange(horizon)).to_numpy(np.float32)
    return panel, np.broadcast_to(future, (panel.n_series, horizon, len(future_columns))).copy()


def sdiff_scaler(panel):
    """Each difference column divided by its mean absolute value on the series' training rows (for d_24 this is
    the MASE scale of log y), not centred: zero stays "the same as k steps before"."""
    from lstm_lab.data.panel import ragged_rows
    from lstm_lab.data.panel_scaling import PanelScaler

    n = panel.bounds[:, 0]
    rows = ragged_rows(panel.offsets[:-1], n)
    d = np.abs(np.asarray(panel.values[rows, : panel.n_targets], dtype=np.float64))  # (M, C)
    scale = np.add.reduceat(d, np.cumsum(n) - n, axis=0) / n[:, None]  # (S, C)
    return PanelScaler("sdiff", tuple(pd.Index(panel.ids).tolist()), tuple(panel.target_columns),
                       np.zeros_like(scale), np.where(scale > 0, scale, 1.0))


def restore_sdiff(quantiles: np.ndarray, scaler, train: pd.DataFrame, ids, lags=LAGS) -> np.ndarray:
    """Scaled difference quantiles (S, H, C, Q) → quantiles of y (S, H, Q): step h from lag k = the smallest
    of ``lags`` above h, ``y_(n+h-k) · exp(d_k)`` (exp and a known shift keep quantiles quantiles)."""
    from lstm_lab.data.m4 import long_to_padded

    S, H, C, Q = quantiles.shape
    train_ids, insample = long_to_padded(train)
    rows = pd.Index(train_ids).get_indexer(pd.Index(ids))
    n = np.isfinite(insample[rows]).sum(axis=1)  # (S,)
    h = np.arange(H)
    which = np.searchsorted(np.asarray(lags), h, side="right")  # (H,) column of the smallest lag > h
    lag = np.asarray(lags)[which]  # (H,)
    base = np.log(insample[rows][np.arange(S)[:, None], n[:, None] + h - lag])  # (S, H) log y_(n+h-k)
    d = quantiles[:, h, which, :] * scaler.scale[:, which][:, :, None]  # (S, H, Q)
    return np.exp(base[..., None] + d)


def score(train: pd.DataFrame, test: pd.DataFrame, ids, quantiles: np.ndarray, levels=LEVELS) -> dict:
    """The competition's Hourly summary of forecasts (S, H, Q) for ``ids``: sMAPE, MASE, OWA (official Naive2),
    MSIS, coverage and ACD of [q0.025, q0.975], plus the 80 % interval's coverage."""
    from lstm_lab.data.m4 import long_to_padded, m4_group
    from lstm_lab.evaluation.m4 import M4_NAIVE2_OFFICIAL, coverage, m4_scores

    m = m4_group(GROUP).seasonality
    train_ids, insample = long_to_padded(train)
    test_ids, actual = long_to_padded(test)
    rows = pd.Index(train_ids).get_indexer(pd.Index(ids))
    if (rows < 0).any() or pd.Index(test_ids).get_indexer(pd.Index(ids)).tolist() != rows.tolist():
        raise ValueError("forecast ids are not the training/test files' ids")
    level = list(np.round(levels, 6))
    q = lambda p: quantiles[..., level.index(p)]  # noqa: E731
    out = m4_scores(actual[rows], q(0.5), insample[rows], m, naive2=M4_NAIVE2_OFFICIAL[GROUP],
                    lower=q(0.025), upper=q(0.975))
    out["coverage80"] = coverage(actual[rows], q(0.1), q(0.9))
    return out


def baseline_scores(train: pd.DataFrame, test: pd.DataFrame) -> dict[str, dict]:
    """sNaive and Naive2 recomputed here: a check that the glue scores like the competition did."""
    from lstm_lab.data.m4 import long_to_padded, m4_group
    from lstm_lab.evaluation.m4 import M4_NAIVE2_OFFICIAL, m4_scores, naive2_forecast, snaive_forecast

    g = m4_group(GROUP)
    _, insample = long_to_padded(train)
    _, actual = long_to_padded(test)
    return {name: m4_scores(actual, f(insample, g.horizon, g.seasonality), insample, g.seasonality,
                            naive2=M4_NAIVE2_OFFICIAL[GROUP])
            for name, f in (("sNaive", snaive_forecast), ("Naive2", naive2_forecast))}


def write_submissions(ids, quantiles: np.ndarray, out_dir: Path, levels=LEVELS) -> list[Path]:
    """``id,F1..FH`` files for the median (forecast), q0.025 (lo95) and q0.975 (hi95)."""
    from lstm_lab.data.m4 import m4_long_to_wide

    S, H, _ = quantiles.shape
    out_dir.mkdir(parents=True, exist_ok=True)
    level = list(np.round(levels, 6))
    paths = []
    for name, p in (("forecast", 0.5), ("lo95", 0.025), ("hi95", 0.975)):
        frame = pd.DataFrame({"id": np.repeat(np.asarray(ids, dtype=object), H), "t": np.tile(np.arange(H), S),
                              "y": quantiles[..., level.index(p)].reshape(-1)})
        path = out_dir / f"{GROUP.lower()}_{name}.csv"
        m4_long_to_wide(frame, H).to_csv(path, index=False)
        paths.append(path)
    return paths


def read_anchors(path: Path) -> dict[str, dict[str, str]]:
    if not path.is_file():
        return {}
    with open(path, newline="") as f:
        return {row["method"]: row for row in csv.DictReader(f) if row.get("method") in ANCHOR_ROWS}


# --------------------------------------------------------------------------------------------------------------
# the run
# --------------------------------------------------------------------------------------------------------------
def choose_threads(requested: int | None) -> int:
    if requested:
        return requested
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return 1 if os.getloadavg()[0] >= 0.75 * cpus else min(2, cpus)


def prepare(args, train: pd.DataFrame):
    """(scaled panel, its scaler, future covariates (S, H, U), quantiles (S, H, C, Q) scaled → of y (S, H, Q),
    residual mode) for ``args.target``: ``sdiff`` (seasonal log-differences, sNaive at zero) or ``level``."""
    if args.target == "sdiff":
        panel, future = build_sdiff_panel(train, args.horizon, args.val_steps)
        scaler = sdiff_scaler(panel)
        return scaler.transform(panel), scaler, future, lambda q: restore_sdiff(q, scaler, train, panel.ids), False
    panel, future = build_panel(train, args.horizon, args.val_steps)
    clip = bool((np.asarray(panel.values[:, 0]) >= 0).all())
    source = with_log_target(panel) if args.log else panel
    scaler = fit_scaler(source, args.scaling)
    return scaler.transform(source), scaler, future, lambda q: to_original_scale(q, scaler, args.log, clip), True


def train_and_forecast(args, train: pd.DataFrame, log=print):
    """Prepare, fit with a wall-time cap, forecast after every end: (ids, quantiles of y (S, H, Q), fit info)."""
    import lightning.pytorch as pl
    import torch
    from lightning.pytorch.callbacks import Timer

    from lstm_lab.data.panel_windows import ForecastOrigins
    from lstm_lab.models.spec import ModelSpec
    from lstm_lab.training.config import TrainingConfig
    from lstm_lab.training.entry import fit
    from lstm_lab.training.panel_module import (PanelDataModule, PanelModule, build_panel_forecaster,
                                                panel_hparams, predict_quantiles)

    scaled, scaler, future, restore, residual = prepare(args, train)
    log(f"{scaled.n_series} series, {len(scaled.values):,} rows, targets {list(scaled.target_columns)}; "
        f"{torch.get_num_threads()} torch thread(s)")
    cfg = TrainingConfig(
        seed=args.seed, max_epochs=args.max_epochs, batch_size=args.batch_size, learning_rate=args.lr,
        lr_schedule={"kind": "plateau", "factor": 0.5, "patience": 3, "min_lr": 1e-4},
        early_stopping_patience=args.patience, num_threads=args.threads, resume="never",
        trainer={"gradient_clip_val": 1.0},
    )
    spec = ModelSpec(hidden_sizes=args.hidden, impl="native")
    hp = panel_hparams(scaled, args.lookback, args.horizon, spec, id_embedding=args.embedding, levels=LEVELS,
                       context_size=args.context, local_hidden=args.local_hidden, residual=residual,
                       training=cfg.model_dump(mode="json"), scaler=scaler.as_dict(), target=args.target)
    pl.seed_everything(args.seed, workers=True, verbose=False)
    net = build_panel_forecaster(hp)
    if not residual:  # start at a zero change of every difference: the untrained model is sNaive
        torch.nn.init.zeros_(net.local_mlp[-1].weight)
        torch.nn.init.zeros_(net.local_mlp[-1].bias)
    module = PanelModule(net, cfg, hp)
    data = PanelDataModule(scaled, args.lookback, args.horizon, args.stride, args.batch_size, args.seed,
                           max_windows_per_epoch=args.windows_per_epoch)
    log(f"train windows {len(data.dataset('train')):,}, val windows {len(data.dataset('val')):,}; "
        f"{args.windows_per_epoch or len(data.dataset('train')):,} drawn per epoch; training budget {args.minutes} min")
    timer = Timer(duration=timedelta(minutes=args.minutes), interval="step")
    start = time.perf_counter()
    result = fit(module, data, cfg, callbacks=[timer])
    fit_s = time.perf_counter() - start
    net = result.module.net
    q = predict_quantiles(net, ForecastOrigins(scaled, args.lookback, args.horizon, future), batch_size=512)
    info = {"fit_s": fit_s, "history": result.history, "best_val_loss": result.best_val_loss,
            "epochs": result.epochs, "params": sum(p.numel() for p in net.parameters()),
            "threads": torch.get_num_threads(), "train_windows": len(data.dataset("train"))}
    return scaled.ids, restore(q), info


def target_text(args) -> str:
    if args.target == "sdiff":
        return (f"targets the seasonal log-differences log y_t - log y_t-k for k in {list(LAGS)} (step h after the "
                f"end rebuilt from the smallest k > h), each divided by its mean absolute value on the series' "
                f"training rows, zero-initialised output layer (the untrained model is exactly sNaive)")
    return (f"target {'log y' if args.log else 'y'}, per-series {args.scaling} scaling (train rows), residual on "
            f"the last value (the untrained model is the naive forecast)")


def report(args, scores, baselines, info, anchors, load_before, load_after, wall_s, rss_mb, cpu) -> str:
    fmt = lambda v: "" if v in (None, "") else f"{float(v):.3f}"  # noqa: E731
    hist = info["history"]
    initial = next((r.get("val_loss") for r in hist if r.get("epoch") == 0), None)
    best = min((r for r in hist if r.get("epoch", 0) > 0 and "val_loss" in r), key=lambda r: r["val_loss"],
               default=None)
    lines = [
        "# M4 Hourly: global panel LSTM (preliminary, benchmark script)", "",
        f"- date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}",
        f"- machine: {cpu}, {os.cpu_count()} cores visible, CPU only; torch threads {info['threads']}",
        f"- load average (1/5/15 min) before: {' / '.join(f'{x:.2f}' for x in load_before)}, after: "
        f"{' / '.join(f'{x:.2f}' for x in load_after)}",
        f"- command: `{shlex.join(['.venv/bin/python', 'benchmarks/m4_hourly.py', *args.argv])}`",
        f"- wall time {wall_s:.0f} s (training {info['fit_s']:.0f} s of a {args.minutes:g}-minute budget), "
        f"peak RSS {rss_mb:.0f} MiB",
        "",
        "Settings: PanelForecaster, LSTM hidden " + str(args.hidden) + f", lookback {args.lookback}, horizon "
        f"{args.horizon}, id embedding {args.embedding}, context {args.context} per step, local MLP "
        f"{args.local_hidden}, quantile head {list(LEVELS)} (pinball loss), {target_text(args)}, future covariates "
        f"hour-of-day and day-of-week (sin, cos) counted from each series' end; Adam lr {args.lr}, plateau x0.5 "
        f"after 3 epochs (min 1e-4), gradient clip 1.0, batch {args.batch_size}, "
        f"{args.windows_per_epoch or info['train_windows']:,} windows drawn per epoch of {info['train_windows']:,}, "
        f"early stopping patience {args.patience} on the last {args.val_steps} steps of each training series; "
        f"{info['params']:,} parameters.",
        f"Training: {info['epochs']} epoch(s); val pinball {initial if initial is None else f'{initial:.4f}'} "
        f"untrained ({'sNaive' if args.target == 'sdiff' else 'naive'}) -> {info['best_val_loss']:.4f} best"
        + (f" (epoch {best['epoch']}, val MAE {best.get('val_mae', float('nan')):.4f})" if best else "") + ".",
        "",
        "| method | sMAPE | MASE | OWA | MSIS | ACD (95 %) |", "|---|---|---|---|---|---|",
        f"| **this run** | {scores['smape']:.3f} | {scores['mase']:.3f} | {scores['owa']:.3f} | {scores['msis']:.3f} | "
        f"{scores['acd']:.3f} (coverage {scores['coverage']:.3f}) |",
    ]
    for name, s in baselines.items():
        lines.append(f"| {name} (recomputed here) | {s['smape']:.3f} | {s['mase']:.3f} | {s['owa']:.3f} | | |")
    for key, label in ANCHOR_ROWS.items():
        if (row := anchors.get(key)) is not None:
            lines.append(f"| {label}, official | {fmt(row['smape'])} | {fmt(row['mase'])} | {fmt(row['owa'])} | "
                         f"{fmt(row['msis'])} | {fmt(row['acd'])} |")
    lines += [
        "", f"80 % interval [q0.1, q0.9] coverage: {scores['coverage80']:.3f}.", "",
        "Note: a preliminary run from this benchmark script with a hard training-time budget on a shared CPU, one "
        "seed, no tuning, no ensembling. The issue's `kedro run --pipelines=forecast --env=m4` is not wired yet; "
        "the numbers above are what the Lightning layer (training/panel_module.py) reaches under that budget.",
    ]
    return "\n".join(lines) + "\n"



def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--m4-dir", type=Path, default=REPO.parent / "shared/data/m4")
    p.add_argument("--out", type=Path, default=REPO / "data/07_model_output/m4")
    p.add_argument("--results", type=Path, default=REPO / "benchmarks/results/m4_hourly.md")
    p.add_argument("--anchors", type=Path, default=REPO.parent / "shared/anchors/m4_hourly_anchors.csv")
    p.add_argument("--minutes", type=float, default=30.0, help="training wall-time budget")
    p.add_argument("--lookback", type=int, default=168)
    p.add_argument("--horizon", type=int, default=48)
    p.add_argument("--val-steps", type=int, default=48)
    p.add_argument("--stride", type=int, default=1)
    p.add_argument("--hidden", type=int, nargs="+", default=[64])
    p.add_argument("--embedding", type=int, default=8)
    p.add_argument("--context", type=int, default=16)
    p.add_argument("--local-hidden", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--windows-per-epoch", type=int, default=25_600, help="0 = every training window")
    p.add_argument("--max-epochs", type=int, default=1000)
    p.add_argument("--patience", type=int, default=10)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--target", choices=("sdiff", "level"), default="sdiff",
                   help="sdiff: seasonal log-differences (untrained = sNaive); level: the series itself")
    p.add_argument("--scaling", choices=("seasonal", "standard"), default="seasonal",
                   help="level target: the MASE scale (seasonal naive MAE) or the std per series")
    p.add_argument("--log", action=argparse.BooleanOptionalAction, default=True, help="level target: model log(y)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default 2, or 1 when the load is high)")
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    args.windows_per_epoch = args.windows_per_epoch or None
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    start, load_before = time.perf_counter(), os.getloadavg()
    args.threads = choose_threads(args.threads)
    import torch

    torch.set_num_threads(args.threads)
    train, test = load_m4(args.m4_dir)
    ids, quantiles, info = train_and_forecast(args, train, log=lambda line: print(line, flush=True))
    scores = score(train, test, ids, quantiles)
    paths = write_submissions(ids, quantiles, args.out)
    wall_s = time.perf_counter() - start
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    text = report(args, scores, baseline_scores(train, test), info, read_anchors(args.anchors), load_before,
                  os.getloadavg(), wall_s, rss_mb, cpu_model())
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(text)
    print(text, flush=True)
    print("wrote", args.results, *paths, sep="\n  ")
    return {"scores": scores, "info": info, "paths": paths, "wall_s": wall_s, "rss_mb": rss_mb}


if __name__ == "__main__":
    main()
