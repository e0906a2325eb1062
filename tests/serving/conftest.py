"""Helpers of the serving tests: untrained checkpoints of each task (fast tests need no training), synthetic data,
tiny trained projects, and ``mlflow models serve`` on a loopback port, stopped at the end."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd

from tests.conftest import BIN, TINY_FORECAST, project_env, typed_params


def forecast_frame(n: int = 200, covariate: bool = False, seed: int = 0) -> pd.DataFrame:
    """A weekly (W-SAT) series like the CO2 record: trend + yearly cycle + noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    frame = pd.DataFrame({"date": pd.date_range("1990-01-06", periods=n, freq="W-SAT"),
                          "co2": 350 + 0.03 * t + 3 * np.sin(2 * np.pi * t / 52) + rng.normal(0, 0.3, n)})
    if covariate:
        frame["temp"] = 10 + 8 * np.sin(2 * np.pi * (t + 6) / 52) + rng.normal(0, 1, n)
    return frame


def forecast_checkpoint(frame: pd.DataFrame, covariates: list[str] | None = None, seed: int = 0) -> dict:
    """An untrained forecaster's checkpoint (TINY_FORECAST sizes, scaler fitted on the first 70 %)."""
    import torch

    from lstm_lab.data.timeseries import StandardScaler
    from lstm_lab.training.forecast.task import TASK

    change = {**TINY_FORECAST["forecast"], "data": {"covariate_columns": covariates or []}}
    p = typed_params("forecast", change)
    columns = ["co2", *(covariates or [])]
    scaler = StandardScaler.fit(frame[columns], int(0.7 * len(frame))).as_dict()
    data = {"inputs": np.zeros((4, len(columns)), np.float32), "targets": np.zeros((4, 1), np.float32),
            "scaler": scaler}
    hp = TASK.hparams(p, data)
    torch.manual_seed(seed)
    net = TASK.build_net(hp)
    return {"hyper_parameters": hp, "state_dict": {f"net.{k}": v for k, v in net.state_dict().items()}}


PLAY = ["ROMEO:\nBut soft, what light through yonder window breaks?\n\n",
        "JULIET:\nO Romeo, Romeo, wherefore art thou Romeo?\n\n",
        "ROMEO:\nShall I hear more, or shall I speak at this?\n\n",
        "JULIET:\nWhat's in a name? That which we call a rose.\n\n"]


def corpus(n_chars: int = 6000, seed: int = 0) -> str:
    rng = random.Random(seed)
    parts, size = [], 0
    while size < n_chars:
        parts.append(rng.choice(PLAY))
        size += len(parts[-1])
    return "".join(parts)[:n_chars]


TINY_TEXTGEN = {"textgen": {
    "window": {"length": 16}, "embedding": {"dim": 8},
    "model": {"hidden_sizes": [16], "dropout": 0.0, "head_dropout": 0.0},
    "training": {"max_epochs": 2, "batch_size": 4, "early_stopping_patience": 2, "num_threads": 1,
                 "learning_rate": 0.01},
    "sampling": {"prompts": ["\n", "ROMEO:"], "length": 40, "temperatures": [0.8], "top_k": 10},
}}


def textgen_checkpoint(text: str | None = None, seed: int = 0) -> dict:
    import torch

    from lstm_lab.data.chars import CharVocab
    from lstm_lab.training.textgen.task import TASK

    p = typed_params("textgen", TINY_TEXTGEN["textgen"])
    hp = TASK.hparams(p, {"vocab": CharVocab.build(text or corpus()).to_dict()})
    torch.manual_seed(seed)
    net = TASK.build_net(hp)
    return {"hyper_parameters": hp, "state_dict": {f"net.{k}": v for k, v in net.state_dict().items()}}


POSITIVE = ["wonderful", "great", "lovely", "delicious", "friendly", "superb", "excellent", "fresh"]
NEGATIVE = ["terrible", "awful", "rude", "cold", "bland", "dirty", "horrible", "stale"]
NOUNS = ["food", "service", "staff", "place", "movie", "phone", "waiter", "plot"]


def reviews(n: int = 400, seed: int = 0) -> list[tuple[str, int]]:
    """Labelled sentences a tiny LSTM can learn: the label is the sentiment word's."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        label = i % 2
        word = rng.choice(POSITIVE if label else NEGATIVE)
        out.append((f"The {rng.choice(NOUNS)} was {word} and the {rng.choice(NOUNS)} too.", label))
    return out


TINY_SENTIMENT = {"sentiment": {
    "split": {"val_fraction": 0.15, "test_fraction": 0.15},
    "text": {"max_length": 20}, "embedding": {"dim": 8}, "model": {"hidden_sizes": [8]},
    "training": {"max_epochs": 2, "batch_size": 32, "early_stopping_patience": 2, "num_threads": 1},
}}
SENTIMENT_CATALOG = {"sentiment_raw": {"type": "lstm_lab.datasets.LabelledTextDataset",
                                       "filepath": "data/01_raw/reviews.txt", "header": False,
                                       "columns": ["sentence", "label"]}}


def write_reviews(path: Path, rows: list[tuple[str, int]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{text}\t{label}\n" for text, label in rows), encoding="utf-8")


# ------------------------------------------------------------------------------------------------------- serving
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url: str, payload: dict, timeout: float = 60) -> tuple[int, dict]:
    request = urllib.request.Request(url, json.dumps(payload).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


@contextlib.contextmanager
def served(model_uri: str, tracking_uri: str, cwd: Path, log_path: Path, wait_s: float = 180):
    """``mlflow models serve`` on 127.0.0.1 (a free port) in its own process group; yields the base URL.
    Waits at most ``wait_s`` for /ping, and always stops the server (SIGTERM, then SIGKILL) at the end."""
    port = free_port()
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(
            [str(BIN / "mlflow"), "models", "serve", "-m", model_uri, "--env-manager", "local", "--host",
             "127.0.0.1", "--port", str(port), "--workers", "1"],
            cwd=cwd, env=project_env({"MLFLOW_TRACKING_URI": tracking_uri, "MLFLOW_DISABLE_TELEMETRY": "true"}),
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,  # uvicorn runs as its child
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + wait_s
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"mlflow models serve exited {proc.returncode}: "
                                     f"{log_path.read_text(errors='replace')[-3000:]}")
            try:
                with urllib.request.urlopen(f"{base}/ping", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"no answer on {base}/ping after {wait_s} s: "
                                     f"{log_path.read_text(errors='replace')[-3000:]}")
            time.sleep(0.5)
        yield base
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)  # the group this test started: mlflow and its uvicorn
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)
