"""Scores of probabilistic panel forecasts agree with the M4 definitions."""

import numpy as np
import pytest

from lstm_lab.evaluation import m4
from lstm_lab.evaluation.panel_forecast import in_sample_scale, interval_bounds, quantile_scores


def test_interval_bounds_pair_symmetric_levels():
    assert interval_bounds([0.025, 0.1, 0.5, 0.9, 0.975]) == {80: (1, 3), 95: (0, 4)}
    assert interval_bounds([0.5]) == {}


def test_in_sample_scale_is_the_mase_scale():
    rng = np.random.default_rng(0)
    series = [rng.normal(10, 2, n) for n in (50, 80, 31)]
    flat = np.concatenate(series)
    starts = np.cumsum([0, 50, 80])
    np.testing.assert_allclose(in_sample_scale(flat, starts, np.array([50, 80, 31]), 24),
                               m4.mase_scale(series, 24), rtol=1e-12)
    # too short for the season: lag 1; constant: 1
    out = in_sample_scale(np.array([1.0, 2.0, 4.0, 5.0, 5.0, 5.0]), np.array([0, 3]), np.array([3, 3]), 24)
    np.testing.assert_allclose(out, [1.5, 1.0])


def test_quantile_scores_follow_the_m4_measures():
    rng = np.random.default_rng(1)
    actual = rng.normal(100, 5, (6, 4))
    levels = [0.025, 0.5, 0.975]
    q = np.stack([actual - 9, actual + rng.normal(0, 1, actual.shape), actual + 9], axis=-1)
    scale = rng.uniform(1, 2, 6)
    s = quantile_scores(actual, q, levels, scale)
    assert s["smape"] == pytest.approx(m4.smape(actual, q[..., 1]).mean())
    assert s["mase"] == pytest.approx(m4.mase(actual, q[..., 1], scale).mean())
    assert s["msis95"] == pytest.approx(m4.msis(actual, q[..., 0], q[..., 2], scale).mean())
    assert s["coverage95"] == 1.0
