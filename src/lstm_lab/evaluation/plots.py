"""Figures for the reports: learning curves and forecast vs actual. Pure matplotlib (Agg), returns Figures."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def learning_curves(history: pd.DataFrame, title: str = "learning curves",
                    panels: dict[str, str] | None = None, log_scale: bool = True):
    """``train_<m>`` and ``val_<m>`` per epoch, one panel per metric ``m`` of ``panels`` {m: y-axis label}
    (default: the forecast's loss, log scale). Every pipeline's learning-curve figure comes from here."""
    panels = panels or {"loss": "MSE (scaled)"}
    size = (7, 4) if len(panels) == 1 else (4.5 * len(panels), 3.6)
    fig, axes = plt.subplots(1, len(panels), figsize=size, squeeze=False)
    epochs = history["epoch"] if "epoch" in history else np.arange(1, len(history) + 1)  # 0 = before training
    for ax, (metric, label) in zip(axes[0], panels.items()):
        for column in (f"train_{metric}", f"val_{metric}"):
            if column in history:
                ax.plot(epochs, history[column], marker="o", markersize=3, label=column)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        ax.set_ylabel(label)
        if log_scale:
            ax.set_yscale("log")
        ax.grid(True, alpha=0.3)
        ax.legend()
    if len(panels) == 1:
        axes[0, 0].set_title(title)
    else:
        fig.suptitle(title)
        fig.tight_layout()
    return fig


def forecast_vs_actual(predictions: pd.DataFrame, target: str, horizon: int):
    """Actual test series with the 1-step-ahead and H-step-ahead LSTM forecasts and the baselines' H-step."""
    fig, ax = plt.subplots(figsize=(10, 4.5))
    rows = predictions[predictions["target"] == target]
    rows = rows.assign(time=pd.to_datetime(rows["time"]))  # read back from CSV as text
    # Every test time that some window forecasts, not only the 1-step rows: those stop H-1 steps before the
    # end of the split, and the H-step forecast would run past the actual line.
    actual = rows.groupby("time")["actual"].first().sort_index()
    ax.plot(actual.index, actual.values, color="black", linewidth=1.2, label="actual")
    for step, style in ((1, "-"), (horizon, "--")):
        at = rows[rows["step"] == step].set_index("time")
        ax.plot(at.index, at["lstm"], style, linewidth=1, label=f"LSTM, {step} step(s) ahead")
    far = rows[rows["step"] == horizon].set_index("time")
    ax.plot(far.index, far["seasonal_naive"], ":", linewidth=1, label=f"seasonal naive, {horizon} ahead")
    ax.set_title(f"{target}: forecast vs actual on the test split")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.autofmt_xdate()
    return fig


def panel_intervals(predictions: pd.DataFrame, target: str, n_series: int = 4):
    """A few series' last test window: actual, median and every interval as a shaded band (wider = lighter)."""
    rows = predictions[predictions["target"] == target] if "target" in predictions else predictions
    ids = list(pd.unique(rows["id"]))[:n_series] if len(rows) else []
    fig, axes = plt.subplots(max(len(ids), 1), 1, figsize=(10, 2.4 * max(len(ids), 1)), squeeze=False)
    if not ids:
        axes[0, 0].text(0.5, 0.5, "no test windows", ha="center", va="center")
        axes[0, 0].set_axis_off()
        return fig
    bands = sorted((int(c[2:]) for c in rows.columns if c.startswith("lo") and c[2:].isdigit()), reverse=True)
    for ax, series in zip(axes[:, 0], ids):
        one = rows[rows["id"] == series]
        if "window" in one:
            one = one[one["window"] == one["window"].max()]  # the last origin of this series
        one = one.sort_values("step")
        x = one["step"].to_numpy()
        for k, pct in enumerate(bands):
            ax.fill_between(x, one[f"lo{pct}"], one[f"hi{pct}"], alpha=0.15 + 0.15 * k, color="tab:blue",
                            linewidth=0, label=f"{pct} % interval")
        ax.plot(x, one["median"], color="tab:blue", linewidth=1.2, label="median")
        if "actual" in one:
            ax.plot(x, one["actual"], color="black", linewidth=1.2, label="actual")
        ax.set_ylabel(str(series), fontsize=8)
        ax.grid(True, alpha=0.3)
    axes[0, 0].set_title(f"{target}: forecasts with prediction intervals (last test window of {len(ids)} series)")
    axes[0, 0].legend(fontsize=7, ncol=len(bands) + 2)
    axes[-1, 0].set_xlabel("steps ahead")
    fig.tight_layout()
    return fig


def sweep_importance(table: pd.DataFrame, parameters: list[str], metric: str = "val_loss", top: int = 4):
    """val_loss against each of the ``top`` most important swept parameters (importance: see below).

    Importance is the share of the metric's variance explained by the parameter: the squared rank correlation
    for numbers, the between-group share (eta squared) for categories. Crude on a few trials, but it orders the
    panels so the first one is where the sweep found a difference.
    """
    done = table[np.isfinite(pd.to_numeric(table[metric], errors="coerce"))]
    scored = []
    for name in parameters:
        column = done[name]
        numeric = pd.to_numeric(column, errors="coerce")
        groups = done.groupby(column.astype(str))[metric]
        total = float(((done[metric] - done[metric].mean()) ** 2).sum())
        between = float((groups.count() * (groups.mean() - done[metric].mean()) ** 2).sum())
        eta2 = between / total if total > 0 else 0.0
        if numeric.notna().all() and numeric.nunique() > 2:
            rho = numeric.rank().corr(done[metric].rank()) if len(done) > 2 else 0.0
            scored.append((0.0 if pd.isna(rho) else float(rho) ** 2, name, True))
        else:  # categories, or a number with two values: between-group share (plotted on a number axis if numeric)
            scored.append((eta2, name, bool(numeric.notna().all())))
    scored.sort(key=lambda item: -item[0])
    chosen = scored[:top] or [(0.0, "(no parameters)", False)]
    fig, axes = plt.subplots(1, len(chosen), figsize=(4 * len(chosen), 3.6), squeeze=False)
    for ax, (importance, name, numeric) in zip(axes[0], chosen, strict=True):
        if name in done:
            if numeric:
                x = pd.to_numeric(done[name])
                if (x > 0).all() and x.max() / x.min() >= 10:  # learning rates and the like
                    ax.set_xscale("log")
            else:
                labels = done[name].map(_label)
                order = sorted(labels.unique(), key=_sort_key)
                x = labels.map({label: i for i, label in enumerate(order)})
                ax.set_xticks(range(len(order)), order)
            ax.scatter(x, done[metric], alpha=0.8)
            best = done[metric].idxmin()
            ax.scatter([x[best]], [done[metric][best]], color="red", marker="*", s=150, label="best")
            ax.legend(fontsize=8)
        ax.set_xlabel(f"{name}  (importance {importance:.2f})")
        ax.set_ylabel(metric)
        ax.grid(True, alpha=0.3)
        ax.tick_params(axis="x", labelrotation=30)
    fig.suptitle(f"{metric} by parameter, {len(done)} finished trial(s) of {len(table)}")
    fig.tight_layout()
    return fig


def _label(value) -> str:
    """A category's tick label: numbers rounded to 3 significant digits, anything else as written."""
    number = pd.to_numeric(pd.Series([value]), errors="coerce").iloc[0]
    return f"{number:.3g}" if pd.notna(number) else str(value)


def _sort_key(label: str):
    """Categories in numeric order where they are numbers or lists of numbers (``[64, 64]`` before ``[128]``)."""
    import json

    try:
        value = json.loads(label)
    except (ValueError, TypeError):
        return (2, label)
    if isinstance(value, int | float):
        return (0, [value])
    if isinstance(value, list) and all(isinstance(v, int | float) for v in value):
        return (1, [sum(value), *value])
    return (2, label)
