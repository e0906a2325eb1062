"""Every trained model served for real: one tiny project trains forecast, sentiment (synthetic sentences) and
textgen (a synthetic play) through ``kedro run``; each run registers its model; the ``predict_<task>`` pipelines
score with ``models:/<task>@champion``; and ``mlflow models serve`` (loopback, another working directory, only
MLFLOW_TRACKING_URI pointing at the project's store) answers what the pipelines computed themselves.
"""

from __future__ import annotations

import subprocess

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.conftest import BIN, make_project, mlflow_client, project_env, write_yaml
from tests.conftest import kedro as kedro_run
from tests.serving.conftest import (SENTIMENT_CATALOG, TINY_SENTIMENT, TINY_TEXTGEN, corpus, post, reviews,
                                    served, write_reviews)

pytestmark = pytest.mark.slow

PROMPTS = {"predict_textgen": {"prompts": ["ROMEO:", "\n"], "length": 40, "temperature": 0.8, "top_k": 5, "seed": 3}}


def kedro(root, *args):
    done = kedro_run(root, *args)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    return done


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """Train all three tiny models (each run logs and registers its model), then batch-score with each."""
    root = make_project(tmp_path_factory.mktemp("serving") / "project")  # TINY_FORECAST in conf/local
    write_yaml(root / "conf/local/parameters_sentiment.yml", TINY_SENTIMENT)
    write_yaml(root / "conf/local/parameters_textgen.yml", TINY_TEXTGEN)
    write_yaml(root / "conf/local/parameters_predict_textgen.yml", PROMPTS)
    write_yaml(root / "conf/local/catalog.yml", SENTIMENT_CATALOG)
    write_reviews(root / "data/01_raw/reviews.txt", reviews())
    play = root / "data/01_raw/tinyshakespeare/input.txt"
    play.parent.mkdir(parents=True, exist_ok=True)
    play.write_text(corpus(), encoding="utf-8")
    for task in ("forecast", "sentiment", "textgen"):
        kedro(root, f"--pipelines={task}")
    pd.DataFrame({"text": ["The food was wonderful and the staff too.", "The service was awful and cold."],
                  "source": ["a", "b"]}).to_csv(root / "data/01_raw/predict_sentiment.csv", index=False)
    return root


def store(root) -> str:
    return f"sqlite:///{root / 'mlflow.db'}"


def test_each_run_registered_its_model_as_champion(project):
    client = mlflow_client(project)
    for task in ("forecast", "sentiment", "textgen"):
        version = client.get_model_version_by_alias(task, "champion")
        run = client.get_run(version.run_id)
        assert run.data.tags["registered_model"] == f"{task}/1" and run.data.tags["registered_model_alias"] == "champion"
        assert version.tags["lstm_lab.metric"] in ("lstm.mse", "accuracy", "val_loss_nats")


def test_predict_pipelines_use_the_registry_without_retraining(project):
    checkpoint = project / "data/06_models/forecast_model.ckpt"
    before = checkpoint.stat().st_mtime_ns
    for task in ("forecast", "sentiment", "textgen"):
        kedro(project, f"--pipelines=predict_{task}")
    assert checkpoint.stat().st_mtime_ns == before
    out = pd.read_csv(project / "data/07_model_output/predict_forecast.csv", parse_dates=["time"])
    clean = pd.read_parquet(project / "data/02_intermediate/forecast_clean.parquet")
    assert out["step"].tolist() == [1, 2, 3, 4] and out["time"].iloc[0] == clean["date"].iloc[-1] + pd.Timedelta(weeks=1)
    scored = pd.read_csv(project / "data/07_model_output/predict_sentiment.csv")
    assert list(scored.columns) == ["text", "source", "probability", "label"]
    generated = pd.read_csv(project / "data/07_model_output/predict_textgen.csv", keep_default_na=False)
    assert generated["prompt"].tolist() == ["ROMEO:", "\n"]
    assert printed(generated["text"][0]) == generate_cli(project, "ROMEO:", "--length", "40", "--temperature", "0.8",
                                                         "--top-k", "5", "--seed", "3")
    client = mlflow_client(project)
    (run,) = client.search_runs([client.get_experiment_by_name("predict_forecast").experiment_id])
    assert run.info.status == "FINISHED" and run.data.tags["scored_model_version"] == "forecast/1"
    assert run.info.run_name == "predict_forecast models:/forecast@champion"


def generate_cli(root, prompt: str, *args: str) -> str:
    """What ``lstm-lab-generate`` prints for the project's trained checkpoint."""
    done = subprocess.run([str(BIN / "lstm-lab-generate"), "--model", str(root / "data/06_models/textgen_model.ckpt"),
                           "--prompt", prompt, *args], capture_output=True, text=True, timeout=120, env=project_env())
    assert done.returncode == 0, done.stderr
    return done.stdout


def printed(text: str) -> str:
    """``text`` as lstm-lab-generate prints it: ending with one newline."""
    return text if text.endswith("\n") else text + "\n"


def frame_split(frame: pd.DataFrame) -> dict:
    return {"dataframe_split": frame.to_dict(orient="split", index=False)}


def test_forecast_served_equals_the_pipelines_forecast(project, tmp_path):
    predictions = pd.read_csv(project / "data/07_model_output/forecast_predictions.csv", parse_dates=["time"])
    clean = pd.read_parquet(project / "data/02_intermediate/forecast_clean.parquet")
    last = predictions[predictions["window"] == predictions["window"].max()]
    history = clean[clean["date"] < last["time"].iloc[0]].tail(16).copy()  # the window the pipeline used
    history["date"] = history["date"].dt.strftime("%Y-%m-%d")
    with served("models:/forecast@champion", store(project), tmp_path, tmp_path / "serve.log") as url:
        status, answer = post(f"{url}/invocations", frame_split(history))
        assert status == 200, answer
        out = pd.DataFrame(answer["predictions"])
        assert len(out) == 4 and out["step"].tolist() == [1, 2, 3, 4] and (out["id"] == "series").all()
        assert pd.to_datetime(out["time"]).tolist() == last["time"].tolist()
        np.testing.assert_allclose(out["mean"], last["lstm"], atol=1e-5, rtol=0)
        status, answer = post(f"{url}/invocations", frame_split(history.tail(5)))
        assert status == 400 and "5 row(s) given, the model needs the last 16 (lookback)" in answer["message"]


def test_sentiment_served_equals_the_pipelines_scores(project, tmp_path):
    predictions = pd.read_csv(project / "data/07_model_output/sentiment_predictions.csv")
    with served("models:/sentiment@champion", store(project), tmp_path, tmp_path / "serve.log") as url:
        status, answer = post(f"{url}/invocations", frame_split(predictions[["text"]]))
        assert status == 200, answer
        out = pd.DataFrame(answer["predictions"])
        assert len(out) == len(predictions)
        np.testing.assert_allclose(out["probability"], predictions["probability"], atol=1e-5, rtol=0)
        assert out["label"].tolist() == predictions["predicted"].tolist()


def test_textgen_served_equals_lstm_lab_generate(project, tmp_path):
    rows = pd.DataFrame({"prompt": ["ROMEO:", "JULIET:"], "length": [60, 30], "temperature": [0.8, None],
                         "top_k": [5, None], "seed": [1, 2]})
    with served("models:/textgen@champion", store(project), tmp_path, tmp_path / "serve.log") as url:
        status, answer = post(f"{url}/invocations", {"dataframe_records": rows.to_dict(orient="records")})
        assert status == 200, answer
        out = pd.DataFrame(answer["predictions"])
    assert printed(out["text"][0]) == generate_cli(project, "ROMEO:", "--length", "60", "--temperature", "0.8",
                                                   "--top-k", "5", "--seed", "1")
    assert printed(out["text"][1]) == generate_cli(project, "JULIET:", "--length", "30", "--seed", "2")


def test_a_worse_second_model_becomes_challenger(project):
    """The rule on real runs: whichever of two forecast runs has the lower test MSE holds the champion alias."""
    kedro(project, "--pipelines=forecast", "--params=forecast.training.learning_rate=0.05")
    client = mlflow_client(project)
    versions = {v.version: v for v in client.search_model_versions("name='forecast'")}
    assert set(map(str, versions)) == {"1", "2"}
    mse = {str(k): float(v.tags["lstm_lab.metric_value"]) for k, v in versions.items()}
    for key, version in versions.items():
        assert mse[str(key)] == pytest.approx(client.get_run(version.run_id).data.metrics["test_lstm_mse"])
    aliases = {alias: str(v) for alias, v in client.get_registered_model("forecast").aliases.items()}
    assert aliases == ({"champion": "2"} if mse["2"] < mse["1"] else {"champion": "1", "challenger": "2"})
    params = yaml.safe_load((project / "conf/base/parameters_forecast.yml").read_text())["forecast"]["serving"]
    assert (params["metric"], params["mode"]) == ("lstm.mse", "min")
