"""DVC in temporary clones of this repository, with the real ``dvc`` and ``git``.

- first ``dvc repro`` builds the forecast stages; a second runs nothing; a model parameter change re-runs
  training/evaluation only;
- two clean clones reproduce bit for bit (same output hashes in dvc.lock, same metrics bytes);
- ``dvc exp run -S`` and ``dvc exp show``;
- ``dvc push`` to a local remote (a directory), ``dvc pull`` in another clone restores models and data;
- stages of pipelines whose raw data is absent (a fresh offline clone) never break the forecast ones;
- every MLflow run carries the digest of the dvc.lock it started from.
"""

from __future__ import annotations

import hashlib
import json
import subprocess

import pytest
import yaml

from tests.conftest import BIN, REPO, mlflow_client, project_env

pytestmark = pytest.mark.slow


def run(cwd, *args, check=True):
    done = subprocess.run([*args], cwd=cwd, env=project_env(), capture_output=True, text=True, timeout=900)
    if check:
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done


def dvc(clone, *args, check=True):
    done = run(clone, str(BIN / "dvc"), *args, check=check)
    return done.stdout + done.stderr if check else done


def json_out(text):
    """The JSON document in DVC's output (warnings about stages never run come on other lines)."""
    return json.loads(next(line for line in text.splitlines() if line.startswith(("{", "["))))


def set_params(clone, change):
    path = clone / "conf/base/parameters_forecast.yml"
    params = yaml.safe_load(path.read_text())
    change(params["forecast"])
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def shrink(f):
    f["window"].update(lookback=16, horizon=4)
    f["model"]["hidden_sizes"] = [8]
    f["training"].update(max_epochs=2, batch_size=128)


def fresh_clone(path):
    run(path.parent, "git", "clone", "-q", str(REPO), str(path))
    set_params(path, shrink)
    run(path, "git", "commit", "-qam", "tiny forecast for the test")
    return path


def outs(lock_path):
    """Every output path → md5 recorded in a dvc.lock."""
    lock = yaml.safe_load(lock_path.read_text())
    return {o["path"]: o["md5"] for stage in lock["stages"].values()
            for kind in ("outs", "metrics", "plots") for o in stage.get(kind, [])}


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    path = fresh_clone(tmp_path_factory.mktemp("dvc") / "clone")
    first = dvc(path, "repro")
    assert "Running stage 'forecast_prepare'" in first and "Running stage 'forecast_train_evaluate'" in first
    return path


def test_second_repro_runs_nothing_and_a_model_change_reruns_training_only(clone):
    lock = yaml.safe_load((clone / "dvc.lock").read_text())
    assert set(lock["stages"]) == {"forecast_prepare", "forecast_train_evaluate"}
    second = dvc(clone, "repro")
    assert "Running stage" not in second and "up to date" in second

    set_params(clone, lambda f: f["model"].update(hidden_sizes=[6]))
    third = dvc(clone, "repro")
    assert "Running stage 'forecast_prepare'" not in third
    assert "Running stage 'forecast_train_evaluate'" in third
    shown = json_out(dvc(clone, "metrics", "show", "--json"))
    metrics = next(iter(shown.values()))["data"]["data/08_reporting/forecast_metrics.json"]["data"]
    assert set(metrics) == {"lstm", "naive", "seasonal_naive"}
    assert (clone / "mlflow.db").is_file()  # DVC never owns the tracking store
    run(clone, "git", "checkout", "-q", "--", "conf/base/parameters_forecast.yml")
    dvc(clone, "repro")  # back to the committed parameters for the tests below


def test_two_clean_clones_reproduce_bit_for_bit(clone, tmp_path):
    other = fresh_clone(tmp_path / "other")
    dvc(other, "repro")
    assert outs(other / "dvc.lock") == outs(clone / "dvc.lock")  # data, model, predictions, plots, metrics
    for name in ("forecast_metrics.json", "forecast_history.csv"):
        assert (other / "data/08_reporting" / name).read_bytes() == (clone / "data/08_reporting" / name).read_bytes()


def test_push_to_a_local_remote_then_pull_in_another_clone(clone, tmp_path):
    remote = tmp_path / "remote"
    dvc(clone, "remote", "add", "-d", "--local", "testremote", str(remote))  # --local: not committed
    dvc(clone, "push")
    assert any(remote.rglob("*")), "nothing pushed"
    run(clone, "git", "add", "dvc.lock")
    run(clone, "git", "commit", "-qm", "lock after repro", check=False)  # nothing to commit if already there

    puller = tmp_path / "puller"
    run(tmp_path, "git", "clone", "-q", str(clone), str(puller))
    dvc(puller, "remote", "add", "-d", "--local", "testremote", str(remote))
    dvc(puller, "pull", "--allow-missing")  # pipelines never run (tune_forecast here) have nothing to pull
    for path, md5 in outs(puller / "dvc.lock").items():
        assert hashlib.md5((puller / path).read_bytes()).hexdigest() == md5, path
    status = dvc(puller, "status", "dvc.yaml")
    assert "changed" not in status and "up to date" in status.lower()


def test_exp_run_with_set_param_and_exp_show(clone):
    """The README's flow: ``--temp`` runs the experiment outside the workspace, so the workspace parameters (and
    the next ``make run``) stay as they were; ``make exps`` shows only what differs, each list once."""
    params_file = clone / "conf/base/parameters_forecast.yml"
    before = params_file.read_bytes()
    key = "conf/base/parameters_forecast.yml:forecast.training.learning_rate=0.01"
    out = dvc(clone, "exp", "run", "--temp", "dvc.yaml", "-S", key)
    assert "Running stage 'forecast_train_evaluate'" in out and "Running stage 'forecast_prepare'" not in out
    assert "No file hash info" not in out  # the other pipelines' never-run outputs are left alone
    assert params_file.read_bytes() == before
    table = run(clone, "make", "--no-print-directory", "exps", f"BIN={BIN}").stdout
    header = next(line for line in table.splitlines() if "Experiment" in line)
    assert "forecast.training.learning_rate" in header and "lstm.mse" in header
    assert "naive" not in header and "src/" not in header and "hidden_sizes" not in header  # unchanged: hidden
    table = json_out(dvc(clone, "exp", "show", "--json"))
    found = []
    for commit in table:
        for exp in commit.get("experiments") or []:
            for revision in exp.get("revs") or []:
                data = revision.get("data") or {}
                params = data.get("params", {}).get("conf/base/parameters_forecast.yml", {}).get("data", {})
                metrics = data.get("metrics", {}).get("data/08_reporting/forecast_metrics.json", {}).get("data")
                found.append((params.get("forecast", {}).get("training", {}).get("learning_rate"), metrics))
    assert any(lr == 0.01 and metrics and "lstm" in metrics for lr, metrics in found), found


def test_runs_are_tagged_with_the_lock_they_started_from(clone):
    run(clone, str(BIN / "kedro"), "run", "--pipelines=forecast", "--tags=evaluate")
    digest = hashlib.sha256((clone / "dvc.lock").read_bytes()).hexdigest()[:16]
    client = mlflow_client(clone)
    experiment = client.get_experiment_by_name("forecast")
    (latest,) = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"],
                                   max_results=1)
    assert latest.data.tags["dvc_lock_digest"] == digest
    assert latest.data.tags["git_commit"].split("-")[0] == run(clone, "git", "rev-parse", "HEAD").stdout.strip()


def test_pipelines_without_raw_data_do_not_break_forecast(clone):
    """sentiment/textgen read corpora a fresh offline clone does not have: their stages live in their own
    dvc.yaml (stages/<pipeline>/), so `dvc repro` (the root dvc.yaml) is unaffected, and asking for them
    fails with DVC naming the missing file."""
    assert "up to date" in dvc(clone, "repro").lower()
    for pipeline in ("sentiment", "textgen"):
        stage_file = clone / "stages" / pipeline / "dvc.yaml"
        if not stage_file.is_file():
            continue
        done = dvc(clone, "repro", str(stage_file.relative_to(clone)), check=False)
        assert done.returncode != 0
        assert "data/01_raw" in done.stdout + done.stderr
    dvc(clone, "status")  # the whole repository's status still works
