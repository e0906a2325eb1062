"""The report figures show what they claim: the whole actual test span, whole-number epochs, sorted sweeps."""

import numpy as np
import pandas as pd

from lstm_lab.evaluation import plots


def test_actual_line_covers_every_forecast_time():
    H, W = 4, 6
    times = pd.date_range("2020-01-01", periods=W + H - 1, freq="D")
    rows = [{"window": w, "step": h + 1, "target": "y", "time": times[w + h], "actual": float(w + h),
             "lstm": 0.0, "naive": 0.0, "seasonal_naive": 0.0} for w in range(W) for h in range(H)]
    fig = plots.forecast_vs_actual(pd.DataFrame(rows), "y", H)
    actual = next(line for line in fig.axes[0].lines if line.get_label() == "actual")
    assert len(actual.get_xdata()) == W + H - 1  # the last H-1 test points too, not only the 1-step rows
    far = next(line for line in fig.axes[0].lines if line.get_label() == f"LSTM, {H} step(s) ahead")
    assert max(far.get_xdata()) <= max(actual.get_xdata())  # no forecast past the data


def test_learning_curve_epochs_are_whole_numbers():
    history = pd.DataFrame({"epoch": [0, 1, 2], "train_loss": [1.0, 0.5, 0.3], "val_loss": [1.1, 0.6, 0.4]})
    fig = plots.learning_curves(history)
    fig.canvas.draw()
    ticks = fig.axes[0].get_xticks()
    assert np.allclose(ticks, np.round(ticks))


def test_sweep_importance_orders_numbers_and_rounds_labels():
    table = pd.DataFrame({"val_loss": [0.3, 0.1, 0.2], "model.hidden_sizes": ["[128]", "[16]", "[64, 64]"],
                          "training.dropout": [0.123456, 0.2, 0.3]})
    fig = plots.sweep_importance(table, ["model.hidden_sizes", "training.dropout"])
    fig.canvas.draw()
    by_name = {ax.get_xlabel().split()[0]: ax for ax in fig.axes}
    labels = [t.get_text() for t in by_name["model.hidden_sizes"].get_xticklabels()]
    assert labels == ["[16]", "[64, 64]", "[128]"]  # by total width (ties: by layers), not as text
