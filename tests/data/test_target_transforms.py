"""Target transforms of panel runs: forward on the table, back on quantiles, exactly."""

import numpy as np
import pandas as pd
import pytest

from lstm_lab.data.target_transforms import restore, seasonal_lags, target_names, transform_frame
from lstm_lab.errors import LstmLabError
from lstm_lab.evaluation.panel_forecast import seasonal_naive


def frame(lengths=(60, 75)):
    rng = np.random.default_rng(1)
    parts = [pd.DataFrame({"id": f"s{k}", "t": np.arange(n), "y": rng.uniform(1, 9, n)}) for k, n in enumerate(lengths)]
    return pd.concat(parts, ignore_index=True)


@pytest.mark.parametrize("horizon, m, lags", [(48, 24, (24, 48)), (6, 1, (1, 2, 3, 4, 5, 6)), (18, 12, (12, 24)),
                                              (8, 4, (4, 8))])
def test_seasonal_lags_cover_the_horizon(horizon, m, lags):
    assert seasonal_lags(horizon, m) == lags


def test_differences_are_log_changes_within_each_series():
    f = frame()
    out = transform_frame(f, "seasonal_log_diff", id_column="id", targets=["y"], lags=(4, 8))
    assert list(out.columns) == ["id", "t", *target_names("seasonal_log_diff", ["y"], (4, 8))]
    assert out.groupby("id")["t"].min().tolist() == [8, 8]  # the first max(lag) rows of every series are gone
    row = out[(out["id"] == "s1") & (out["t"] == 20)].iloc[0]
    y = f[f["id"] == "s1"].set_index("t")["y"]
    assert row["y_d4"] == pytest.approx(np.log(y[20]) - np.log(y[16]))
    assert row["y_d8"] == pytest.approx(np.log(y[20]) - np.log(y[12]))


def test_zero_differences_restore_to_the_seasonal_naive_forecast():
    f = frame()
    levels = f["y"].to_numpy()
    origins = np.array([40, 60 + 50])  # one forecast in each series (global rows)
    H, lags = 8, (4, 8)
    zero = np.zeros((2, H, len(lags), 3))
    out = restore("seasonal_log_diff", zero, lags=lags, levels=levels, origins=origins)
    assert out.shape == (2, H, 1, 3)
    expected = seasonal_naive(levels, origins, H, 4)
    for q in range(3):
        np.testing.assert_allclose(out[:, :, 0, q], expected, rtol=1e-12)
    shifted = restore("seasonal_log_diff", zero + np.log(2.0), lags=lags, levels=levels, origins=origins)
    np.testing.assert_allclose(shifted[:, :, 0, 0], 2 * expected, rtol=1e-12)  # a change of log 2 doubles


def test_log_needs_positive_values():
    f = frame().assign(y=lambda d: d["y"].where(d.index != 7, 0.0))
    with pytest.raises(LstmLabError, match="target 'y' is 0.0 at id 's0'"):
        transform_frame(f, "log", id_column="id", targets=["y"])
    np.testing.assert_allclose(restore("log", np.zeros((1, 2, 1, 1))), 1.0)
