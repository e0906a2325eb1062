"""Figures for the reports: learning curves and forecast vs actual. Pure matplotlib (Agg), returns Figures."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402


def learning_curves(history: pd.DataFrame, title: str = "learning curves"):
    fig, ax = plt.subplots(figsize=(7, 4))
    for column in ("train_loss", "val_loss"):
        if column in history:
            ax.plot(history["epoch"] + 1, history[column], marker="o", markersize=3, label=column)
    ax.set_xlabel("epoch")
    ax.set_ylabel("MSE (scaled)")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend()
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
