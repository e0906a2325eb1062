"""Several processes opening one fresh ``mlflow.db`` at the same moment: MLflow creates its SQLite schema on
first use without a lock of its own, so without ``ensure_store``'s ``flock`` one of them dies with
``table ... already exists``. Real processes, released together by a file barrier.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.conftest import make_project, mlflow_client, project_env

WORKERS = 4

# Imports (seconds) happen before the barrier so that every worker reaches the store within milliseconds of
# the others; a worker that waited for imports would find the tables already made and prove nothing.
WORKER = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path

    import mlflow
    from lstm_lab.tracking.store import ensure_experiment

    folder, index = Path(sys.argv[1]), sys.argv[2]
    (folder / f"ready-{index}").touch()
    go = folder / "go"
    deadline = time.monotonic() + 120
    while not go.exists():
        if time.monotonic() > deadline:
            sys.exit("no go signal")
        time.sleep(0.001)
    experiment = ensure_experiment("forecast", folder)
    with mlflow.start_run(experiment_id=experiment, run_name=f"worker-{index}"):
        mlflow.log_param("worker", index)
    print("ok", index)
    """
)


def run_together(folder: Path, uri: str, n: int = WORKERS) -> list[subprocess.CompletedProcess]:
    """Start ``n`` workers, wait until all are imported and waiting, then release them at once."""
    env = project_env({"MLFLOW_TRACKING_URI": uri})
    procs = [
        subprocess.Popen([sys.executable, "-c", WORKER, str(folder), str(i)], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for i in range(n)
    ]
    deadline = time.monotonic() + 120
    while len(list(folder.glob("ready-*"))) < n:
        if time.monotonic() > deadline or any(p.poll() not in (None, 0) for p in procs):
            break
        time.sleep(0.01)
    (folder / "go").touch()
    results = []
    for p in procs:
        out, err = p.communicate(timeout=180)
        results.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
    return results


def test_first_runs_on_a_fresh_store_do_not_race(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"  # absolute path: sqlite:////tmp/...
    assert not (tmp_path / "mlflow.db").exists()
    results = run_together(tmp_path, uri)
    for r in results:
        assert r.returncode == 0, r.stderr[-3000:]

    client = mlflow_client(tmp_path)
    experiments = [e for e in client.search_experiments() if e.name == "forecast"]
    assert len(experiments) == 1  # one experiment, whoever created it
    runs = client.search_runs([experiments[0].experiment_id])
    assert sorted(r.data.params["worker"] for r in runs) == [str(i) for i in range(WORKERS)]
    assert all(r.info.status == "FINISHED" for r in runs)
    assert (tmp_path / "mlflow.db.lock").exists()


def test_ensure_store_is_cheap_the_second_time_and_ignores_other_schemes(tmp_path, monkeypatch):
    from lstm_lab.tracking import store

    uri = f"sqlite:///{tmp_path / 'sub' / 'mlflow.db'}"
    store.ensure_store(uri)  # creates the missing folder and the schema
    assert (tmp_path / "sub" / "mlflow.db").stat().st_size > 0

    def fail(*_args, **_kw):
        raise AssertionError("the store was opened again")

    monkeypatch.setattr("mlflow.tracking._tracking_service.utils._get_store", fail)
    store.ensure_store(uri)
    store.ensure_store("http://127.0.0.1:1")  # nothing to do for a server: no connection attempted
    store.ensure_store("postgresql://nobody@127.0.0.1:1/mlflow")
    store.ensure_store("sqlite://")  # in memory: per process anyway


def test_sqlite_path():
    from lstm_lab.tracking.store import sqlite_path

    assert sqlite_path("sqlite:////tmp/x/mlflow.db") == Path("/tmp/x/mlflow.db")
    assert sqlite_path("sqlite:////tmp/x/mlflow.db?timeout=30") == Path("/tmp/x/mlflow.db")
    assert sqlite_path("sqlite:///mlflow.db") == Path.cwd() / "mlflow.db"
    assert sqlite_path("sqlite:///:memory:") is None
    assert sqlite_path("http://localhost:5000") is None


def test_experiment_created_by_someone_else_in_between(tmp_path, monkeypatch):
    """The lost race of ``ensure_experiment``: the lookup saw nothing, the creation finds the name taken."""
    import mlflow

    from lstm_lab.tracking.store import experiment_id

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    theirs = client.create_experiment("forecast")
    real_lookup = client.get_experiment_by_name
    calls = []

    def stale_then_real(name):
        calls.append(name)
        return None if len(calls) == 1 else real_lookup(name)

    monkeypatch.setattr(client, "get_experiment_by_name", stale_then_real)
    assert experiment_id(client, "forecast") == theirs
    assert len(calls) == 2


@pytest.mark.slow
def test_two_kedro_runs_on_a_fresh_project(tmp_path):
    """Two ``kedro run`` started together on a project without mlflow.db both succeed."""
    from tests.conftest import BIN

    root = make_project(tmp_path / "project", fresh_store=True)
    args = [str(BIN / "kedro"), "run", "--pipelines=forecast", "--tags=prepare"]
    procs = [subprocess.Popen(args, cwd=root, env=project_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    results = [p.communicate(timeout=600) + (p.returncode,) for p in procs]
    for _out, err, code in results:
        assert code == 0, err[-3000:]
    client = mlflow_client(root)
    experiment = client.get_experiment_by_name("forecast")
    assert len(client.search_runs([experiment.experiment_id])) == 2
