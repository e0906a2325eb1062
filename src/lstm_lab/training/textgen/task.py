"""The textgen task: a stacked character LSTM trained by stateful truncated BPTT (see ``module``).

``data``: ``ids`` (N,) the encoded corpus, ``train_end`` (first validation index) and ``vocab`` (the character
vocabulary as a dict). The checkpoint keeps the vocabulary, so it alone encodes a prompt and decodes samples.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from lstm_lab.models.spec import ModelSpec
from lstm_lab.training.task import Task, TrainedModel
from lstm_lab.training.textgen.params import TextgenParams


class TextgenTask(Task):
    name = "textgen"
    schema = TextgenParams
    val_metrics = ("val_loss", "val_bits_per_char")  # TextgenModule: val_loss / ln 2 per character

    def hparams(self, p: TextgenParams, data: Mapping[str, Any]) -> dict[str, Any]:
        vocab = dict(data["vocab"])
        return {
            "vocab_size": len(vocab["chars"]) + 1,  # + UNK (lstm_lab.data.chars)
            "model": p.model.model_dump(mode="json"),
            "training": p.training.model_dump(),
            "embedding": p.embedding.model_dump(mode="json"),
            "vocab": vocab,
        }

    def build(self, p: TextgenParams, data: Mapping[str, Any]):
        from lstm_lab.models.char_lm import CharLM
        from lstm_lab.training.textgen.module import TextgenDataModule, TextgenModule

        hp = self.hparams(p, data)
        net = CharLM(hp["vocab_size"], p.model, embedding_dim=p.embedding.dim, tie_weights=p.embedding.tie_weights)
        module = TextgenModule(net, p.training, hp)
        datamodule = TextgenDataModule(np.asarray(data["ids"]), int(data["train_end"]),
                                       batch_size=p.training.batch_size, seq_len=p.window.length)
        return module, datamodule

    def build_net(self, hp: Mapping[str, Any]):
        from lstm_lab.models.char_lm import CharLM

        embedding = hp.get("embedding") or {}
        return CharLM(int(hp["vocab_size"]), ModelSpec.model_validate(hp["model"]),
                      embedding_dim=int(embedding.get("dim", 64)), tie_weights=bool(embedding.get("tie_weights", False)))

    def vocabulary(self, trained: TrainedModel, source: str = "checkpoint"):
        """The character vocabulary stored with the model."""
        from lstm_lab.data.chars import CharVocab

        return CharVocab.from_dict(trained.hparams["vocab"], source=source)


TASK = TextgenTask()
