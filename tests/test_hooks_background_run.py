"""The pipeline's MLflow run is started in a background thread (issue 18): same run everywhere, errors raised
where the run is needed, no run left RUNNING, and only ``prepare`` nodes run before it is ready."""

from __future__ import annotations

import inspect
import logging
import os
import shutil
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from lstm_lab import hooks as hooks_module
from lstm_lab.hooks import RUN_NOT_NEEDED_TAGS, ProjectHooks
from lstm_lab.tracking import active_target
from lstm_lab.tracking import pipeline_run as pipeline_run_module
from lstm_lab.tracking import store as store_module
from lstm_lab.tracking.pipeline_run import PipelineRun
from tests.conftest import store_template, typed_params


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    shutil.copy2(store_template(), root / "mlflow.db")
    monkeypatch.chdir(root)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    yield root
    import mlflow

    while mlflow.active_run() is not None:  # a failed assertion must not leave a run active for the next test
        mlflow.end_run("KILLED")
    store_module._PENDING.clear()


def client(root: Path):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")


def start(root: Path, background: bool = True) -> PipelineRun:
    return PipelineRun.start(root, "forecast", ["forecast"], ["forecast"], {"forecast": typed_params("forecast")},
                             {"forecast": "forecast test"}, {"session_id": "s1"}, "local", background=background)


def runs(root: Path):
    c = client(root)
    return c.search_runs([e.experiment_id for e in c.search_experiments()])


class Gate:
    """Holds PipelineRun._create until opened: the start is still in progress while the test goes on."""

    def __init__(self, monkeypatch, error: BaseException | None = None):
        self.opened, self.error, self.entered = threading.Event(), error, threading.Event()
        create = PipelineRun._create

        def held(run, *args):
            self.entered.set()
            assert self.opened.wait(60)
            if self.error is not None:
                raise self.error
            create(run, *args)

        monkeypatch.setattr(PipelineRun, "_create", held)


def test_background_start_makes_the_same_run_active_in_the_thread_that_started_it(project):
    import mlflow

    run = start(project)
    target = active_target()  # the training node's way: waits for the start
    assert target is not None and target.run_id == run.run_id == mlflow.active_run().info.run_id
    assert target.tracking_uri == f"sqlite:///{project.resolve() / 'mlflow.db'}"
    assert store_module._PENDING == []
    run.end("FINISHED")
    assert mlflow.active_run() is None
    (only,) = runs(project)
    assert only.info.run_id == target.run_id and only.info.status == "FINISHED"
    assert only.info.run_name == "forecast test" and only.data.tags["pipeline"] == "forecast"
    assert "mlflow.user" in only.data.tags and "lstm_lab_process" in only.data.tags  # start_run's and ours
    assert only.data.params["training.max_epochs"] == str(typed_params("forecast").training.max_epochs)
    assert [a.path for a in client(project).list_artifacts(only.info.run_id, "config")] == \
        ["config/resolved_parameters.yml"]


def test_background_and_foreground_runs_carry_the_same_tags_and_params(project):
    for background in (False, True):
        start(project, background).end("FINISHED")
    fg, bg = sorted(runs(project), key=lambda r: r.info.start_time)
    skip = {"lstm_lab_process", "mlflow.source.name"}
    assert {k: v for k, v in fg.data.tags.items() if k not in skip} == \
        {k: v for k, v in bg.data.tags.items() if k not in skip}
    assert fg.data.params == bg.data.params


def test_a_failed_start_raises_its_own_error_where_the_run_is_needed(project, monkeypatch, caplog):
    import mlflow

    error = RuntimeError("store unreachable: sqlite:///nowhere")

    def broken(*_args, **_kwargs):
        raise error

    monkeypatch.setattr(pipeline_run_module, "close_stale_runs", broken)
    run = start(project)
    for _ in range(2):  # every caller gets it, the same object (its traceback shows the failing start)
        with pytest.raises(RuntimeError) as raised:
            active_target()
        assert raised.value is error
    with caplog.at_level(logging.WARNING):
        run.end("FAILED", "a node failed")  # the node's error is the one reported: no second error
    assert "could not be started (RuntimeError: store unreachable" in caplog.text
    with pytest.raises(RuntimeError):
        start(project).end("FINISHED")  # a finished pipeline run must not pass for a recorded one
    assert store_module._PENDING == [] and mlflow.active_run() is None and runs(project) == []
    assert "MLFLOW_TRACKING_URI" not in os.environ  # the user's setting (none) is back


def test_a_failure_after_the_run_was_created_leaves_it_failed_not_running(project, monkeypatch):
    def broken(*_args, **_kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(pipeline_run_module, "log_params", broken)
    run = start(project)
    with pytest.raises(OSError, match="disk full"):
        run.wait()
    (only,) = runs(project)
    assert only.info.status == "FAILED" and only.data.tags["error"] == "OSError: disk full"


def test_the_run_becomes_a_child_of_a_run_already_active_in_the_caller(project):
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    mlflow.set_experiment("notebook")
    with mlflow.start_run(run_name="notebook") as outer:
        run = start(project)
        run.wait()
        assert mlflow.active_run().info.run_id == run.run_id
        run.end("FINISHED")
        assert mlflow.active_run().info.run_id == outer.info.run_id
    child = client(project).get_run(run.run_id)
    assert child.data.tags["mlflow.parentRunId"] == outer.info.run_id


# --- the hooks ---------------------------------------------------------------------------------------------


def hooks_in(project: Path, nodes: list) -> ProjectHooks:
    hooks = ProjectHooks()
    context = SimpleNamespace(params={"forecast": typed_params("forecast")}, project_path=project, env="local")
    hooks.after_context_created(context)
    hooks.after_catalog_created(catalog=None, conf_catalog={})
    hooks.before_pipeline_run({"pipeline_names": ["forecast"], "session_id": "s1"},
                              SimpleNamespace(nodes=nodes), None)
    return hooks


def node(name: str, *tags: str):
    return SimpleNamespace(name=name, tags=set(tags))


def test_prepare_nodes_run_while_the_run_starts_and_the_others_wait(project, monkeypatch):
    import mlflow

    gate = Gate(monkeypatch)
    prepare, train = node("clean_series", "prepare"), node("train_forecaster", "train")
    hooks = hooks_in(project, [prepare, train])
    assert gate.entered.wait(60)
    hooks.before_node_run(prepare)  # does not wait: the gate is still shut
    assert hooks._run._thread is not None and mlflow.active_run() is None
    threading.Timer(0.2, gate.opened.set).start()
    hooks.before_node_run(train)  # waits
    assert mlflow.active_run().info.run_id == hooks._run.run_id
    hooks.on_pipeline_error(RuntimeError("boom"), {}, None, None)
    (only,) = runs(project)
    assert only.info.status == "FAILED" and only.data.tags["error"] == "RuntimeError: boom"


def test_an_interrupt_before_the_run_is_ready_still_marks_it_killed(project, monkeypatch):
    gate = Gate(monkeypatch)
    hooks_in(project, [node("clean_series", "prepare")]).before_node_run(node("clean_series", "prepare"))
    threading.Timer(0.2, gate.opened.set).start()
    done = hooks_module.abort_current_run("interrupted by SIGINT")  # waits for the start, then ends the run
    (only,) = runs(project)
    assert done["run_id"] == only.info.run_id and done["node"] == "clean_series"
    assert only.info.status == "KILLED" and only.data.tags["error"] == "interrupted by SIGINT"
    assert hooks_module.abort_current_run("again") is None


def test_an_interrupt_after_a_failed_start_reports_no_run(project, monkeypatch):
    gate = Gate(monkeypatch, error=RuntimeError("no store"))
    hooks_in(project, [node("clean_series", "prepare")])
    gate.opened.set()
    done = hooks_module.abort_current_run("interrupted by SIGINT")
    assert done["run_id"] is None and runs(project) == []


def test_a_prepare_only_run_whose_start_failed_fails_and_keeps_no_outputs(project, monkeypatch):
    gate = Gate(monkeypatch, error=RuntimeError("no store"))
    hooks = hooks_in(project, [node("clean_series", "prepare")])
    discarded = []
    monkeypatch.setattr(hooks_module.staging, "discard", lambda folders: discarded.append(folders) or [])
    monkeypatch.setattr(hooks_module.staging, "commit", lambda folders: pytest.fail("outputs committed"))
    gate.opened.set()
    with pytest.raises(RuntimeError, match="no store"):
        hooks.after_pipeline_run({}, {}, None, None)
    assert discarded and hooks_module._CURRENT is None


def test_a_failed_start_is_raised_before_the_first_node_that_needs_the_run(project, monkeypatch):
    gate = Gate(monkeypatch, error=RuntimeError("no store"))
    hooks = hooks_in(project, [node("clean_series", "prepare"), node("training_data", "train")])
    gate.opened.set()
    hooks.before_node_run(node("clean_series", "prepare"))
    with pytest.raises(RuntimeError, match="no store"):
        hooks.before_node_run(node("training_data", "train"))
    hooks.on_pipeline_error(RuntimeError("no store"), {}, None, None)  # what Kedro calls next: no second error
    assert hooks_module._CURRENT is None and runs(project) == []


def test_the_projects_prepare_nodes_do_not_use_mlflow():
    """They run before the MLflow run is ready: a node using MLflow there would miss the run (or its store)."""
    from lstm_lab.pipeline_registry import register_pipelines

    checked = 0
    for pipeline in register_pipelines().values():
        for n in pipeline.nodes:
            if RUN_NOT_NEEDED_TAGS & set(n.tags):
                source = inspect.getsource(inspect.unwrap(n.func))
                for word in ("mlflow", "active_target", "tracking", "serving", "registry"):
                    assert word not in source, f"{n.name} ({n.func.__qualname__}) mentions {word}"
                checked += 1
    assert checked >= 6


def test_starting_a_run_does_not_import_ipython(project):
    """MLflow's Jupyter check imports IPython (~0.5 s): not asked in a process that has not imported it."""
    import subprocess
    import sys

    code = ("import sys\nfrom pathlib import Path\nfrom tests.test_hooks_background_run import start\n"
            "start(Path.cwd()).end('FINISHED')\nprint('IPython' in sys.modules)\n")
    from tests.conftest import REPO, project_env

    env = project_env({"PYTHONPATH": str(REPO)})
    done = subprocess.run([sys.executable, "-c", code], cwd=project, capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[-1] == "False"
    (only,) = runs(project)
    assert only.info.status == "FINISHED" and only.data.tags["mlflow.source.type"] == "LOCAL"


def test_a_failure_later_in_before_pipeline_run_leaves_no_run_running(project, monkeypatch):
    def broken(_folders):
        raise PermissionError("data/ is read-only")

    monkeypatch.setattr(hooks_module.staging, "clean_stale", broken)
    with pytest.raises(PermissionError):
        hooks_in(project, [node("clean_series", "prepare")])
    (only,) = runs(project)
    assert only.info.status == "FAILED" and "read-only" in only.data.tags["error"]
    assert hooks_module._CURRENT is None and store_module._PENDING == []


def test_a_second_signal_while_waiting_for_the_start_still_gives_one_line(project, monkeypatch):
    import signal

    from lstm_lab.cli import interrupted_message
    from lstm_lab.interrupts import RunInterrupted

    gate = Gate(monkeypatch)
    hooks_in(project, [node("clean_series", "prepare")])
    assert gate.entered.wait(60)
    waited = []

    def second_signal(run):  # the join is where a second Ctrl+C lands while the start is in progress
        waited.append(run)
        raise RunInterrupted(signal.SIGINT)

    monkeypatch.setattr(PipelineRun, "wait", second_signal)
    line = interrupted_message(RunInterrupted(signal.SIGTERM))
    assert waited and line.startswith("interrupted by SIGTERM; interrupted again by SIGINT before the MLflow run")
    gate.opened.set()  # the start goes on; the process would now exit and leave the run to the next one's check
    waited[0]._thread.join(60)
    (left,) = runs(project)
    assert left.info.status == "RUNNING" and left.data.tags["lstm_lab_process"].split(":")[1] == str(os.getpid())
    client(project).set_terminated(left.info.run_id, "KILLED")
    hooks_module._CURRENT = None
