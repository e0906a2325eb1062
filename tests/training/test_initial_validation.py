"""The forecaster never ends worse than naive on validation: it starts as the naive forecast (zero output layer),
the untrained model is validated before the first epoch (history epoch 0), and kept unless an epoch beats it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lstm_lab.data.windowing import gather, target_starts
from lstm_lab.models.forecaster import LSTMForecaster
from lstm_lab.models.spec import ModelSpec
from lstm_lab.training.entry import run_training
from lstm_lab.training.forecast.task import TASK
from tests.conftest import typed_params

LOOKBACK, HORIZON = 12, 3


def random_walk(n=400, seed=0):
    steps = np.random.default_rng(seed).normal(size=n).astype(np.float32)
    return np.cumsum(steps)[:, None] / 10  # (N, 1): naive is the best forecast of a random walk


def params(change):
    return typed_params("forecast", {
        "window": {"lookback": LOOKBACK, "horizon": HORIZON},
        "model": {"hidden_sizes": [8]},
        "training": {"max_epochs": 3, "batch_size": 64, "resume": "never", "early_stopping_patience": 2, **change},
    })


def naive_val_mse(series, bounds):
    starts = target_starts((bounds["train_end"], bounds["val_end"]), LOOKBACK, HORIZON)
    truth = gather(series, starts, HORIZON)  # (W, H, 1)
    last = series[starts - 1][:, None, :]  # (W, 1, 1)
    return float(np.mean((truth - last) ** 2))


def test_the_untrained_residual_forecaster_is_exactly_naive():
    net = LSTMForecaster(2, 1, HORIZON, ModelSpec(hidden_sizes=[8]), residual=True)
    x = torch.randn(5, LOOKBACK, 2)
    assert torch.equal(net(x), x[:, -1:, :1].expand(5, HORIZON, 1))


@pytest.mark.parametrize("learning_rate, kept", [(0.005, False), (5.0, True)])
def test_training_keeps_the_untrained_model_unless_an_epoch_beats_it(tmp_path, learning_rate, kept):
    series = random_walk()
    bounds = {"train_end": 280, "val_end": 340, "test_end": 400}
    data = {"inputs": series, "targets": series, "bounds": bounds, "scaler": None}
    result = run_training(TASK, params({"learning_rate": learning_rate, "optimizer": "sgd" if kept else "adam"}),
                          data, checkpoint_dir=tmp_path)
    first, *epochs = result.history
    assert first["epoch"] == 0 and set(first) == {"epoch", "val_loss"}
    assert first["val_loss"] == pytest.approx(naive_val_mse(series, bounds), rel=1e-5)  # untrained = naive
    assert [row["epoch"] for row in epochs] == list(range(1, result.epochs + 1))
    assert result.best_val_loss <= first["val_loss"]  # never worse than naive on validation
    trained_best = min(row["val_loss"] for row in epochs)
    if kept:  # a learning rate that only makes things worse: the naive-equivalent weights come back
        assert trained_best > first["val_loss"] and result.best_val_loss == first["val_loss"]
        assert result.checkpoint["epoch"] == 0
        net = TASK.from_checkpoint(result.checkpoint).net
        x = torch.from_numpy(series[None, :LOOKBACK])
        assert torch.equal(net(x), x[:, -1:, :].expand(1, HORIZON, 1))
    else:
        assert result.best_val_loss == pytest.approx(min(trained_best, first["val_loss"]))
