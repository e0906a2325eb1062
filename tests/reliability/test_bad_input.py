"""Bad input gives one line naming the file, field or value and what was expected: a binary "corpus", an
invalid ``forecast.data.frequency``, and Kedro's dataset errors (whose dataset repr ``shorten_dataset_error``
cuts down to the file). The Kedro messages are produced by Kedro itself here, not copied into the tests.
"""

from __future__ import annotations

import pandas as pd
import pytest
from kedro.io import AbstractDataset, DatasetError
from kedro_datasets.pandas import CSVDataset, ParquetDataset

from lstm_lab.data.chars import check_corpus
from lstm_lab.data.timeseries import clean_series
from lstm_lab.errors import LstmLabError, one_line, shorten_dataset_error
from tests.conftest import kedro, make_project, typed_params, write_yaml


def one_line_error(info: pytest.ExceptionInfo) -> str:
    message = str(info.value)
    assert isinstance(info.value, LstmLabError) and message and "\n" not in message, repr(message)
    return message


# ------------------------------------------------------------------------------------------------ text corpus
@pytest.mark.parametrize(
    "text, expected",
    [
        ("\x00" * 4096, "NUL character (U+0000) at character 0"),
        ("To be, or not to be\x00", "NUL character (U+0000) at character 19"),
        ("\x01\x02\x03abc" * 100, "control characters (first '\\x01' (U+0001) at character 0)"),
        ("".join(chr(b) for b in range(1, 256)) * 10, "control characters"),  # any bytes read as latin-1
    ],
)
def test_binary_corpus_refused(text, expected):
    with pytest.raises(LstmLabError) as info:
        check_corpus(text, "data/01_raw/corpus.txt")
    message = one_line_error(info)
    assert message.startswith("data/01_raw/corpus.txt: not a text corpus") and expected in message
    assert "expected plain text" in message


@pytest.mark.parametrize(
    "text",
    [
        "First Citizen:\nBefore we proceed any further, hear me speak.\r\n\tAll:\fSpeak, speak.\v",
        "Grüße, ça va? Ελληνικά 日本語 — “quotes” …\n",
        "a coloured \x1b[31mword\x1b[0m in 10,000 characters of prose " + "x" * 10_000,  # a stray escape is fine
    ],
)
def test_plain_text_accepted(text):
    check_corpus(text, "corpus.txt")


def test_load_corpus_refuses_a_file_of_nul_bytes(tmp_path):
    from lstm_lab.datasets.files import TextSource
    from lstm_lab.pipelines.textgen.nodes import load_corpus

    path = tmp_path / "zeros.txt"
    path.write_bytes(b"\x00" * 10_000)
    with pytest.raises(LstmLabError) as info:
        load_corpus(TextSource(path), typed_params("textgen"))
    assert one_line_error(info).startswith(f"{path}: not a text corpus: NUL")


# ------------------------------------------------------------------------------------------------- frequency
def daily(n: int = 10) -> pd.DataFrame:
    return pd.DataFrame({"date": pd.date_range("2000-01-01", periods=n, freq="D"), "y": range(n)})


@pytest.mark.parametrize(
    "frequency, expected",
    [
        ("3X", "'3X' is not a pandas frequency (unknown unit 'X'); expected an offset alias such as 'h'"),
        ("fortnight", "'fortnight' is not a pandas frequency; expected an offset alias"),
        ("M", "'M' is not a pandas frequency ('M' is no longer supported for offsets. Please use 'ME' instead)"),
        ("H", "'H' is not a pandas frequency (Did you mean h?)"),
        ("0D", "'0D' is not a forward step; expected a positive multiple"),  # was a ZeroDivisionError
        ("-1D", "'-1D' is not a forward step"),  # was an IndexError
    ],
)
def test_invalid_frequency_is_one_clean_line(frequency, expected):
    with pytest.raises(LstmLabError) as info:
        clean_series(daily(), time_column="date", value_columns=["y"], frequency=frequency, source="x.csv")
    message = one_line_error(info)
    assert message.startswith("forecast.data.frequency: ") and expected in message
    # pandas' nested "Invalid frequency: ... Failed to parse with error message: ..." is gone
    assert "Failed to parse" not in message and "Invalid frequency" not in message
    assert message.count("forecast.data.frequency") == 1
    if frequency != "M":  # (pandas' own hint for 'M' names it once more)
        assert message.count(repr(frequency)) == 1


def test_frequency_with_no_step_inside_the_series():
    """Month ends over ten days: an empty grid, which used to end in an IndexError."""
    with pytest.raises(LstmLabError) as info:
        clean_series(daily(), time_column="date", value_columns=["y"], frequency="ME", source="x.csv")
    assert "x.csv: timestamp 2000-01-01 00:00:00 is not on the regular ME grid between" in one_line_error(info)


# -------------------------------------------------------------------------------------- Kedro dataset errors
def kedro_message(dataset, data=None) -> str:
    """What Kedro raises for this dataset: loading, or saving ``data`` when given."""
    with pytest.raises(DatasetError) as info:
        dataset.load() if data is None else dataset.save(data)
    return str(info.value)


def test_missing_csv(tmp_path):
    path = tmp_path / "data" / "01_raw" / "absent.csv"
    raw = kedro_message(CSVDataset(filepath=str(path)))
    assert "CSVDataset(filepath=PurePosixPath(" in raw and "Failed while loading data" in raw  # what Kedro says
    assert shorten_dataset_error(raw) == f"{path}: No such file or directory"
    # the CLI's form: prefixed with the dataset name and joined onto one line
    line = "forecast_raw: " + one_line(DatasetError(raw))
    assert shorten_dataset_error(line) == f"forecast_raw: {path}: No such file or directory"


def test_empty_csv(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")
    raw = kedro_message(CSVDataset(filepath=str(path), load_args={"sep": ";"}))
    assert shorten_dataset_error(raw) == f"{path}: No columns to parse from file"


def test_path_with_quotes_commas_and_parentheses(tmp_path):
    path = tmp_path / "it's (a, b).parquet"
    raw = kedro_message(ParquetDataset(filepath=str(path), load_args={"columns": ["x)"]}))
    assert shorten_dataset_error(raw) == f"{path}: file not found"  # pyarrow's cause is the bare path


def test_save_failure_keeps_the_cause(tmp_path):
    path = tmp_path / "out.csv"
    raw = kedro_message(CSVDataset(filepath=str(path)), data=object())
    assert shorten_dataset_error(raw) == f"{path}: could not save: 'object' object has no attribute 'to_csv'"


class TableDataset(AbstractDataset):
    """A dataset with no file (a database table, say) whose load fails."""

    def _load(self):
        raise ConnectionError("connection refused")

    def _save(self, data) -> None:
        raise NotImplementedError

    def _describe(self):
        return {"table": "sales", "credentials": "<masked>"}


def test_dataset_without_a_file_is_named_by_its_class():
    raw = kedro_message(TableDataset())
    assert "TableDataset(table='sales'" in raw
    assert shorten_dataset_error(raw) == "TableDataset: connection refused"


@pytest.mark.parametrize(
    "text",
    [
        "forecast_raw: /p/x.parquet: file not found",  # already short (the project's own datasets)
        "Failed while loading data from dataset CSVDataset(filepath='/p/x.csv', load_args={",  # cut off
        "",
    ],
)
def test_other_messages_unchanged(text):
    assert shorten_dataset_error(text) == text


def test_repr_outside_the_boilerplate_is_shortened_too():
    text = "Did not find any versions for pkg.CSVDataset(filepath=PurePosixPath('/p/v.csv'), version=Version(load=None, save=None))"
    assert shorten_dataset_error(text) == "Did not find any versions for /p/v.csv"


@pytest.mark.slow
@pytest.mark.parametrize("case", ["absent", "empty"])
def test_what_kedro_run_prints_is_shortened(tmp_path, case):
    """The real ``kedro run`` output for a missing or empty CSV as forecast_raw, through the function."""
    root = make_project(tmp_path / "project")
    path = root / "data" / "01_raw" / f"{case}.csv"
    if case == "empty":
        path.write_text("")
    write_yaml(root / "conf" / "local" / "catalog.yml",
               {"forecast_raw": {"type": "pandas.CSVDataset", "filepath": f"data/01_raw/{case}.csv"}})
    result = kedro(root, "--pipelines=forecast", "--tags=prepare")
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, result.stderr[-3000:]
    cause = "No such file or directory" if case == "absent" else "No columns to parse from file"
    assert shorten_dataset_error(errors[0]) == f"Error: forecast_raw: {path}: {cause}"


@pytest.mark.slow
def test_kedro_run_refuses_a_binary_corpus(tmp_path):
    root = make_project(tmp_path / "project", local_params=None)
    corpus = root / "data" / "01_raw" / "zeros.txt"
    corpus.write_bytes(b"\x00" * 4096)
    write_yaml(root / "conf" / "local" / "catalog.yml",
               {"textgen_corpus": {"type": "lstm_lab.datasets.TextCorpusDataset", "filepath": str(corpus)}})
    result = kedro(root, "--pipelines=textgen", "--tags=prepare")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert errors == [f"Error: {corpus}: not a text corpus: NUL character (U+0000) at character 0; expected plain "
                      f"text (is it a binary or compressed file?)"], result.stderr[-3000:]
