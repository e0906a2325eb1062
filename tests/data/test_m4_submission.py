"""The M4 submission files: one row per series in the train file's order, F1..FH, written atomically."""

import numpy as np
import pandas as pd
import pytest

from lstm_lab.datasets import M4SubmissionDataset
from lstm_lab.errors import LstmLabError


def table(ids, H):
    rows = [{"id": i, "step": h, "median": k + h / 10, "lo95": k - 1 + h / 10, "hi95": k + 1 + h / 10}
            for k, i in enumerate(ids) for h in range(1, H + 1)]
    return pd.DataFrame(rows)


def test_round_trip(tmp_path):
    ids = ["Y10", "Y2", "Y7"]  # not sorted: the table's (the train file's) order is kept
    data = M4SubmissionDataset(folder=str(tmp_path / "m4"), group="Yearly")
    data.save(table(ids, 6))
    wide = pd.read_csv(tmp_path / "m4" / "Yearly_forecasts.csv")
    assert list(wide.columns) == ["id", "F1", "F2", "F3", "F4", "F5", "F6"] and wide["id"].tolist() == ids
    np.testing.assert_allclose(pd.read_csv(tmp_path / "m4" / "Yearly_hi95.csv")["F6"], [1.6, 2.6, 3.6])
    back = data.load()
    pd.testing.assert_frame_equal(back[["id", "step", "median", "lo95", "hi95"]], table(ids, 6), check_dtype=False)


def test_a_table_without_the_95_interval_is_refused(tmp_path):
    with pytest.raises(LstmLabError, match=r"lacks column\(s\) \['lo95', 'hi95'\]"):
        M4SubmissionDataset(folder=str(tmp_path), group="Hourly").save(table(["H1"], 48).drop(columns=["lo95", "hi95"]))
