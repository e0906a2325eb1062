"""M4 measures on hand-computed tiny arrays, and the benchmarks reproducing the official M4 Hourly scores."""

import csv
import math

import numpy as np
import pytest

from lstm_lab.errors import LstmLabError
from lstm_lab.evaluation.m4 import (
    M4_NAIVE2_OFFICIAL,
    acd,
    acf,
    coverage,
    m4_scores,
    mase,
    mase_scale,
    msis,
    naive2_forecast,
    naive_forecast,
    naive_interval,
    owa,
    pinball,
    seasonal_indices,
    seasonality_test,
    smape,
    snaive_forecast,
)
from tests.conftest import SHARED

M4 = SHARED / "m4"
ANCHORS = SHARED.parent / "anchors" / "m4_hourly_anchors.csv"


# ---------------------------------------------------------------------------------------------------------------
# measures, by hand
# ---------------------------------------------------------------------------------------------------------------
def test_smape_mase_owa_by_hand():
    y, f = np.array([[100.0, 200.0]]), np.array([[110.0, 180.0]])
    assert smape(y, f)[0] == pytest.approx(200 * (10 / 210 + 20 / 380) / 2)  # 10.0251 %
    assert smape([[0.0, 5.0]], [[0.0, 5.0]])[0] == 0.0  # 0/0 counts as a perfect step
    assert mase_scale([np.array([1.0, 2, 4, 7])], 1)[0] == pytest.approx(2.0)  # (1 + 2 + 3) / 3
    assert mase_scale([np.array([1.0, 2, 4, 7, 11])], 2)[0] == pytest.approx(5.0)  # (3 + 5 + 7) / 3
    assert mase([[8.0, 10.0]], [[7.0, 7.0]], [2.0])[0] == pytest.approx(1.0)  # MAE 2 / scale 2
    two = mase(np.array([[1.0, 1.0], [4.0, 4.0]]), np.zeros((2, 2)), np.array([1.0, 2.0]))
    np.testing.assert_allclose(two, [1.0, 2.0])  # per series, each with its own scale
    assert owa(9.0, 1.2, 18.0, 2.4) == pytest.approx(0.5)


def test_interval_scores_by_hand():
    y = np.array([[5.0, 0.0, 12.0]])
    lower, upper = np.full((1, 3), 4.0), np.full((1, 3), 10.0)
    # widths 6; y=0 is 4 below L: + 40·4; y=12 is 2 above U: + 40·2 → (6 + 166 + 86) / 3 = 86, scale 2 → 43
    assert msis(y, lower, upper, [2.0])[0] == pytest.approx(43.0)
    assert msis(y, lower, upper, [2.0], alpha=0.2)[0] == pytest.approx((18 + 4 * 10 + 2 * 10) / 3 / 2)
    assert coverage(y, lower, upper) == pytest.approx(1 / 3)
    assert acd(y, lower, upper) == pytest.approx(0.95 - 1 / 3)
    assert coverage([[4.0, 10.0]], [[4.0, 4.0]], [[10.0, 10.0]]) == 1.0  # bounds count as inside


def test_pinball_by_hand():
    # q=0.1 under-forecast by 2: 0.1·2 = 0.2; q=0.9 over-forecast by 3: 0.1·3 = 0.3 → mean 0.25
    assert pinball([[10.0]], [[[8.0, 13.0]]], [0.1, 0.9])[0] == pytest.approx(0.25)
    assert pinball([[10.0, 10.0]], [[[10.0], [12.0]]], [0.5])[0] == pytest.approx(0.5)  # 0.5·|err|, mean of 0, 1
    with pytest.raises(LstmLabError, match=r"quantiles have shape \(1, 1, 1\); expected \(1, 1, 2\)"):
        pinball([[10.0]], [[[8.0]]], [0.1, 0.9])
    with pytest.raises(LstmLabError, match=r"quantile levels \[1.0\]; expected values strictly between 0 and 1"):
        pinball([[10.0]], [[[8.0]]], [1.0])


def test_bad_inputs_are_one_line_errors():
    with pytest.raises(LstmLabError, match=r"forecast has shape \(1, 3\); expected \(1, 2\)"):
        smape([[1.0, 2.0]], [[1.0, 2.0, 3.0]])
    with pytest.raises(LstmLabError, match=r"forecast series 0 step 2: nan; expected a finite number"):
        smape([[1.0, 2.0]], [[1.0, np.nan]])
    with pytest.raises(LstmLabError, match=r"scale of series 1 is 0.0; expected a positive number"):
        mase([[1.0], [2.0]], [[1.0], [2.0]], [1.0, 0.0])
    with pytest.raises(LstmLabError, match=r"series 0 has 3 in-sample values; expected more than the seasonality 4"):
        mase_scale([np.ones(3)], 4)
    with pytest.raises(LstmLabError, match=r"in-sample series 1: NaN or infinite value"):
        naive_forecast(np.array([[1.0, 2.0, 3.0], [1.0, np.nan, 3.0]]), 2)


# ---------------------------------------------------------------------------------------------------------------
# benchmarks on tiny series, against plain-loop references of the R code the competition used
# ---------------------------------------------------------------------------------------------------------------
def reference_acf(x, k):
    d = np.asarray(x) - np.mean(x)
    return sum(d[t] * d[t + k] for t in range(len(x) - k)) / sum(d * d)


def reference_decompose(x, m):
    """R's decompose(type="multiplicative") figure, written out loop by loop."""
    n, half = len(x), m // 2
    weights = [0.5] + [1.0] * (m - 1) + [0.5] if m % 2 == 0 else [1.0] * m
    ratios = [[] for _ in range(m)]
    for t in range(half, n - half):
        trend = sum(w * x[t - half + j] for j, w in enumerate(weights)) / m
        ratios[t % m].append(x[t] / trend)
    figure = np.array([np.mean(r) for r in ratios])
    return figure / figure.mean()


def test_benchmark_forecasts_on_ragged_series():
    series = [np.array([1.0, 2, 3, 4, 5, 6]), np.array([10.0, 20, 30])]
    np.testing.assert_array_equal(naive_forecast(series, 3), [[6, 6, 6], [30, 30, 30]])
    np.testing.assert_array_equal(snaive_forecast(series, 5, 2), [[5, 6, 5, 6, 5], [20, 30, 20, 30, 20]])
    padded = np.array([[1.0, 2, 3, 4, 5, 6], [10.0, 20, 30, np.nan, np.nan, np.nan]])  # same data, NaN-padded
    np.testing.assert_array_equal(snaive_forecast(padded, 5, 2), snaive_forecast(series, 5, 2))
    np.testing.assert_array_equal(naive2_forecast(series, 3, 1), naive_forecast(series, 3))  # m=1: plain naive


def test_acf_and_seasonality_test_follow_the_m4_formula():
    rng = np.random.default_rng(3)
    x = 50 + 10 * np.sin(2 * np.pi * np.arange(40) / 4) + rng.normal(0, 2, 40)
    r = acf([x], 5)[0]
    np.testing.assert_allclose(r, [reference_acf(x, k) for k in range(1, 6)])
    limit = 1.645 * math.sqrt((1 + 2 * sum(v * v for v in r[:3])) / len(x))
    assert seasonality_test([x], 4)[0] == (abs(r[3]) > limit) == True  # noqa: E712 - the seasonal one passes
    noise = 50 + rng.normal(0, 2, 40)
    r = acf([noise], 4)[0]
    expected = abs(r[3]) > 1.645 * math.sqrt((1 + 2 * np.sum(r[:3] ** 2)) / 40)
    assert seasonality_test([noise], 4)[0] == expected
    assert not seasonality_test([x[:11]], 4)[0]  # n < 3m: never adjusted
    assert not seasonality_test([x], 1)[0]  # m = 1: never adjusted
    assert not seasonality_test([np.full(20, 3.0)], 4)[0]  # constant: no autocorrelation, not seasonal


@pytest.mark.parametrize("m, n", [(4, 22), (3, 17), (24, 100)])
def test_seasonal_indices_match_classical_decomposition(m, n):
    rng = np.random.default_rng(m)
    pattern = 1 + 0.4 * np.sin(2 * np.pi * np.arange(m) / m + 0.3)
    x = (100 + np.arange(n)) * pattern[np.arange(n) % m] * rng.uniform(0.97, 1.03, n)
    got = seasonal_indices([x, x[:-1]], m)
    np.testing.assert_allclose(got[0], reference_decompose(x, m), rtol=1e-12)
    np.testing.assert_allclose(got[1], reference_decompose(x[:-1], m), rtol=1e-12)
    assert got[0].mean() == pytest.approx(1.0)


def test_naive2_continues_a_multiplicative_season():
    pattern = np.array([0.5, 1.0, 1.5, 1.0])
    x = 10 * pattern[np.arange(26) % 4]  # level 10, 6.5 seasons; the last value sits in position 1
    assert seasonality_test([x], 4)[0]
    np.testing.assert_allclose(seasonal_indices([x], 4)[0], pattern)
    np.testing.assert_allclose(naive2_forecast([x], 6, 4)[0], 10 * pattern[np.arange(26, 32) % 4])
    flat = np.linspace(10, 12, 26)  # no season: Naive2 is the naive forecast
    np.testing.assert_allclose(naive2_forecast([flat], 3, 4)[0], [12, 12, 12])


def test_naive_interval_widens_with_the_square_root_of_the_step():
    lower, upper = naive_interval([np.array([0.0, 1, 0, 1, 0])], 4)  # steps ±1: σ = 1
    np.testing.assert_allclose(upper[0] - 0, 1.959963984540054 * np.sqrt([1, 2, 3, 4]))
    np.testing.assert_allclose(lower[0], -upper[0])


# ---------------------------------------------------------------------------------------------------------------
# reproduction of the official M4 Hourly scores
# ---------------------------------------------------------------------------------------------------------------
def load_anchors():
    with ANCHORS.open(newline="") as fh:
        return {row["method"]: row for row in csv.DictReader(fh) if row["method"] and row["smape"]}


def load_hourly():
    from lstm_lab.data.m4 import long_to_padded, read_m4_test, read_m4_wide

    train = read_m4_wide(M4 / "Hourly-train.csv", "Hourly")
    _, insample = long_to_padded(train)
    _, actual = long_to_padded(read_m4_test(M4 / "Hourly-test.csv", "Hourly", train=train))
    return insample, actual


@pytest.mark.skipif(not (M4 / "Hourly-test.csv").is_file() or not ANCHORS.is_file(), reason="shared M4 data absent")
def test_benchmarks_reproduce_the_official_hourly_scores():
    anchors = load_anchors()
    insample, actual = load_hourly()
    assert actual.shape == (414, 48) and not np.isnan(actual).any()
    horizon, m = 48, 24
    assert M4_NAIVE2_OFFICIAL["Hourly"] == (float(anchors["Naive2"]["smape"]), float(anchors["Naive2"]["mase"]))

    naive2 = m4_scores(actual, naive2_forecast(insample, horizon, m), insample, m)
    assert naive2["smape"] == pytest.approx(18.383, abs=5e-4)  # published to 3 decimals
    assert naive2["mase"] == pytest.approx(2.395, abs=5e-4)
    assert naive2["owa"] == pytest.approx(1.0)
    official = M4_NAIVE2_OFFICIAL["Hourly"]

    for method, forecast in (("Naive2", naive2_forecast(insample, horizon, m)),
                             ("sNaive", snaive_forecast(insample, horizon, m)),
                             ("Naive", naive_forecast(insample, horizon))):
        extra = {}
        if anchors[method]["msis"]:
            assert method == "Naive"  # the one benchmark with official interval scores
            extra = dict(zip(("lower", "upper"), naive_interval(insample, horizon)))
        got = m4_scores(actual, forecast, insample, m, naive2=official, **extra)
        want = anchors[method]
        assert got["smape"] == pytest.approx(float(want["smape"]), abs=5e-4), method
        assert got["mase"] == pytest.approx(float(want["mase"]), abs=5e-4), method
        assert got["owa"] == pytest.approx(float(want["owa"]), abs=2e-4), method  # theirs from rounded scores
        if extra:
            assert got["msis"] == pytest.approx(float(want["msis"]), abs=5e-4), method
            assert got["acd"] == pytest.approx(float(want["acd"]), abs=5e-4), method
    assert round(float(anchors["sNaive"]["owa"]), 3) == 0.627


@pytest.mark.skipif(not (M4 / "Hourly-train.csv").is_file(), reason="shared M4 data absent")
def test_padded_and_list_inputs_agree_on_real_series():
    insample, _ = load_hourly()
    rows = [row[~np.isnan(row)] for row in insample[:40]]
    np.testing.assert_allclose(naive2_forecast(rows, 48, 24), naive2_forecast(insample[:40], 48, 24))
    np.testing.assert_allclose(seasonal_indices(rows[:3], 24)[0], reference_decompose(rows[0], 24), rtol=1e-10)
    assert seasonality_test(insample, 24).sum() == 413  # all but one Hourly series get adjusted
