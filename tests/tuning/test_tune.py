"""Ray Tune sweeps: search spaces and settings (fast), and real sweeps through ``kedro run`` (slow).

The slow tests start real Ray: a local instance for the sweep, and a separate ``ray start --head`` cluster on
127.0.0.1 that a second sweep joins through $RAY_ADDRESS.
"""

from __future__ import annotations

import contextlib
import math
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
import types
from pathlib import Path

import pandas as pd
import pytest
import yaml

from lstm_lab.errors import LstmLabError
from lstm_lab.params import validate
from lstm_lab.training.forecast.params import ForecastParams
from lstm_lab.tuning.space import SearchSpace, apply, check_space
from tests.conftest import BIN, TINY_FORECAST, kedro, make_project, mlflow_client, project_env, write_yaml

# One xdist group for every test that starts Ray (see tests/conftest.py): one Ray instance at a time.
pytestmark = pytest.mark.xdist_group("ray")

BASE = ForecastParams.model_validate(
    {"data": {"target_columns": ["y"]}, "split": {"fractions": [0.7, 0.15, 0.15]},
     "window": {"lookback": 8, "horizon": 2}, "model": {"hidden_sizes": [16]}}
).model_dump(mode="json")


# ------------------------------------------------------------------------------------------------------ space
def test_apply_writes_dotted_values_and_repeats_widths():
    out = apply(BASE, {"model.hidden_sizes": 64, "model.num_layers": 3, "training.learning_rate": 0.01})
    assert out["model"]["hidden_sizes"] == [64, 64, 64]
    assert out["training"]["learning_rate"] == 0.01
    assert BASE["model"]["hidden_sizes"] == [16]  # the base is not modified
    assert apply(BASE, {"model.num_layers": 2})["model"]["hidden_sizes"] == [16, 16]
    assert apply(BASE, {"model.hidden_sizes": [32, 8]})["model"]["hidden_sizes"] == [32, 8]


def test_choice_is_sampled_by_index_and_decoded_to_the_value():
    space = SearchSpace(dims={"model.hidden_sizes": {"type": "choice", "values": [[8], [16, 16]]}})
    assert space.decode({"model.hidden_sizes": 1}) == {"model.hidden_sizes": [16, 16]}
    domain = space.to_tune()["model.hidden_sizes"]
    assert sorted(domain.categories) == [0, 1]  # Optuna accepts only scalars: lists never reach it


def test_grid_enumerates_every_value_and_needs_random_search():
    space = SearchSpace(dims={"model.hidden_sizes": {"type": "grid", "values": [[8], [16]]}})
    assert space.to_tune()["model.hidden_sizes"] == {"grid_search": [0, 1]}
    with pytest.raises(LstmLabError, match="need search.algorithm: random"):
        validate("tune_forecast", {"search": {"algorithm": "optuna"},
                                   "space": {"model.dropout": {"type": "grid", "values": [0.0, 0.1]}}})


def test_quantised_integer_bounds_are_inclusive_like_the_seeds_units():
    space = SearchSpace(dims={"model.hidden_sizes": {"type": "qrandint", "low": 32, "high": 512, "q": 32}})
    domain = space.to_tune()["model.hidden_sizes"]
    draws = {domain.sample() for _ in range(400)}
    assert draws <= set(range(32, 513, 32)) and {32, 512} <= draws


@pytest.mark.parametrize(
    "dims, message",
    [
        ({"model.hiden_sizes": {"type": "choice", "values": [[8]]}}, "no parameter 'hiden_sizes'"),
        ({"training.optimizer": {"type": "choice", "values": ["adam", "adagrad"]}}, "training.optimizer"),
        ({"model.dropout": {"type": "uniform", "low": 0.0, "high": 1.5}}, "model.dropout"),
    ],
)
def test_space_checked_against_the_pipeline_schema(dims, message):
    with pytest.raises(LstmLabError, match=message):
        check_space(SearchSpace(dims=dims), BASE, ForecastParams, "tune_forecast")


@pytest.mark.parametrize(
    "space, message",
    [
        ({"training.learning_rate": {"type": "loguniform", "low": 0.0, "high": 1.0}}, "greater than 0"),
        ({"training.learning_rate": {"type": "uniform", "low": 1.0, "high": 0.5}}, "must be below high"),
        ({"model.hidden_sizes": {"type": "qrandint", "low": 32, "high": 500, "q": 32}}, "multiple of q"),
        ({"model.hidden_sizes": {"type": "normal", "low": 1, "high": 2}}, "model.hidden_sizes"),
        ({}, "at least 1"),
    ],
)
def test_bad_sweep_settings_give_one_line(space, message):
    with pytest.raises(LstmLabError, match=message) as info:
        validate("tune_forecast", {"space": space})
    assert "\n" not in str(info.value) and "parameters_tune_forecast.yml" in str(info.value)


def test_local_overrides_replace_base_distributions():
    from lstm_lab.tuning.config import TuneParams

    merged = {"model.hidden_sizes": {"type": "choice", "values": [[8]], "low": 32, "high": 512, "q": 32},
              "model.num_layers": None, "training.learning_rate": {"type": "loguniform", "low": 1e-4, "high": 1e-2}}
    space = TuneParams.model_validate({"space": merged}).space
    assert set(space) == {"model.hidden_sizes", "training.learning_rate"}
    assert space["model.hidden_sizes"].type == "choice" and space["model.hidden_sizes"].values == [[8]]
    with pytest.raises(LstmLabError, match="lerning"):  # a misspelt key is still an error, not dropped
        validate("tune_forecast", {"space": {"x.y": {"type": "uniform", "low": 0, "high": 1, "lerning": 2}}})


def test_report_averages_executions_and_ranks_nan_last():
    from lstm_lab.tuning.sweep import _AveragedReport

    def report(earlier, epoch, value):
        import torch

        trainer = types.SimpleNamespace(sanity_checking=False, current_epoch=epoch,
                                        callback_metrics={"val_loss": torch.tensor(value)})
        return _AveragedReport(earlier)._get_report_dict(trainer, None)

    assert report([], 0, 2.0)["val_loss"] == pytest.approx(2.0)
    assert report([[1.0, 0.5]], 1, 1.5)["val_loss"] == pytest.approx(1.0)
    assert report([[1.0, 0.5]], 4, 1.5)["val_loss"] == pytest.approx(1.0)  # stopped early: its best counts
    assert report([[1.0]], 0, float("nan"))["val_loss"] == math.inf


def test_every_tunable_pipeline_gets_a_sweep_built_from_its_own_data_nodes():
    from lstm_lab.pipeline_registry import register_pipelines

    pipelines = register_pipelines()
    sweep = pipelines["tune_forecast"]
    names = {n.name for n in sweep.nodes}
    assert {"clean_series", "split_series", "fit_scaler", "training_data", "sweep_forecast"} == names
    for name in ("sentiment", "textgen"):
        if name in pipelines:
            assert f"tune_{name}" in pipelines


# --------------------------------------------------------------------------------------------- real sweeps
SWEEP = {
    "num_samples": 4,
    "max_epochs": 2,
    "max_concurrent_trials": 2,
    "scheduler": {"type": "fifo"},
    "search": {"algorithm": "random", "seed": 3},
    "ray": {"num_cpus": 2},
    "space": {
        "model.hidden_sizes": {"type": "choice", "values": [[4], [8]]},
        "training.learning_rate": {"type": "loguniform", "low": 1.0e-3, "high": 1.0e-2},
        # one value the schema accepts but the data cannot serve: that trial fails, the sweep goes on
        "window.lookback": {"type": "choice", "values": [16, 5000]},
    },
}


def _sweep_project(root, sweep):
    local = yaml.safe_load(yaml.safe_dump(TINY_FORECAST))
    local["forecast"]["training"]["num_threads"] = 1  # trials use one thread: re-training must match bit for bit
    make_project(root, local)
    # conf/local merges into conf/base key by key: base dimensions not wanted here are removed with null, and
    # model.hidden_sizes (a qrandint in base) becomes a choice.
    space = {"model.num_layers": None, "training.optimizer": None, "training.learning_rate": None,
             **sweep["space"]}
    write_yaml(root / "conf/local/parameters_tune_forecast.yml", {"tune_forecast": {**sweep, "space": space}})
    return root


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    root = _sweep_project(tmp_path_factory.mktemp("sweep") / "project", SWEEP)
    result = kedro(root, "--pipelines=tune_forecast", timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return root, result


@pytest.mark.slow
def test_sweep_table_tolerates_a_failed_trial(swept):
    root, _ = swept
    table = pd.read_csv(root / "data/08_reporting/tune_forecast_results.csv")
    assert len(table) == SWEEP["num_samples"]
    failed = table[table["status"] == "ERROR"]
    assert len(failed) >= 1 and (failed["window.lookback"] == 5000).all()
    assert failed["error"].str.len().gt(0).all()
    ok = table[table["status"] == "TERMINATED"]
    assert len(ok) >= 1 and ok["val_loss"].notna().all() and (ok["window.lookback"] == 16).all()
    assert table["best"].sum() == 1 and table.loc[table["best"], "val_loss"].item() == ok["val_loss"].min()
    summary = yaml.safe_load((root / "data/08_reporting/tune_forecast_summary.json").read_text())
    assert summary["trials"] == len(table) and summary["trials_failed"] == len(failed)


@pytest.mark.slow
def test_child_runs_under_the_sweep_run(swept):
    root, _ = swept
    client = mlflow_client(root)
    experiment = client.get_experiment_by_name("tune_forecast")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1
    parent = parents[0]
    assert parent.data.tags["pipeline"] == "tune_forecast" and parent.info.status == "FINISHED"
    assert parent.data.metrics["sweep_trials"] == SWEEP["num_samples"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == SWEEP["num_samples"]
    for child in children:
        assert {"model.hidden_sizes", "training.learning_rate", "window.lookback"} <= set(child.data.params)
        if child.info.status == "FINISHED":
            history = client.get_metric_history(child.info.run_id, "val_loss")
            assert [m.step for m in history] == [1, 2]  # step = epochs trained
        else:
            assert child.info.status == "FAILED" and child.data.tags["error"]
    artifacts = {a.path for folder in ("sweep", "model", "plots")
                 for a in client.list_artifacts(parent.info.run_id, folder)}
    assert {"sweep/tune_forecast_results.csv", "sweep/tune_forecast_best_params.yml",
            "model/tune_forecast_best_model.ckpt", "plots/tune_forecast_val_loss_by_parameter.png"} <= artifacts


@pytest.mark.slow
def test_best_configuration_retrains_to_the_reported_score(swept, tmp_path):
    root, _ = swept
    best = yaml.safe_load((root / "data/08_reporting/tune_forecast_best_params.yml").read_text())
    reported = yaml.safe_load((root / "data/08_reporting/tune_forecast_summary.json").read_text())["best_val_loss"]
    retrain = make_project(tmp_path / "retrain", local_params=None)
    shutil.copy(root / "data/08_reporting/tune_forecast_best_params.yml",
                retrain / "conf/local/parameters_forecast.yml")  # the documented way to re-train
    result = kedro(retrain, "--pipelines=forecast")
    assert result.returncode == 0, result.stderr[-3000:]
    history = pd.read_csv(retrain / "data/08_reporting/forecast_history.csv")
    assert history["val_loss"].min() == pytest.approx(reported, rel=1e-6)
    assert best["forecast"]["training"]["max_epochs"] == SWEEP["max_epochs"]


@pytest.mark.slow
def test_same_sweep_again_resumes_instead_of_retraining(swept):
    root, _ = swept
    before = pd.read_csv(root / "data/08_reporting/tune_forecast_results.csv")
    result = kedro(root, "--pipelines=tune_forecast", timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resuming the sweep" in result.stdout + result.stderr
    after = pd.read_csv(root / "data/08_reporting/tune_forecast_results.csv")
    # (the run ids are new child runs; a trial that failed before the resume has no node record any more)
    volatile = ["mlflow_run_id", "node_ip"]
    pd.testing.assert_frame_equal(before.drop(columns=volatile), after.drop(columns=volatile))


@pytest.mark.slow
def test_bad_space_fails_before_anything_runs(tmp_path):
    sweep = {**SWEEP, "space": {"model.units": {"type": "choice", "values": [8]}}}
    root = _sweep_project(tmp_path / "project", sweep)
    result = kedro(root, "--pipelines=tune_forecast")
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Error:") and "model.units" in last and "no parameter 'units'" in last
    assert not (root / "ray_results").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_sweep_joins_an_existing_cluster_through_ray_address(tmp_path):
    port = _free_port()
    # Loopback only: Ray otherwise swaps 127.0.0.1 for the machine's network address on both sides (the
    # variable's name is historical: on Linux it means "cluster on a routable address").
    # Ray 2.60 clusters require a shared token (RAY_AUTH_MODE=token): the cluster and the sweep get the same one.
    loopback = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "token",
                "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    env = project_env({"RAY_USAGE_STATS_ENABLED": "0", **loopback})
    # `ray start --block` in its own session: SIGTERM makes it stop exactly the processes it started, where
    # `ray stop` would kill every Ray instance on the machine (another test's or a benchmark's included).
    log = tmp_path / "ray_head.log"  # a file, not a pipe: a full pipe would stall the head
    with log.open("w") as out:
        head = subprocess.Popen(
            [str(BIN / "ray"), "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={port}",
             "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats"],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        _wait_for_cluster(head, f"127.0.0.1:{port}", env, log)
        sweep = {**SWEEP, "num_samples": 2, "scheduler": {"type": "asha", "grace_period": 1},
                 "space": {"model.hidden_sizes": {"type": "choice", "values": [[4], [8]]}}}
        root = _sweep_project(tmp_path / "project", sweep)
        result = kedro(root, "--pipelines=tune_forecast", env={"RAY_ADDRESS": f"127.0.0.1:{port}", **loopback},
                       timeout=900)
        assert result.returncode == 0, result.stderr[-3000:]
        assert f"joining the Ray cluster at 127.0.0.1:{port}" in result.stdout + result.stderr
        table = pd.read_csv(root / "data/08_reporting/tune_forecast_results.csv")
        assert len(table) == 2 and (table["status"] == "TERMINATED").all()
        assert (table["node_ip"] == "127.0.0.1").all()  # the trials ran on that (loopback-only) cluster
    finally:
        head.terminate()
        try:
            head.wait(timeout=120)
        except subprocess.TimeoutExpired:
            pass
        with contextlib.suppress(ProcessLookupError):  # anything of that session still alive
            os.killpg(head.pid, signal.SIGKILL)
        head.wait(timeout=30)


def _wait_for_cluster(head: subprocess.Popen, address: str, env: dict[str, str], log: Path,
                      timeout: float = 180) -> None:
    """Block until the head node answers `ray status`; fail with its output if it exited instead."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if head.poll() is not None:
            pytest.fail(f"ray start --head exited with {head.returncode}: {log.read_text()[-3000:]}")
        status = subprocess.run([str(BIN / "ray"), "status", f"--address={address}"], env=env,
                                capture_output=True, text=True, timeout=120)
        if status.returncode == 0:
            return
        time.sleep(1)
    pytest.fail(f"the Ray head at {address} did not come up within {timeout:.0f} s")


@pytest.mark.slow
def test_the_same_factory_sweeps_textgen(tmp_path):
    """tune_textgen: textgen's own data nodes + the shared sweep node, Optuna TPE with ASHA."""
    from tests.conftest import SHARED

    corpus = SHARED / "tinyshakespeare" / "input.txt"
    if not corpus.is_file():
        pytest.skip(f"{corpus} not found (../shared/data)")
    root = make_project(tmp_path / "project", local_params=None)
    raw = root / "data/01_raw/tinyshakespeare/input.txt"
    raw.parent.mkdir(parents=True, exist_ok=True)
    raw.write_text(corpus.read_text(encoding="utf-8")[:20000], encoding="utf-8")
    write_yaml(root / "conf/local/parameters_textgen.yml", {"textgen": {
        "model": {"hidden_sizes": [16]}, "embedding": {"dim": 8}, "window": {"length": 32},
        "training": {"max_epochs": 1, "batch_size": 8}}})
    write_yaml(root / "conf/local/parameters_tune_textgen.yml", {"tune_textgen": {
        "num_samples": 2, "max_epochs": 2, "ray": {"num_cpus": 2},
        "space": {"model.hidden_sizes": {"type": "choice", "values": [16, 24]}, "model.num_layers": None,
                  "model.dropout": None, "window.length": {"type": "choice", "values": [16, 32]}}}})
    result = kedro(root, "--pipelines=tune_textgen", timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    table = pd.read_csv(root / "data/08_reporting/tune_textgen_results.csv")
    assert len(table) == 2 and (table["status"] == "TERMINATED").all()
    assert table["val_loss"].between(0, 10).all()  # nats per character
    best = yaml.safe_load((root / "data/08_reporting/tune_textgen_best_params.yml").read_text())
    assert set(best) == {"textgen"} and best["textgen"]["model"]["hidden_sizes"][0] in (16, 24)


def test_space_entries_can_be_changed_from_the_command_line():
    """``--params=tune_forecast.space.model/hidden_sizes.high=64``: Kedro splits keys on dots, so the command
    line spells the path with a slash; it is merged into the YAML's dotted entry."""
    from omegaconf import OmegaConf

    from tests.conftest import deep_merge, raw_params

    cli = OmegaConf.to_container(OmegaConf.from_dotlist(["tune_forecast.space.model/hidden_sizes.high=64"]))
    tuning = validate("tune_forecast", deep_merge(raw_params("tune_forecast"), cli["tune_forecast"]))
    entry = tuning.space["model.hidden_sizes"]
    assert (entry.type, entry.low, entry.high) == ("qrandint", 32, 64)
    assert "model/hidden_sizes" not in tuning.space


def test_scalar_choices_are_sampled_as_values_so_ray_shows_them():
    space = SearchSpace(dims={"training.optimizer": {"type": "choice", "values": ["adam", "rmsprop"]},
                              "model.num_layers": {"type": "grid", "values": [1, 2]}})
    tuned = space.to_tune()
    assert sorted(tuned["training.optimizer"].categories) == ["adam", "rmsprop"]
    assert tuned["model.num_layers"] == {"grid_search": [1, 2]}
    assert space.decode({"training.optimizer": "rmsprop", "model.num_layers": 2}) == {
        "training.optimizer": "rmsprop", "model.num_layers": 2}
