"""Real ``kedro run`` processes stopped by real signals, and runs that fail half-way.

- SIGINT / SIGTERM during training: exit 130 / 143, one ``Error:`` line saying it was interrupted, the MLflow
  run KILLED with an ``error`` tag, no staged file left, the previous run's files untouched.
- ``kill -9``: the next run closes the orphaned MLflow run (KILLED) and removes the killed run's staged files.
- A run that fails after its first node keeps the previous complete set of files, so a later
  ``--tags=evaluate`` still works (before: a 74-line IndexError traceback).
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lstm_lab import interrupts
from lstm_lab.interrupts import RunInterrupted, signals_raise
from tests.conftest import (BIN, TINY_FORECAST, deep_merge, kedro, make_project, mlflow_client, project_env,
                            run_python, write_yaml)

pytestmark = pytest.mark.slow

# Long enough to be caught in training: many epochs, early stopping off.
LONG = deep_merge(TINY_FORECAST, {"forecast": {"training": {"max_epochs": 500, "early_stopping_patience": None}}})
OUTPUTS = ["data/02_intermediate/forecast_clean.parquet", "data/05_model_input/forecast_split.json",
           "data/06_models/forecast_scaler.json", "data/06_models/forecast_model.ckpt",
           "data/08_reporting/forecast_metrics.json", "data/07_model_output/forecast_predictions.csv"]


def digests(root: Path) -> dict[str, str]:
    return {name: hashlib.sha256((root / name).read_bytes()).hexdigest() if (root / name).is_file() else "absent"
            for name in OUTPUTS}


def sentinel_outputs(root: Path) -> dict[str, str]:
    """Stand-ins for the files of an earlier complete run (a run must leave them alone unless it completes)."""
    for name in OUTPUTS:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(f"earlier run's {name}".encode())
    return digests(root)


def start_until_training(root: Path) -> tuple[subprocess.Popen, list[str]]:
    proc = subprocess.Popen([str(BIN / "kedro"), "run", "--pipelines=forecast"], cwd=root, env=project_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    deadline = time.monotonic() + 180
    for line in proc.stdout:
        lines.append(line)
        if "Running node: train_forecaster" in line:
            break
        assert time.monotonic() < deadline, "".join(lines[-20:])
    time.sleep(3)  # inside Lightning's fit by now
    return proc, lines


def only_run(root: Path):
    client = mlflow_client(root)
    runs = client.search_runs([client.get_experiment_by_name("forecast").experiment_id])
    assert len(runs) == 1
    return runs[0]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_during_training(tmp_path, signum):
    root = make_project(tmp_path / "project", LONG)
    before = sentinel_outputs(root)
    proc, lines = start_until_training(root)
    proc.send_signal(signum)
    out, _ = proc.communicate(timeout=120)
    lines.append(out)
    text = "".join(lines)
    assert proc.returncode == 128 + signum, text[-3000:]
    errors = [line for line in text.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and "Traceback" not in text, text[-3000:]
    assert f"interrupted by {signal.Signals(signum).name} during node train_forecaster" in errors[0]
    assert "outputs were discarded" in errors[0]
    assert digests(root) == before  # not even the prepare outputs of the interrupted run replaced them
    assert not list((root / "data").rglob("*.staged"))
    run = only_run(root)
    assert run.info.status == "KILLED" and run.info.run_id in errors[0]
    assert run.data.tags["error"].startswith(f"interrupted by {signal.Signals(signum).name}")


def test_kill_9_is_cleaned_up_by_the_next_run(tmp_path):
    root = make_project(tmp_path / "project", LONG)
    before = sentinel_outputs(root)
    proc, _ = start_until_training(root)
    proc.kill()  # SIGKILL: no handler runs
    proc.communicate(timeout=60)
    staged = list((root / "data").rglob("*.staged"))
    assert staged  # the prepare nodes' files, staged and never committed
    assert digests(root) == before
    orphan = only_run(root)
    assert orphan.info.status == "RUNNING"

    done = kedro(root, "--pipelines=forecast", "--tags=prepare")  # the next run, quick
    assert done.returncode == 0, done.stderr[-3000:]
    client = mlflow_client(root)
    old = client.get_run(orphan.info.run_id)
    assert old.info.status == "KILLED" and "ended without closing the run" in old.data.tags["error"]
    assert not any(p.exists() for p in staged)
    after = digests(root)
    assert after["data/02_intermediate/forecast_clean.parquet"] != before["data/02_intermediate/forecast_clean.parquet"]
    assert after["data/06_models/forecast_model.ckpt"] == before["data/06_models/forecast_model.ckpt"]  # not run


def test_a_run_failing_half_way_keeps_the_last_complete_files(tmp_path):
    root = make_project(tmp_path / "project")  # TINY_FORECAST: a complete run in a few seconds
    done = kedro(root, "--pipelines=forecast")
    assert done.returncode == 0, done.stderr[-3000:]
    complete = digests(root)
    assert "absent" not in complete.values()

    # A series long enough to clean, too short to split into three splits of whole windows.
    days = pd.date_range("2020-01-01", periods=40, freq="D")
    pd.DataFrame({"date": days, "co2": np.linspace(300, 310, 40)}).to_csv(root / "data/01_raw/short.csv", index=False)
    (root / "conf/local/catalog.yml").write_text(
        "forecast_raw:\n  type: pandas.CSVDataset\n  filepath: data/01_raw/short.csv\n")
    failed = kedro(root, "--pipelines=forecast")
    assert failed.returncode == 1
    assert [line for line in failed.stderr.splitlines() if line.startswith("Error: ")], failed.stderr[-2000:]
    assert digests(root) == complete  # forecast_clean.parquet was not replaced by the short series
    assert not list((root / "data").rglob("*.staged"))

    os.remove(root / "conf/local/catalog.yml")
    evaluated = kedro(root, "--pipelines=forecast", "--tags=evaluate")
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]


def test_textgen_corpus_too_short_keeps_the_saved_vocabulary(tmp_path):
    root = make_project(tmp_path / "project", local_params=None)
    write_yaml(root / "conf/local/parameters_textgen.yml", {"textgen": {"window": {"length": 32}}})
    corpus = root / "data/01_raw/tinyshakespeare/input.txt"
    corpus.parent.mkdir(parents=True, exist_ok=True)
    corpus.write_text("twelve chars")
    vocab = root / "data/05_model_input/textgen_vocab.json"
    vocab.write_text('{"the vocabulary": "of the last complete run"}\n')
    done = kedro(root, "--pipelines=textgen", "--tags=prepare")
    assert done.returncode == 1 and "fewer than one training window" in done.stderr
    assert vocab.read_text() == '{"the vocabulary": "of the last complete run"}\n'
    assert not list((root / "data").rglob("*.staged"))


def test_a_signal_swallowed_by_a_finaliser_still_stops_the_run():
    """Python drops an exception raised inside a weakref callback or ``__del__`` ("Exception ignored in"): a
    SIGTERM landing there (seen once under load: the run trained on and the test above timed out) is raised
    again at the next check (every training batch, every node)."""
    code = (
        "import gc, os, signal, weakref\n"
        "from lstm_lab.interrupts import RunInterrupted, raise_if_swallowed, signals_raise\n"
        "class Thing: pass\n"
        "with signals_raise():\n"
        "    thing = Thing()\n"
        "    ref = weakref.ref(thing, lambda r: os.kill(os.getpid(), signal.SIGTERM))  # the handler runs in here\n"
        "    del thing; gc.collect()\n"
        "    print('went on', flush=True)\n"
        "    try:\n"
        "        raise_if_swallowed()\n"
        "    except RunInterrupted as stop:\n"
        "        print('stopped', stop.exit_code, flush=True)\n"
        "raise_if_swallowed()  # outside the block: forgotten\n"
        "print('cleared', flush=True)\n"
    )
    done = run_python(code, timeout=60)
    assert done.stdout.split("\n")[:3] == ["went on", "stopped 143", "cleared"]
    assert "Exception ignored" in done.stderr  # the lost exception, as Python reports it


def test_the_training_callback_raises_a_swallowed_signal():
    from lstm_lab.training import callbacks

    callbacks.InterruptCheck().on_train_batch_end()  # nothing caught: nothing raised
    with pytest.raises(RunInterrupted):
        with signals_raise():
            interrupts._caught.append(signal.SIGINT)  # as the handler records it
            callbacks.InterruptCheck().on_train_batch_end()
