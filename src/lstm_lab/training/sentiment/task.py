"""The sentiment task: token ids → Embedding → LSTM encoder → one logit (positive vs negative).

``data``: ``train_ids`` / ``val_ids`` (N, max_length) int padded with 0, ``train_labels`` / ``val_labels`` (N,)
0/1, ``vocab_size``, and ``tokenizer`` (its dict): the checkpoint keeps the tokenizer, so it alone turns raw
text into a probability.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lstm_lab.models.spec import ModelSpec
from lstm_lab.training.sentiment.params import SentimentParams
from lstm_lab.training.task import Task


class SentimentTask(Task):
    name = "sentiment"
    schema = SentimentParams

    def hparams(self, p: SentimentParams, data: Mapping[str, Any]) -> dict[str, Any]:
        hp = {
            "vocab_size": int(data["vocab_size"]),
            "embedding": p.embedding.model_dump(mode="json"),
            "model": p.model.model_dump(mode="json"),
            "training": p.training.model_dump(),
        }
        if data.get("tokenizer") is not None:
            hp["tokenizer"] = data["tokenizer"]
        return hp

    def build(self, p: SentimentParams, data: Mapping[str, Any]):
        from lstm_lab.models.classifier import SentimentClassifier
        from lstm_lab.training.sentiment.module import SentimentDataModule, SentimentModule

        hp = self.hparams(p, data)
        e = p.embedding
        net = SentimentClassifier(hp["vocab_size"], e.dim, p.model, e.dropout, e.word_dropout)
        module = SentimentModule(net, p.training, hp)
        datamodule = SentimentDataModule(data, batch_size=p.training.batch_size, seed=p.training.seed,
                                         eval_batch_size=p.evaluation.batch_size)
        return module, datamodule

    def build_net(self, hp: Mapping[str, Any]):
        from lstm_lab.models.classifier import SentimentClassifier

        e = hp.get("embedding") or {}
        return SentimentClassifier(int(hp["vocab_size"]), int(e.get("dim", 100)), ModelSpec.model_validate(hp["model"]),
                                   float(e.get("dropout", 0.0)), float(e.get("word_dropout", 0.0)))


TASK = SentimentTask()
