"""``training.max_minutes``: a wall-time budget for one fit (Lightning's ``Trainer(max_time=...)``); when it runs out
training stops and the best checkpoint so far is kept. No timing is asserted beyond "stopped before max_epochs"."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import Timer

from lstm_lab.data.text import TextConfig, Tokenizer
from lstm_lab.errors import LstmLabError
from lstm_lab.training.entry import build_trainer, run_training
from lstm_lab.training.sentiment.params import SentimentParams
from lstm_lab.training.sentiment.task import TASK
from tests.conftest import typed_params

torch.set_num_threads(1)

MAX_EPOCHS = 200


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    words = {1: ["great", "lovely", "superb"], 0: ["awful", "rude", "stale"]}

    def texts(n):
        labels = np.arange(n) % 2
        return [f"the film was {rng.choice(words[int(y)])} and long" for y in labels], labels.astype(np.float32)

    train_texts, train_labels = texts(64)
    val_texts, val_labels = texts(16)
    tok = Tokenizer.fit(train_texts, TextConfig(max_length=8))
    return {"train_ids": tok.encode_padded(train_texts)[0], "train_labels": train_labels,
            "val_ids": tok.encode_padded(val_texts)[0], "val_labels": val_labels, "vocab_size": len(tok),
            "tokenizer": tok.to_dict()}


def params(**training) -> SentimentParams:
    return SentimentParams.model_validate({
        "embedding": {"dim": 4}, "model": {"hidden_sizes": [4]},
        "training": {"max_epochs": MAX_EPOCHS, "batch_size": 8, "num_threads": 1, "resume": "never",
                     "early_stopping_patience": None, **training}})


def test_a_tiny_budget_stops_training_early_and_keeps_the_best_checkpoint(data):
    result = run_training(TASK, params(max_minutes=0.001), data)  # 60 ms
    assert 1 <= result.epochs < MAX_EPOCHS
    assert result.checkpoint is not None and np.isfinite(result.best_val_loss)
    state = result.module.state_dict()
    assert all(torch.equal(state[k], v) for k, v in result.checkpoint["state_dict"].items())
    trained = [row for row in result.history if row["epoch"] > 0]
    assert result.best_val_loss == pytest.approx(min(row["val_loss"] for row in trained))


def test_the_budget_reaches_lightning_as_max_time(tmp_path):
    trainer = build_trainer(params(max_minutes=1.5).training, [], tmp_path)
    timers = [c for c in trainer.callbacks if isinstance(c, Timer)]
    assert len(timers) == 1 and timers[0]._duration == timedelta(minutes=1.5).total_seconds()
    assert not any(isinstance(c, Timer) for c in build_trainer(params().training, [], tmp_path).callbacks)


@pytest.mark.parametrize("value", [0, -1.0])
def test_a_budget_must_be_positive(value):
    with pytest.raises(LstmLabError, match=r"sentiment\.training\.max_minutes"):
        typed_params("sentiment", {"training": {"max_minutes": value}})
