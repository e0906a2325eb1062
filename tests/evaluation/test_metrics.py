"""Baselines and scores against hand-written loops."""

import numpy as np
import pytest

from lstm_lab.errors import LstmLabError
from lstm_lab.evaluation.metrics import mase_scale, naive_forecast, scores, seasonal_naive_forecast


def test_naive_and_seasonal_naive_match_loops():
    rng = np.random.default_rng(3)
    series = rng.normal(size=(200, 2))
    starts, H, m = np.array([60, 61, 90, 150]), 9, 4
    naive = naive_forecast(series, starts, H)
    seasonal = seasonal_naive_forecast(series, starts, H, m)
    for w, t in enumerate(starts):
        for h in range(H):
            assert np.array_equal(naive[w, h], series[t - 1])
            # step h+1 ahead repeats the latest observed value of the same season
            k = 1
            while t + h - k * m > t - 1:
                k += 1
            assert np.array_equal(seasonal[w, h], series[t + h - k * m])


def test_seasonal_naive_too_early_is_an_error():
    with pytest.raises(LstmLabError, match="seasonal_period"):
        seasonal_naive_forecast(np.zeros((50, 1)), np.array([10]), 4, period=24)


def test_scores_and_mase():
    true = np.zeros((2, 3, 1))
    pred = np.full((2, 3, 1), 2.0)
    train = np.arange(10.0)[:, None]  # seasonal differences with m=2 are all 2
    scale = mase_scale(train, 2)
    assert scale.tolist() == [2.0]
    assert scores(pred, true, scale) == {"mse": 4.0, "mae": 2.0, "mase": 1.0}
