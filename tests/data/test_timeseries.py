"""Validation, cleaning, chronological splits and train-only scaling."""

import numpy as np
import pandas as pd
import pytest

from lstm_lab.data.timeseries import StandardScaler, clean_series, split_bounds
from lstm_lab.errors import LstmLabError


def frame(n=30, freq="D", start="2020-01-01"):
    times = pd.date_range(start, periods=n, freq=freq)
    return pd.DataFrame({"ts": times.astype(str), "y": np.arange(n, dtype=float), "x": np.ones(n)})


def clean(raw, **kw):
    args = dict(time_column="ts", value_columns=["y"], max_gap=0, source="test.csv")
    args.update(kw)
    return clean_series(raw, **args)


def test_sorts_and_infers_frequency():
    raw = frame().sample(frac=1.0, random_state=1)
    out = clean(raw)
    assert out.index.is_monotonic_increasing and out.index.freqstr == "D"
    assert out["y"].tolist() == list(range(30))


def test_duplicate_timestamp_is_an_error():
    raw = pd.concat([frame(), frame().iloc[[4]]])
    with pytest.raises(LstmLabError, match=r"test.csv: duplicate timestamp 2020-01-05"):
        clean(raw)


def test_non_numeric_value_names_row_and_value():
    raw = frame()
    raw["y"] = raw["y"].astype(object)
    raw.loc[7, "y"] = "n/a?"
    with pytest.raises(LstmLabError, match=r"column 'y' row 7: 'n/a\?' is not a number"):
        clean(raw)


def test_missing_columns_are_named():
    with pytest.raises(LstmLabError, match=r"column 'OT' not found; columns are \['ts', 'y', 'x'\]"):
        clean(frame(), value_columns=["OT"])
    with pytest.raises(LstmLabError, match=r"time column 'date' not found"):
        clean(frame(), time_column="date")


def test_bad_timestamp_is_named():
    raw = frame()
    raw.loc[3, "ts"] = "yesterday-ish"
    with pytest.raises(LstmLabError, match=r"row 3: 'yesterday-ish' is not a date/time"):
        clean(raw)


def test_gaps_filled_up_to_max_gap_and_rejected_beyond():
    raw = frame().drop(index=[10, 11, 12])  # a 3-step hole in the timestamps
    raw.loc[20, "y"] = np.nan  # and a 1-step missing value
    out = clean(raw, max_gap=3)
    assert len(out) == 30 and not out.isna().any().any()
    np.testing.assert_allclose(out["y"].to_numpy(), np.arange(30.0))  # linear series: interpolation is exact
    with pytest.raises(LstmLabError, match=r"gap of 3 missing step\(s\) starting at 2020-01-11.*max_gap allows at most 2"):
        clean(raw, max_gap=2)


def test_frequency_inferred_despite_gaps_and_off_grid_rejected():
    raw = frame(freq="h").drop(index=[5])
    assert clean(raw, max_gap=1).index.freqstr == "h"
    raw = frame(freq="h")
    raw.loc[9, "ts"] = "2020-01-01 09:30:00"
    with pytest.raises(LstmLabError, match="not on the regular"):
        clean(raw, max_gap=1)


def test_edges_trimmed_and_empty_rejected():
    raw = frame()
    raw.loc[0, "y"] = np.nan
    assert clean(raw).index[0] == pd.Timestamp("2020-01-02")
    with pytest.raises(LstmLabError, match="empty"):
        clean(frame().iloc[:0])


def test_split_fractions_rows_and_times():
    index = pd.date_range("2016-07-01", periods=17420, freq="h")
    b = split_bounds(index, rows=(8640, 11520, 14400))  # the ETT protocol: 12/4/4 months
    assert (b.train_end, b.val_end, b.test_end) == (8640, 11520, 14400)
    t = split_bounds(index, times=("2017-06-26", "2017-10-24", "2018-02-21"))
    assert (t.train_end, t.val_end, t.test_end) == (8640, 11520, 14400)
    f = split_bounds(index[:100], fractions=(0.7, 0.15, 0.15))
    assert (f.train_end, f.val_end, f.test_end) == (70, 85, 100)
    with pytest.raises(LstmLabError, match="must satisfy"):
        split_bounds(index[:100], rows=(50, 40, 100))


def test_scaler_sees_training_rows_only():
    data = pd.DataFrame({"a": np.r_[np.zeros(50), np.full(50, 1000.0)], "b": np.arange(100.0)})
    s = StandardScaler.fit(data, train_end=50)
    assert s.mean[0] == 0.0 and s.scale[0] == 1.0  # constant training column: scale 1, test values ignored
    leaked = data.copy()
    leaked.iloc[50:] = -1e6  # changing val/test rows must not change the scaler
    assert StandardScaler.fit(leaked, train_end=50) == s
    z = s.transform(data.to_numpy(), ["a", "b"])
    np.testing.assert_allclose(s.inverse(z, ["a", "b"]), data.to_numpy())
    assert StandardScaler.from_dict(s.as_dict()) == s
