"""The forecast and textgen pyfunc models, saved to a folder and loaded back through MLflow (no tracking store,
no training: untrained networks answer just as deterministically)."""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pandas as pd
import pytest

from lstm_lab.serving import forecast_pyfunc, textgen_pyfunc
from tests.serving.conftest import forecast_checkpoint, forecast_frame, textgen_checkpoint

LOOKBACK, HORIZON = 16, 4  # TINY_FORECAST


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


@pytest.fixture(scope="module")
def series() -> pd.DataFrame:
    return forecast_frame(covariate=True)


@pytest.fixture(scope="module")
def forecaster(series, tmp_path_factory):
    checkpoint = forecast_checkpoint(series, covariates=["temp"])
    path = tmp_path_factory.mktemp("forecast") / "model"
    forecast_pyfunc.save_model(path, checkpoint, "date", history=series)
    return checkpoint, mlflow.pyfunc.load_model(str(path)), path


def pipeline_forecasts(checkpoint, frame: pd.DataFrame) -> pd.DataFrame:
    """What the forecast pipeline's evaluate node predicts for every window of the last 30 rows."""
    from lstm_lab.data.timeseries import StandardScaler
    from lstm_lab.evaluation.forecast import evaluate_test_windows
    from lstm_lab.training.forecast.task import TASK

    hp = checkpoint["hyper_parameters"]
    n = len(frame)
    _, table = evaluate_test_windows(
        TASK.from_checkpoint(checkpoint).net, frame, {"train_end": n - 60, "val_end": n - 30, "test_end": n},
        StandardScaler.from_dict(hp["scaler"]), targets=["co2"], covariates=["temp"], time_column="date",
        lookback=LOOKBACK, horizon=HORIZON, seasonal_period=52)
    return table


def test_forecast_equals_the_pipelines_own_for_the_same_window(series, forecaster):
    checkpoint, model, _ = forecaster
    table = pipeline_forecasts(checkpoint, series)
    for window in (0, table["window"].max()):
        rows = table[table["window"] == window]
        history = series[series["date"] < rows["time"].iloc[0]]  # everything before the first forecast step
        out = model.predict(history)
        assert list(out.columns) == ["id", "time", "step", "target", "mean", "median"]
        assert out["id"].tolist() == ["series"] * HORIZON and out["step"].tolist() == [1, 2, 3, 4]
        assert (out["target"] == "co2").all()
        assert out["time"].tolist() == pd.to_datetime(rows["time"]).tolist()  # W-SAT continued
        np.testing.assert_allclose(out["mean"], rows["lstm"], atol=1e-5, rtol=0)
        assert out["median"].tolist() == out["mean"].tolist()


def test_only_the_last_lookback_rows_count_and_order_does_not(series, forecaster):
    _, model, _ = forecaster
    full = model.predict(series)
    np.testing.assert_array_equal(model.predict(series.tail(LOOKBACK))["mean"], full["mean"])
    shuffled = series.tail(40).sample(frac=1.0, random_state=0)
    np.testing.assert_array_equal(model.predict(shuffled)["mean"], full["mean"])
    as_text = series.assign(date=series["date"].dt.strftime("%Y-%m-%d"))  # what JSON and CSV give
    np.testing.assert_array_equal(model.predict(as_text)["mean"], full["mean"])


def test_panel_one_forecast_per_id(series, forecaster):
    _, model, _ = forecaster
    a, b = series.iloc[:120], series  # two series ending at different times
    panel = pd.concat([a.assign(id="north"), b.assign(id="south")], ignore_index=True)
    out = model.predict(panel)
    assert out["id"].tolist() == ["north"] * HORIZON + ["south"] * HORIZON
    for name, frame in (("north", a), ("south", b)):
        alone = model.predict(frame)
        np.testing.assert_allclose(out.loc[out["id"] == name, "mean"], alone["mean"], atol=1e-6, rtol=0)
        assert out.loc[out["id"] == name, "time"].tolist() == alone["time"].tolist()


@pytest.mark.parametrize("change, message", [
    (lambda f: f.tail(10), r"series 'series': 10 row\(s\) given, the model needs the last 16 \(lookback\)"),
    (lambda f: f.drop(index=f.index[-5]), r"not evenly spaced: \S+ 00:00:00 is followed by"),
    (lambda f: f.assign(co2=f["co2"].where(f.index != f.index[-3])), r"column 'co2' is missing \(NaN\) at"),
    (lambda f: f.assign(date=f["date"] + pd.Timedelta(days=1)), r"do not follow the model's frequency W-SAT"),
    (lambda f: pd.concat([f.assign(id="a"), f.tail(3).assign(id="b")]), r"series 'b': 3 row\(s\) given"),
    (lambda f: f.drop(columns="temp"), r"temp"),
])
def test_bad_history_is_one_line_naming_the_problem(series, forecaster, change, message):
    from mlflow.exceptions import MlflowException

    _, model, _ = forecaster
    with pytest.raises(MlflowException, match=message) as info:
        model.predict(change(series))
    assert info.value.error_code == "INVALID_PARAMETER_VALUE"


def test_missing_columns_are_named_by_the_model_itself(series, forecaster):
    """Without MLflow's signature check in front (a direct call), the model names what is missing."""
    from mlflow.exceptions import MlflowException

    _, model, _ = forecaster
    with pytest.raises(MlflowException, match=r"^missing column\(s\) \['co2', 'temp'\]: the model needs"):
        model.unwrap_python_model().predict(None, series[["date"]])


def test_forecast_model_folder_holds_no_pickle(forecaster):
    _, model, path = forecaster
    files = {p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()}
    assert {"artifacts/forecast.json", "artifacts/weights.pt", "MLmodel", "input_example.json"} <= files
    assert not [f for f in files if f.endswith((".pkl", ".pickle", ".cloudpickle"))]
    meta = json.loads((path / "artifacts/forecast.json").read_text())
    assert meta["time_column"] == "date" and meta["frequency"] == "W-SAT"
    assert meta["hyper_parameters"]["lookback"] == LOOKBACK and meta["hyper_parameters"]["scaler"]["columns"] == ["co2", "temp"]
    inputs = {c["name"]: c for c in model.metadata.signature.inputs.to_dict()}
    assert set(inputs) == {"date", "co2", "temp", "id"} and inputs["id"]["required"] is False
    example = json.loads((path / "input_example.json").read_text())
    assert len(example["data"]) == LOOKBACK  # the recent history the model needs


# ------------------------------------------------------------------------------------------------------ textgen
@pytest.fixture(scope="module")
def textgen(tmp_path_factory):
    checkpoint = textgen_checkpoint()
    folder = tmp_path_factory.mktemp("textgen")
    path = textgen_pyfunc.save_model(folder / "model", checkpoint)
    from lstm_lab.checkpoints import save_checkpoint

    save_checkpoint(folder / "textgen_model.ckpt", checkpoint)
    return folder / "textgen_model.ckpt", mlflow.pyfunc.load_model(str(path))


def cli_text(ckpt, *args: str) -> str:
    """What lstm-lab-generate prints, without the newline it ends with."""
    from lstm_lab.serving import generate as cli

    return cli.generate(cli.parse_args(["--model", str(ckpt), *args]))


def test_textgen_matches_lstm_lab_generate(textgen):
    ckpt, model = textgen
    rows = pd.DataFrame({"prompt": ["ROMEO:", "JULIET:", "\n", "O"],
                         "length": [50, 30, np.nan, 20], "temperature": [0.8, np.nan, np.nan, 1.5],
                         "top_k": [5, np.nan, np.nan, np.nan], "seed": [1, 7, np.nan, 3],
                         "greedy": [False, False, False, True]})
    out = model.predict(rows)
    assert list(out.columns) == ["text", "continuation"]
    assert out["text"][0] == cli_text(ckpt, "--prompt", "ROMEO:", "--length", "50", "--temperature", "0.8",
                                      "--top-k", "5", "--seed", "1")
    assert out["text"][1] == cli_text(ckpt, "--prompt", "JULIET:", "--length", "30", "--seed", "7")
    assert out["text"][2] == cli_text(ckpt, "--prompt", "\n")  # every default is the CLI's: 300 characters
    assert len(out["continuation"][2]) == 300
    assert out["text"][3] == cli_text(ckpt, "--prompt", "O", "--length", "20", "--greedy", "--temperature", "1.5")
    assert (out["text"] == rows["prompt"] + out["continuation"]).all()
    assert model.predict(pd.DataFrame({"prompt": ["ROMEO:"]}))["text"][0] == cli_text(ckpt, "--prompt", "ROMEO:")


@pytest.mark.parametrize("row, message", [
    ({"prompt": "ROMEO: zzz"}, r"row 0: .*'z'"),  # never seen in training
    ({"prompt": "ROMEO:", "temperature": 0.0}, r"row 0: temperature must be > 0"),
    ({"prompt": "ROMEO:", "top_k": 0}, r"row 0: top_k must be >= 1"),
    ({"prompt": "ROMEO:", "length": 2.5}, r"row 0: length must be a whole number"),
    ({"prompt": "ROMEO:", "length": -1}, r"row 0: length must be >= 0"),
    ({"prompt": ""}, r"row 0: the prompt must be a non-empty text"),
])
def test_textgen_bad_rows(textgen, row, message):
    from mlflow.exceptions import MlflowException

    _, model = textgen
    with pytest.raises(MlflowException, match=message):
        model.unwrap_python_model().predict(None, pd.DataFrame([row]))
