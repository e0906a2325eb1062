"""lstm_lab.staging on its own: a run's files are staged, read back, then committed together or discarded."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from lstm_lab import staging
from lstm_lab.datasets import AtomicJSONDataset


@pytest.fixture(autouse=True)
def no_stage():
    staging.end()
    yield
    staging.end()


def test_outside_a_run_files_are_written_in_place(tmp_path):
    dataset = AtomicJSONDataset(str(tmp_path / "a.json"))
    dataset.save({"x": 1})
    assert dataset.load() == {"x": 1} and (tmp_path / "a.json").is_file()
    assert not list(tmp_path.glob(".*.staged"))


def test_staged_run_commits_together(tmp_path):
    first, second = AtomicJSONDataset(str(tmp_path / "a.json")), AtomicJSONDataset(str(tmp_path / "sub/b.json"))
    first.save({"run": 0})
    token = staging.begin()
    first.save({"run": 1})
    second.save({"run": 1})
    assert first.load() == {"run": 1} and second.load() == {"run": 1}  # later nodes read this run's files
    assert (tmp_path / "a.json").read_text().count('"run": 0') == 1  # the target still holds the last run's
    assert not (tmp_path / "sub/b.json").exists()
    assert staging.staged_path(tmp_path / "a.json", token).is_file()
    done = staging.commit([tmp_path])
    assert sorted(done) == [tmp_path / "a.json", tmp_path / "sub/b.json"]
    assert staging.active() is None and not list(tmp_path.rglob("*.staged"))
    assert AtomicJSONDataset(str(tmp_path / "a.json")).load() == {"run": 1}


def test_failed_run_discards_everything(tmp_path):
    dataset = AtomicJSONDataset(str(tmp_path / "a.json"))
    dataset.save({"run": 0})
    staging.begin()
    dataset.save({"run": 1})
    AtomicJSONDataset(str(tmp_path / "new.json")).save({"run": 1})
    removed = staging.discard([tmp_path])
    assert len(removed) == 2 and not list(tmp_path.rglob("*.staged"))
    assert dataset.load() == {"run": 0} and not (tmp_path / "new.json").exists()


def test_child_processes_stage_into_the_same_run(tmp_path):
    """The token travels in the environment: a process the run starts (ParallelRunner, spawn) stages too."""
    staging.begin()
    code = ("import sys; from lstm_lab.datasets import AtomicJSONDataset; "
            "AtomicJSONDataset(sys.argv[1]).save({'from': 'child'})")
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "c.json")], check=True, env=dict(os.environ))
    assert not (tmp_path / "c.json").exists()
    staging.commit([tmp_path])
    assert AtomicJSONDataset(str(tmp_path / "c.json")).load() == {"from": "child"}


def test_files_of_a_dead_run_are_cleaned(tmp_path):
    from lstm_lab.processes import start_time

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    now = int(start_time())
    stale = staging.staged_path(tmp_path / "a.json", f"{int(dead.stdout)}-{now}-00ff")
    # This process's pid, but a start time an hour earlier: a dead run whose pid was given to a later process.
    reused = staging.staged_path(tmp_path / "c.json", f"{os.getpid()}-{now - 3600}-00ff")
    live = staging.staged_path(tmp_path / "b.json", f"{os.getpid()}-{now}-00ff")
    for path in (stale, reused, live):
        path.write_text("{}")
    assert sorted(staging.clean_stale([tmp_path])) == sorted([stale, reused])
    assert live.exists() and not stale.exists() and not reused.exists()
