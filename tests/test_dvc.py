"""``dvc repro`` in a temporary clone: first run builds everything, a second runs nothing, and a model
parameter change re-runs training/evaluation but not data preparation."""

import json
import subprocess

import pytest
import yaml

from tests.conftest import BIN, REPO, project_env

pytestmark = pytest.mark.slow


def dvc(clone, *args):
    done = subprocess.run([str(BIN / "dvc"), *args], cwd=clone, env=project_env(), capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done.stdout + done.stderr


def set_params(clone, change):
    path = clone / "conf/base/parameters_forecast.yml"
    params = yaml.safe_load(path.read_text())
    change(params["forecast"])
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def test_dvc_repro_twice_then_only_training_reruns(tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True, timeout=120)

    def shrink(f):
        f["window"].update(lookback=16, horizon=4)
        f["model"]["hidden_sizes"] = [8]
        f["training"].update(max_epochs=2, batch_size=128)

    set_params(clone, shrink)
    first = dvc(clone, "repro")
    assert "Running stage 'forecast_prepare'" in first
    assert "Running stage 'forecast_train_evaluate'" in first
    lock = yaml.safe_load((clone / "dvc.lock").read_text())
    assert set(lock["stages"]) == {"forecast_prepare", "forecast_train_evaluate"}

    second = dvc(clone, "repro")
    assert "Running stage" not in second
    assert "up to date" in second

    set_params(clone, lambda f: f["model"].update(hidden_sizes=[6]))
    third = dvc(clone, "repro")
    assert "Running stage 'forecast_prepare'" not in third
    assert "Running stage 'forecast_train_evaluate'" in third

    shown = json.loads(dvc(clone, "metrics", "show", "--json").strip().splitlines()[-1])
    metrics = next(iter(shown.values()))["data"]["data/08_reporting/forecast_metrics.json"]["data"]
    assert set(metrics) == {"lstm", "naive", "seasonal_naive"}
    # DVC never owns the tracking store: it survives every repro with one run per kedro run.
    assert (clone / "mlflow.db").is_file()
