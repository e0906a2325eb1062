"""training.resume: a fit killed with SIGKILL continues from its last finished epoch, bit-identically; and the
scratch folders of killed fits are removed by the next fit."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import textwrap

import lightning.pytorch as pl
import numpy as np
import pytest
import torch

from lstm_lab.training import resume
from lstm_lab.training.entry import run_training
from tests.conftest import REPO, typed_params

TINY = {"window": {"lookback": 16, "horizon": 4}, "model": {"hidden_sizes": [8]},
        "training": {"max_epochs": 6, "batch_size": 32, "early_stopping_patience": 50}}


def series_data(n: int = 400, bump: float = 0.0) -> dict:
    """The prepared data of a forecast run: a scaled weekly cycle on a trend, split 70/15/15."""
    t = np.arange(n)
    x = (np.sin(2 * np.pi * t / 7) + 0.01 * t).astype(np.float32)[:, None]
    x = (x - x[:280].mean()) / x[:280].std() + bump
    return {"inputs": x, "targets": x.copy(), "bounds": {"train_end": 280, "val_end": 340, "test_end": n},
            "scaler": {"kind": "standard", "mean": [0.0], "std": [1.0]}}


@pytest.fixture
def scratch_tmp(tmp_path, monkeypatch):
    """tempfile.gettempdir() in this test's folder: the scratch folders fit creates and cleans live there."""
    where = tmp_path / "tmp"
    where.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(where))
    return where


# ------------------------------------------------------------------------------------------------------ the folder
def test_digest_follows_the_configuration_and_the_data():
    params = typed_params("forecast", TINY)
    base = resume.configuration_digest("forecast", params.model_dump(mode="json"), series_data())
    assert len(base) == 16 and set(base) <= set("0123456789abcdef")

    def digest(training=None, data=None):
        p = typed_params("forecast", {**TINY, "training": {**TINY["training"], **(training or {})}})
        return resume.configuration_digest("forecast", p.model_dump(mode="json"), data or series_data())

    assert digest() == base
    assert digest({"num_threads": 2}) == base and digest({"resume": "never"}) == base  # speed / policy only
    assert digest({"learning_rate": 0.01}) != base
    assert digest(data=series_data(bump=1e-3)) != base  # one array's bytes
    changed = series_data()
    changed["bounds"]["val_end"] = 330
    assert digest(data=changed) != base  # a plain value
    assert resume.configuration_digest("other", params.model_dump(mode="json"), series_data()) != base


def test_data_that_is_not_plain_is_refused():
    with pytest.raises(TypeError):
        resume.data_digest({"x": object()})


def test_one_fit_per_folder(tmp_path):
    folder = tmp_path / "forecast-0123456789abcdef"
    with resume.claimed(folder) as first:
        with resume.claimed(folder) as second:
            assert first and not second  # the second run of the same configuration trains without resuming
    with resume.claimed(folder) as again:
        assert again


def test_a_last_checkpoint_that_cannot_be_used_means_starting_over(tmp_path, caplog):
    folder = tmp_path / "forecast-0123456789abcdef"
    folder.mkdir()
    (folder / resume.LAST).write_bytes(b"not a checkpoint")
    (folder / "best.ckpt").write_bytes(b"stale")
    module = torch.nn.Linear(2, 1)
    with caplog.at_level(logging.WARNING, logger="lstm_lab.training.resume"):
        assert resume.resumable(folder, module) is None
    assert "training from scratch" in caplog.text
    assert list(folder.iterdir()) == []

    # A checkpoint of another model (the code changed between the crash and the rerun): the same.
    torch.save({"epoch": 3, "state_dict": torch.nn.Linear(3, 1).state_dict()}, folder / resume.LAST)
    with caplog.at_level(logging.WARNING, logger="lstm_lab.training.resume"):
        assert resume.resumable(folder, module) is None
    assert "do not fit this model" in caplog.text
    torch.save({"epoch": 3, "state_dict": module.state_dict()}, folder / resume.LAST)
    assert resume.resumable(folder, module) == (folder / resume.LAST, 3)


# ------------------------------------------------------------------------------------------- fits in this process
class _Probe(pl.Callback):
    """Records, at each epoch end, which files the resume folder holds."""

    def __init__(self, root):
        self.root, self.seen = root, []

    def on_train_epoch_end(self, trainer, pl_module):
        self.seen.append(sorted(p.name for p in self.root.glob("*/[!.]*")))  # not the lock


def test_never_leaves_no_folder(tmp_path, scratch_tmp):
    params = typed_params("forecast", {**TINY, "training": {**TINY["training"], "max_epochs": 2, "resume": "never"}})
    probe = _Probe(tmp_path / "checkpoints")
    run_training("forecast", params, series_data(), callbacks=[probe], resume_root=tmp_path / "checkpoints")
    assert probe.seen == [[], []] and not (tmp_path / "checkpoints").exists()
    assert list(scratch_tmp.iterdir()) == []  # the scratch folder went with the fit


def test_a_completed_fit_deletes_its_folder(tmp_path, scratch_tmp):
    params = typed_params("forecast", {**TINY, "training": {**TINY["training"], "max_epochs": 3}})
    probe = _Probe(tmp_path / "checkpoints")
    result = run_training("forecast", params, series_data(), callbacks=[probe], resume_root=tmp_path / "checkpoints")
    # The probe runs before ModelCheckpoint; last.ckpt is written when the next epoch starts.
    assert probe.seen == [["history.jsonl"]] + [["best.ckpt", "history.jsonl", "last.ckpt"]] * 2
    assert not (tmp_path / "checkpoints").exists()  # the folder, and the root it emptied
    assert result.epochs == 3 and list(scratch_tmp.iterdir()) == []


def test_scratch_folders_of_dead_processes_are_removed(tmp_path, scratch_tmp):
    import psutil

    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    me, started = os.getpid(), int(psutil.Process().create_time())
    dead = scratch_tmp / f"lstm_lab_ckpt_{finished.pid}_x"
    dead_job = scratch_tmp / f"lstm_lab_job_{finished.pid}_{started}_abc"
    reused = scratch_tmp / f"lstm_lab_ckpt_{me}_{started - 1000}_abc"  # our pid, another process's start time
    alive = scratch_tmp / f"lstm_lab_ckpt_{me}_x"
    mine = scratch_tmp / f"lstm_lab_ckpt_{me}_{started}_abc"
    other = scratch_tmp / "unrelated_1_x"
    for folder in (dead, dead_job, reused, alive, mine, other):
        folder.mkdir()
        (folder / "best.ckpt").write_bytes(b"x")
    params = typed_params("forecast", {**TINY, "training": {**TINY["training"], "max_epochs": 1, "resume": "never"}})
    run_training("forecast", params, series_data())
    assert sorted(p.name for p in scratch_tmp.iterdir()) == sorted(p.name for p in (alive, mine, other))


# ------------------------------------------------------------------------------------------------------ a real kill
SCRIPT = textwrap.dedent("""
    import json, logging, os, signal, sys
    import lightning.pytorch as pl, torch
    from lstm_lab.training.task import get_task
    from lstm_lab.training.entry import run_training
    from tests.reliability.test_resume import series_data

    logging.basicConfig(level=logging.INFO, format="%(name)s %(message)s")
    params_file, root, out = sys.argv[1:4]
    kill_at = int(os.environ.get("KILL_AT_EPOCH", "-1"))

    class Kill(pl.Callback):
        def on_train_epoch_end(self, trainer, pl_module):
            if trainer.current_epoch == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)

    task = get_task("forecast")
    params = task.validate(json.load(open(params_file)))
    result = run_training(task, params, series_data(), callbacks=[Kill()], resume_root=root)
    torch.save({"best": result.best_val_loss, "state": result.module.state_dict(), "history": result.history}, out)
""")


def _train(tmp_path, name, params_file, root, kill_at=-1) -> subprocess.Popen:
    """Start the script: it trains into ``root`` and saves its result as ``<name>.pt`` (its log: ``<name>.log``)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "KILL_AT_EPOCH": str(kill_at)}
    with (tmp_path / f"{name}.log").open("w") as log_file:
        command = [sys.executable, "-c", SCRIPT, str(params_file), str(root), str(tmp_path / f"{name}.pt")]
        return subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=log_file)


def _finish(tmp_path, name, process: subprocess.Popen) -> tuple[int, str]:
    return process.wait(timeout=300), (tmp_path / f"{name}.log").read_text()


def test_a_killed_fit_resumes_bit_identically(tmp_path):
    params_file = tmp_path / "params.json"
    one_thread = {**TINY, "training": {**TINY["training"], "num_threads": 1}}  # two runs share the cores
    params_file.write_text(json.dumps(typed_params("forecast", one_thread).model_dump(mode="json")))
    root = tmp_path / "checkpoints"

    # The uninterrupted run (in a fresh resume root) alongside the one that gets killed.
    fresh = _train(tmp_path, "fresh", params_file, tmp_path / "elsewhere")
    code, log = _finish(tmp_path, "killed", _train(tmp_path, "killed", params_file, root, kill_at=2))
    assert code == -9, log[-3000:]
    (folder,) = root.iterdir()  # kept: the fit did not complete
    assert {"last.ckpt", "best.ckpt"} <= {p.name for p in folder.iterdir()}

    code, log = _finish(tmp_path, "resumed", _train(tmp_path, "resumed", params_file, root))
    assert code == 0, log[-3000:]
    # The kill came at the end of epoch 2, before that epoch's state was written: epochs 0 and 1 are kept.
    assert f"resuming forecast from epoch 2 of {folder}" in log
    assert not root.exists()  # completed: deleted

    code, log = _finish(tmp_path, "fresh", fresh)
    assert code == 0 and "resuming" not in log, log[-3000:]

    a = torch.load(tmp_path / "resumed.pt", weights_only=True)
    b = torch.load(tmp_path / "fresh.pt", weights_only=True)
    print("best val_loss: resumed", repr(a["best"]), "uninterrupted", repr(b["best"]))
    assert a["best"] == b["best"]
    assert a["state"].keys() == b["state"].keys()
    assert all(torch.equal(a["state"][k], b["state"][k]) for k in a["state"])
    # The untrained model's row (epoch 0) and the epochs before the kill included.
    assert a["history"] == b["history"] and len(a["history"]) == 7
