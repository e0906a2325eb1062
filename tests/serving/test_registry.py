"""The champion/challenger rule against a real SQLite MLflow store, publishing from a run, and the serving and
``predict_<task>`` parameters."""

from __future__ import annotations

import math

import mlflow
import pytest

from lstm_lab.errors import LstmLabError
from lstm_lab.serving.registry import CHALLENGER, Score, decide, publish, register
from tests.conftest import typed_params
from tests.serving.conftest import forecast_checkpoint, forecast_frame


# --------------------------------------------------------------------------------------------------- the rule alone
@pytest.mark.parametrize("candidate, champion, expected", [
    (Score("lstm.mse", 0.3, "min"), None, "champion"),  # no champion yet
    (Score("lstm.mse", 0.3, "min"), Score("lstm.mse", 0.4, "min"), "champion"),
    (Score("lstm.mse", 0.4, "min"), Score("lstm.mse", 0.4, "min"), "challenger"),  # a tie keeps the champion
    (Score("lstm.mse", 0.5, "min"), Score("lstm.mse", 0.4, "min"), "challenger"),
    (Score("accuracy", 0.9, "max"), Score("accuracy", 0.8, "max"), "champion"),
    (Score("accuracy", 0.7, "max"), Score("accuracy", 0.8, "max"), "challenger"),
    (Score("lstm.mse", math.nan, "min"), Score("lstm.mse", 0.4, "min"), "challenger"),
    (Score("lstm.mse", 0.4, "min"), Score("lstm.mse", math.nan, "min"), "champion"),
    (Score("lstm.mse", 9.0, "min"), Score("val_loss", 0.01, "min"), "champion"),  # champion has no rule score
    (Score("val_loss", 0.01, "min"), Score("lstm.mse", 9.0, "min"), "challenger"),  # a sweep's: not compared
    (Score("val_loss", 0.01, "min"), Score("val_loss", 0.02, "min"), "champion"),  # sweep vs sweep
])
def test_decide(candidate, champion, expected):
    version = None if champion is None else "1"
    assert decide(candidate, champion, version, "lstm.mse" if candidate.mode == "min" else "accuracy").alias == expected


def test_nan_never_becomes_the_first_champion():
    assert decide(Score("lstm.mse", math.nan, "min"), None, None, "lstm.mse").alias == CHALLENGER


# ------------------------------------------------------------------------------------------------ a real store
@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One SQLite store for the module (creating its schema takes seconds); each test registers its own names."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"
    previous = mlflow.get_tracking_uri()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        mlflow.set_tracking_uri(uri)
        mlflow.set_experiment(experiment_name="serving-tests")
        yield mlflow.MlflowClient(uri)
        while mlflow.active_run() is not None:
            mlflow.end_run()
        mlflow.set_tracking_uri(previous)


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    from lstm_lab.serving import forecast_pyfunc

    path = tmp_path_factory.mktemp("model") / "forecast_model"
    return forecast_pyfunc.save_model(path, forecast_checkpoint(forecast_frame()), "date")


def aliases(client, name: str) -> dict[str, str]:
    return {alias: str(version) for alias, version in client.get_registered_model(name).aliases.items()}


def test_champion_then_challenger_then_a_new_champion(store, saved_model):
    first = register(str(saved_model), "rule", Score("lstm.mse", 0.40, "min"))
    assert (first["version"], first["alias"], first["reason"]) == ("1", "champion", "no champion yet")
    second = register(str(saved_model), "rule", Score("lstm.mse", 0.45, "min"))
    assert second["alias"] == "challenger" and second["previous_champion"] == "1"
    assert aliases(store, "rule") == {"champion": "1", "challenger": "2"}
    third = register(str(saved_model), "rule", Score("lstm.mse", 0.30, "min"))
    assert third["alias"] == "champion" and "0.3 vs 0.4 (version 1)" in third["reason"]
    assert aliases(store, "rule") == {"champion": "3", "challenger": "2"}
    tags = store.get_model_version("rule", "3").tags  # the score travels with the version, not the run
    assert tags["lstm_lab.metric"] == "lstm.mse" and float(tags["lstm_lab.metric_value"]) == 0.30
    assert tags["lstm_lab.metric_mode"] == "min" and tags["lstm_lab.alias_reason"].startswith("better")
    assert str(store.get_model_version_by_alias("rule", "champion").version) == "3"


def test_the_mode_decides_the_direction(store, saved_model):
    register(str(saved_model), "by-accuracy", Score("accuracy", 0.80, "max"))
    assert register(str(saved_model), "by-accuracy", Score("accuracy", 0.85, "max"))["alias"] == "champion"
    assert register(str(saved_model), "by-accuracy", Score("accuracy", 0.82, "max"))["alias"] == "challenger"
    assert aliases(store, "by-accuracy") == {"champion": "2", "challenger": "3"}


# ----------------------------------------------------------------------------------------------------- publish
def forecast_params(**serving):
    return typed_params("forecast", {"window": {"lookback": 16, "horizon": 4}, "model": {"hidden_sizes": [8]},
                                     "serving": serving})


def test_publish_logs_registers_and_tags_the_run(store):
    frame = forecast_frame()
    checkpoint = forecast_checkpoint(frame)
    with mlflow.start_run() as run:
        out = publish("forecast", forecast_params(), checkpoint, {"lstm": {"mse": 0.5}}, history=frame)
    assert out["logged"] and out["model_uri"] == f"runs:/{run.info.run_id}/forecast_model"
    assert (out["registered_model"], out["version"], out["alias"]) == ("forecast", "1", "champion")
    tags = store.get_run(run.info.run_id).data.tags
    assert tags["registered_model"] == "forecast/1" and tags["registered_model_alias"] == "champion"
    version = store.get_model_version("forecast", "1")
    assert version.run_id == run.info.run_id
    model = mlflow.pyfunc.load_model("models:/forecast@champion")
    assert len(model.predict(frame)) == 4
    # The run's own URI loads the same model.
    assert len(mlflow.pyfunc.load_model(out["model_uri"]).predict(frame)) == 4
    # Batch scoring records which version the alias pointed at.
    from lstm_lab.params import validate
    from lstm_lab.serving.batch import load_model

    with mlflow.start_run() as scoring:
        load_model(validate("predict_forecast", {}), "predict_forecast")
    assert store.get_run(scoring.info.run_id).data.tags["scored_model_version"] == "forecast/1"


def test_batch_scoring_without_a_registered_model_says_how_to_get_one(store):
    from lstm_lab.params import validate
    from lstm_lab.serving.batch import load_model

    with pytest.raises(LstmLabError, match=r"^predict_forecast: cannot load models:/absent@champion from sqlite:"
                                           r".*; train and register one first \(kedro run --pipelines=forecast\) "
                                           r"or set predict_forecast\.model_uri$"):
        load_model(validate("predict_forecast", {"registered_model": "absent"}), "predict_forecast")


def test_publish_respects_the_switches(store):
    checkpoint = forecast_checkpoint(forecast_frame())
    assert publish("forecast", forecast_params(), checkpoint, {"lstm": {"mse": 0.5}}) == {
        "logged": False, "reason": "no active MLflow run"}
    with mlflow.start_run():
        off = publish("forecast", forecast_params(log_model=False), checkpoint, {"lstm": {"mse": 0.5}})
        assert off == {"logged": False, "reason": "forecast.serving.log_model is false"}
        only_logged = publish("forecast", forecast_params(register=False, registered_model="never"), checkpoint,
                              {"lstm": {"mse": 0.5}})
        assert only_logged["logged"] and "version" not in only_logged
        with pytest.raises(LstmLabError, match=r"^forecast metrics: no metric 'lstm.mse' \(found naive\)$"):
            publish("forecast", forecast_params(registered_model="never"), checkpoint, {"naive": {"mse": 1.0}})
    assert store.search_registered_models("name='never'") == []


def test_a_sweep_score_never_displaces_a_champion_scored_by_the_rule(store):
    checkpoint = forecast_checkpoint(forecast_frame())
    p = forecast_params(registered_model="swept")
    with mlflow.start_run():
        publish("forecast", p, checkpoint, {"lstm": {"mse": 0.5}})
        swept = publish("forecast", p, checkpoint, score=Score("val_loss", 0.001, "min"))
    assert swept["alias"] == "challenger" and "not compared" in swept["reason"]
    assert aliases(store, "swept") == {"champion": "1", "challenger": "2"}


# -------------------------------------------------------------------------------------------------- parameters
def test_serving_sections_validate():
    assert forecast_params().serving.register_version is True
    assert typed_params("sentiment").serving.mode == "max"
    assert typed_params("textgen").serving.metric == "val_loss_nats"
    with pytest.raises(LstmLabError, match=r"forecast\.serving: .*metric 'naive\.mse' is not reported"):
        forecast_params(metric="naive.mse")
    with pytest.raises(LstmLabError, match=r"forecast\.serving\.mode: "):
        forecast_params(mode="best")
    dumped = forecast_params(register=False).model_dump(mode="json")["serving"]
    assert dumped["register"] is False  # the YAML key, both ways (sweeps re-validate dumped parameters)


def test_predict_sections_validate_and_name_their_runs():
    import yaml

    from lstm_lab.hooks import run_name
    from lstm_lab.params import parameter_keys, schema_for, validate
    from tests.conftest import REPO

    assert parameter_keys(["predict_forecast"]) == ["predict_forecast"]  # no training parameters needed
    assert schema_for("predict_nothing") is None
    for task in ("forecast", "sentiment", "textgen"):
        raw = yaml.safe_load((REPO / f"conf/base/parameters_predict_{task}.yml").read_text())[f"predict_{task}"]
        p = validate(f"predict_{task}", raw)
        assert p.uri() == f"models:/{task}@champion"
    with pytest.raises(LstmLabError, match=r"predict_forecast\.modl_uri: unknown parameter"):
        validate("predict_forecast", {"modl_uri": "x"})
    with pytest.raises(LstmLabError, match=r"predict_textgen\.temperature: "):
        validate("predict_textgen", {"temperature": 0})
    p = validate("predict_forecast", {"model_uri": "runs:/abc/forecast_model"})
    assert run_name({"predict_forecast": p}) == {"predict_forecast": "predict_forecast runs:/abc/forecast_model"}
