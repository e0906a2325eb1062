"""M4 wide files: ragged rows read into a long id/t/y frame, one-line errors for bad cells, and back to F1..FH."""

import numpy as np
import pandas as pd
import pytest

from lstm_lab.data.m4 import (
    M4_GROUPS,
    long_to_padded,
    m4_group,
    m4_long_to_wide,
    m4_time_index,
    read_m4_test,
    read_m4_wide,
)
from lstm_lab.errors import LstmLabError
from tests.conftest import SHARED

M4 = SHARED / "m4"


def write_wide(path, rows, width=None):
    """An M4-style file: quoted header V1..Vk, quoted cells, shorter rows padded with empty cells."""
    width = width or max(len(values) for _, values in rows)
    lines = [",".join(f'"V{k}"' for k in range(1, width + 2))]
    for key, values in rows:
        cells = [f'"{v}"' for v in values] + [""] * (width - len(values))
        lines.append(",".join([f'"{key}"', *cells]))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def ragged(tmp_path):
    return write_wide(tmp_path / "Hourly-train.csv", [("H10", [5, 6, 7, 8]), ("H2", [1.5, 2]), ("H3", [9, 8, 7])])


def test_groups_are_the_competitions():
    assert M4_GROUPS["Hourly"] == (48, 24, "h", 168, 24)  # ..., lookback a week, a day of hours per LSTM step
    assert {g.fold for k, g in M4_GROUPS.items() if k != "Hourly"} == {1}
    assert {k: (g.horizon, g.seasonality) for k, g in M4_GROUPS.items()} == {
        "Yearly": (6, 1), "Quarterly": (8, 4), "Monthly": (18, 12), "Weekly": (13, 1), "Daily": (14, 1),
        "Hourly": (48, 24)}
    for group in M4_GROUPS.values():
        pd.tseries.frequencies.to_offset(group.freq)  # a valid pandas alias
    with pytest.raises(LstmLabError, match=r"M4 group 'hourly' is unknown; expected one of Yearly, .*Hourly"):
        m4_group("hourly")


def test_ragged_rows_become_a_long_frame_in_file_order(ragged):
    frame = read_m4_wide(ragged, "Hourly")
    assert list(frame.columns) == ["id", "t", "y"]
    assert frame["id"].tolist() == ["H10"] * 4 + ["H2"] * 2 + ["H3"] * 3  # file order, not sorted
    assert frame["t"].tolist() == [0, 1, 2, 3, 0, 1, 0, 1, 2]
    assert frame["y"].tolist() == [5, 6, 7, 8, 1.5, 2, 9, 8, 7]
    assert frame["t"].dtype == np.int64 and frame["y"].dtype == np.float64
    assert frame.attrs["m4_group"] == "Hourly"


def test_rows_with_fewer_fields_than_the_header_are_padding(tmp_path):
    path = tmp_path / "short.csv"
    path.write_text("V1,V2,V3,V4\nA,1,2,3\nB,4,5\n")
    frame = read_m4_wide(path)
    assert frame.groupby("id", sort=False)["y"].apply(list).to_dict() == {"A": [1, 2, 3], "B": [4, 5]}


@pytest.mark.parametrize("rows, message", [
    ([("H1", [1, 2, "abc", 4])], r"x.csv: id 'H1' column 'V4': 'abc' is not a number"),
    ([("H1", [1, 2, 3]), ("H2", [1, "", 3])], r"x.csv: id 'H2' column 'V3' is empty inside the series .*V4"),
    ([("H1", [1, 2]), ("H1", [3, 4])], r"x.csv: id 'H1' appears again in row 2 \(first in row 1\)"),
    ([("H1", [1, 2]), ("H2", [7])], r"x.csv: id 'H2' has 1 value\(s\) .*expected at least 2"),
    ([("H1", [1, 2]), ("H2", [])], r"x.csv: id 'H2' has 0 value\(s\)"),
    ([("H1", [1, "inf"])], r"x.csv: id 'H1' column 'V3': inf is infinite"),
    ([("D1", [1, 2])], r"x.csv: id 'D1' \(row 1\) is not a Hourly series; expected ids starting with 'H'"),
])
def test_bad_files_are_one_line_errors(tmp_path, rows, message):
    path = write_wide(tmp_path / "x.csv", rows)
    with pytest.raises(LstmLabError, match=message) as info:
        read_m4_wide(path, "Hourly")
    assert "\n" not in str(info.value)


def test_unreadable_files(tmp_path):
    with pytest.raises(LstmLabError, match=r"nope.csv: file not found"):
        read_m4_wide(tmp_path / "nope.csv")
    path = tmp_path / "wide.csv"
    path.write_text("V1,V2,V3\nA,1,2,3\n")
    with pytest.raises(LstmLabError, match=r"wide.csv: not a readable M4 wide CSV .*expected a header V1,V2"):
        read_m4_wide(path)
    path.write_text("V1\nA\n")
    with pytest.raises(LstmLabError, match=r"wide.csv: has 1 column\(s\)"):
        read_m4_wide(path)
    path.write_text('V1,V2,V3\n"",1,2\n')
    with pytest.raises(LstmLabError, match=r"wide.csv: row 1: column 'V1' is empty; expected a series id"):
        read_m4_wide(path)


def test_test_file_has_exactly_the_horizon(tmp_path, ragged):
    train = read_m4_wide(ragged)
    path = write_wide(tmp_path / "test.csv", [("H10", [1, 2, 3]), ("H2", [4, 5, 6]), ("H3", [7, 8, 9])])
    test = read_m4_test(path, horizon=3)
    assert test["t"].tolist() == [0, 1, 2] * 3 and test["y"].tolist() == list(range(1, 10))
    assert read_m4_test(path).equals(test)  # horizon from the number of value columns
    continued = read_m4_test(path, train=train)
    assert continued["t"].tolist() == [4, 5, 6, 2, 3, 4, 3, 4, 5]

    short = write_wide(tmp_path / "short.csv", [("H1", [1, 2, 3]), ("H2", [4, 5])])
    with pytest.raises(LstmLabError, match=r"short.csv: id 'H2' has 2 values; expected exactly 3 \(columns V2..V4\)"):
        read_m4_test(short)
    with pytest.raises(LstmLabError, match=r"short.csv: has 3 value columns; expected 48 \(the horizon\)"):
        read_m4_test(short, "Hourly")
    other = write_wide(tmp_path / "other.csv", [("H10", [1, 2, 3]), ("H3", [4, 5, 6]), ("H2", [7, 8, 9])])
    with pytest.raises(LstmLabError, match=r"other.csv: row 2 has id 'H3'; expected 'H2', the training file's"):
        read_m4_test(other, train=train)


def test_long_to_wide_is_the_submission_layout(tmp_path):
    path = write_wide(tmp_path / "test.csv", [("H10", [1, 2, 3]), ("H2", [4, 5, 6])])
    long = read_m4_test(path)
    wide = m4_long_to_wide(long.sample(frac=1.0, random_state=0).assign(t=lambda f: f["t"] + 100), 3)
    assert list(wide.columns) == ["id", "F1", "F2", "F3"]
    assert wide["id"].tolist() == ["H10", "H2"] or wide["id"].tolist() == ["H2", "H10"]
    assert wide.set_index("id").loc["H10"].tolist() == [1, 2, 3]
    assert m4_long_to_wide(long, 3)["id"].tolist() == ["H10", "H2"]

    with pytest.raises(LstmLabError, match=r"id 'H2' has 2 rows; expected 3"):
        m4_long_to_wide(long.iloc[:-1], 3)
    with pytest.raises(LstmLabError, match=r"id 'H10' has t \[0, 1, 5\]; expected 3 consecutive steps"):
        m4_long_to_wide(long.assign(t=[0, 1, 5, 0, 1, 2]), 3)
    with pytest.raises(LstmLabError, match=r"id 'H2' F2: nan in column 'yhat'; expected a finite number"):
        m4_long_to_wide(long.assign(yhat=[1, 2, 3, 4, np.nan, 6]), 3, value="yhat")
    with pytest.raises(LstmLabError, match=r"column 'yhat' missing"):
        m4_long_to_wide(long, 3, value="yhat")


def test_padded_arrays_and_synthetic_calendar(ragged):
    ids, values = long_to_padded(read_m4_wide(ragged))
    assert ids.tolist() == ["H10", "H2", "H3"]
    np.testing.assert_array_equal(values, [[5, 6, 7, 8], [1.5, 2, np.nan, np.nan], [9, 8, 7, np.nan]])
    index = m4_time_index(np.array([0, 1, 25]), "Hourly")
    assert index[0] == pd.Timestamp("2000-01-01") and index[2] == pd.Timestamp("2000-01-02 01:00")
    assert m4_time_index([0, 2], "Monthly", start="2010-01-01")[1] == pd.Timestamp("2010-03-01")


@pytest.mark.skipif(not (M4 / "Hourly-train.csv").is_file(), reason="shared M4 data absent")
def test_real_hourly_files():
    train = read_m4_wide(M4 / "Hourly-train.csv", "Hourly")
    lengths = train.groupby("id", sort=False).size()
    assert len(lengths) == 414 and lengths.index[0] == "H1" and lengths.index[-1] == "H414"
    assert lengths.min() == 700 and lengths.max() == 960  # as the data README documents
    assert lengths.value_counts().to_dict() == {960: 245, 700: 169}
    assert train["y"].iloc[:2].tolist() == [605.0, 586.0] and train["y"].notna().all()
    test = read_m4_test(M4 / "Hourly-test.csv", "Hourly", train=train)
    assert len(test) == 414 * 48 and test["y"].iloc[0] == 619.0
    assert test.groupby("id", sort=False)["t"].min().loc["H1"] == lengths.loc["H1"]
