"""Figures for the reports: learning curves and forecast vs actual. Pure matplotlib (Agg), returns Figures."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def learning_curves(history: pd.DataFrame, title: str = "learning curves",
                    panels: dict[str, str] | None = None, log_scale: bool = True):
    """``train_<m>`` and ``val_<m>`` per epoch, one panel per metric ``m`` of ``panels`` {m: y-axis label}
    (default: the forecast's loss, log scale). Every pipeline's learning-curve figure comes from here."""
    panels = panels or {"loss": "MSE (scaled)"}
    size = (7, 4) if len(panels) == 1 else (4.5 * len(panels), 3.6)
    fig, axes = plt.subplots(1, len(panels), figsize=size, squeeze=False)
    epochs = history["epoch"] + 1 if "epoch" in history else np.arange(1, len(history) + 1)
    for ax, (metric, label) in zip(axes[0], panels.items()):
        for column in (f"train_{metric}", f"val_{metric}"):
            if column in history:
                ax.plot(epochs, history[column], marker="o", markersize=3, label=column)
        ax.set_xlabel("epoch")
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
    actual = rows[rows["step"] == 1].set_index("time")["actual"]
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


def sweep_importance(table: pd.DataFrame, parameters: list[str], metric: str = "val_loss", top: int = 4):
    """val_loss against each of the ``top`` most important swept parameters (importance: see below).

    Importance is the share of the metric's variance explained by the parameter: the squared rank correlation
    for numbers, the between-group share (eta squared) for categories. Crude on a few trials, but it orders the
    panels so the first one is where the sweep found a difference.
    """
    import numpy as np

    done = table[np.isfinite(pd.to_numeric(table[metric], errors="coerce"))]
    scored = []
    for name in parameters:
        column = done[name]
        numeric = pd.to_numeric(column, errors="coerce")
        if numeric.notna().all() and numeric.nunique() > 2:
            rho = numeric.rank().corr(done[metric].rank()) if len(done) > 2 else 0.0
            scored.append((0.0 if pd.isna(rho) else float(rho) ** 2, name, True))
        else:
            groups = done.groupby(column.astype(str))[metric]
            total = float(((done[metric] - done[metric].mean()) ** 2).sum())
            between = float((groups.count() * (groups.mean() - done[metric].mean()) ** 2).sum())
            scored.append((between / total if total > 0 else 0.0, name, False))
    scored.sort(key=lambda item: -item[0])
    chosen = scored[:top] or [(0.0, "(no parameters)", False)]
    fig, axes = plt.subplots(1, len(chosen), figsize=(4 * len(chosen), 3.6), squeeze=False)
    for ax, (importance, name, numeric) in zip(axes[0], chosen, strict=True):
        if name in done:
            x = pd.to_numeric(done[name]) if numeric else done[name].astype(str)
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
