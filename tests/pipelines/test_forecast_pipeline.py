"""The forecast pipeline through Kedro's SequentialRunner, and what lands in MLflow."""

import json

import pytest
import torch
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from kedro.runner import SequentialRunner

from lstm_lab.checkpoints import load_checkpoint_file
from lstm_lab.training.forecast.task import TASK
from tests.conftest import TINY_FORECAST, mlflow_client, typed_params


def test_pipeline_on_an_in_memory_catalog():
    """The nodes alone, wired by the real pipeline, on a synthetic series held in memory: no files, no hooks."""
    import numpy as np
    import pandas as pd
    from kedro.io import DataCatalog, MemoryDataset

    from lstm_lab.pipelines.forecast.pipeline import create_pipeline

    t = np.arange(400)
    raw = pd.DataFrame({"date": pd.date_range("2000-01-01", periods=400, freq="D"),
                        "co2": 300 + 0.05 * t + np.sin(2 * np.pi * t / 7)})
    params = typed_params("forecast", {**TINY_FORECAST["forecast"], "evaluation": {"seasonal_period": 7}})
    catalog = DataCatalog({"forecast_raw": MemoryDataset(raw), "params:forecast": MemoryDataset(params)})
    out = SequentialRunner().run(create_pipeline().to_outputs("forecast_metrics", "forecast_plot"), catalog)
    metrics = out["forecast_metrics"].load()  # the runner hands back the outputs no node consumes
    assert set(metrics) == {"lstm", "naive", "seasonal_naive"}
    assert metrics["seasonal_naive"]["mse"] < metrics["naive"]["mse"]  # a weekly cycle: the seasonal baseline wins
    assert set(out) == {"forecast_metrics", "forecast_history", "forecast_plot"}


def run_forecast(root, **kw):
    bootstrap_project(root)
    with KedroSession.create(project_path=root, env="local") as session:
        return session.run(pipeline_names=["forecast"], runner=SequentialRunner(), **kw)


def test_pipeline_outputs_and_mlflow_run(tiny_project):
    run_forecast(tiny_project)
    reporting = tiny_project / "data" / "08_reporting"
    metrics = json.loads((reporting / "forecast_metrics.json").read_text())
    assert set(metrics) == {"lstm", "naive", "seasonal_naive"}
    for scores in metrics.values():
        assert set(scores) == {"mse", "mae", "mase", "mse_scaled", "mae_scaled"}
        assert all(v >= 0 for v in scores.values())
    assert (reporting / "forecast_learning_curves.png").stat().st_size > 1000
    assert (reporting / "forecast_vs_actual.png").stat().st_size > 1000

    # The saved checkpoint alone rebuilds the model and says how to use it (window, columns, scaler).
    model = TASK.from_checkpoint(load_checkpoint_file(tiny_project / "data/06_models/forecast_model.ckpt"))
    assert model.hparams["lookback"] == 16 and model.hparams["horizon"] == 4
    assert model.hparams["target_columns"] == ["co2"] and model.hparams["scaler"]["columns"] == ["co2"]
    assert model.net(torch.zeros(3, 16, 1)).shape == (3, 4, 1)

    client = mlflow_client(tiny_project)
    experiment = client.get_experiment_by_name("forecast")
    assert experiment.artifact_location.startswith((tiny_project / "mlartifacts").as_uri())
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    # What tells runs apart: the task's summary, then what differs from conf/base (the tiny test settings).
    assert run.info.run_name == "forecast L=16 H=4 lstm[8] lr=0.002 max_epochs=2 batch_size=128 early_stopping_patience=2"
    assert run.data.params["window.lookback"] == "16"
    assert run.data.params["model.hidden_sizes"] == "[8]"
    assert run.data.params["training.max_epochs"] == "2"
    assert run.data.tags["pipeline"] == "forecast" and run.data.tags["kedro_env"] == "local"
    assert run.data.tags["git_commit"]
    assert run.data.tags["dvc_lock_digest"] == "none"  # the temporary project has no dvc.lock
    # One point per epoch (step = epochs trained); val_loss also at step 0: the untrained model, i.e. naive.
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train_loss")] == [1, 2]
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_loss")] == [0, 1, 2]
    assert run.data.metrics["test_lstm_mse"] == pytest.approx(metrics["lstm"]["mse"])
    assert run.data.metrics["test_seasonal_naive_mase"] == pytest.approx(metrics["seasonal_naive"]["mase"])
    artifacts = {f.path for d in ("model", "plots", "reports", "config") for f in client.list_artifacts(run.info.run_id, d)}
    assert {
        "model/forecast_model.ckpt",
        "model/forecast_scaler.json",
        "plots/forecast_learning_curves.png",
        "plots/forecast_vs_actual.png",
        "reports/forecast_metrics.json",
        "config/resolved_parameters.yml",
    } <= artifacts


def test_training_is_deterministic(tiny_project):
    run_forecast(tiny_project)
    first = (tiny_project / "data/08_reporting/forecast_metrics.json").read_bytes()
    model = (tiny_project / "data/06_models/forecast_model.ckpt").read_bytes()
    run_forecast(tiny_project)
    assert (tiny_project / "data/08_reporting/forecast_metrics.json").read_bytes() == first
    assert (tiny_project / "data/06_models/forecast_model.ckpt").read_bytes() == model


def test_failing_run_is_marked_failed(tiny_project):
    (tiny_project / "conf/local/catalog.yml").write_text(
        "forecast_raw:\n  type: pandas.CSVDataset\n  filepath: data/01_raw/absent.csv\n"
    )
    with pytest.raises(Exception, match="absent.csv"):
        run_forecast(tiny_project)
    client = mlflow_client(tiny_project)
    (run,) = client.search_runs([client.get_experiment_by_name("forecast").experiment_id])
    assert run.info.status == "FAILED"
    assert "absent.csv" in run.data.tags["error"]
