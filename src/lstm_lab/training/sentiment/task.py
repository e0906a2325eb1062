"""The sentiment task: token ids → Embedding → LSTM encoder → one logit (positive vs negative).

``data``: ``train_ids`` / ``val_ids`` (N, max_length) int padded with 0, ``train_labels`` / ``val_labels`` (N,)
0/1, ``vocab_size``, and ``tokenizer`` (its dict): the checkpoint keeps the tokenizer, so it alone turns raw
text into a probability. With pretrained vectors (``embedding.vectors``) also ``embedding_vectors`` (V, dim)
float32 and ``embedding_found`` (V,) bool, read by the pipeline (``lstm_lab.data.vectors``): the checkpoint
holds the resulting weights, so serving never needs the vectors file. With subwords (``embedding.subwords``)
``train_ids`` / ``val_ids`` are type ids and ``train_subwords`` / ``val_subwords`` their tables (K, 1 + G) int
(``Tokenizer.encode_types``).

Ensembles (``ensemble: N``): :func:`train` fits N members with seeds ``seed .. seed+N-1``, one after the other,
each exactly as a single run with that seed would train (its own early stopping and best checkpoint), and
stacks their best weights into one checkpoint whose network is a ``SentimentEnsemble``. ``from_checkpoint``,
evaluation and the pyfunc model read it like any other sentiment checkpoint.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np

from lstm_lab.models.spec import ModelSpec
from lstm_lab.training.sentiment.params import SentimentParams
from lstm_lab.training.task import Task

log = logging.getLogger(__name__)


class SentimentTask(Task):
    name = "sentiment"
    schema = SentimentParams
    # What training.monitor may name: SentimentModule logs the loss and the accuracy at 0.5 on validation.
    val_metrics = ("val_loss", "val_acc")

    def hparams(self, p: SentimentParams, data: Mapping[str, Any]) -> dict[str, Any]:
        hp = {
            "vocab_size": int(data["vocab_size"]),
            "embedding": p.embedding.model_dump(mode="json"),
            "model": p.model.model_dump(mode="json"),
            "training": p.training.model_dump(),
            "weight_drop": p.weight_drop,
        }
        if data.get("tokenizer") is not None:
            hp["tokenizer"] = data["tokenizer"]
        return hp

    def build(self, p: SentimentParams, data: Mapping[str, Any]):
        from lstm_lab.training.sentiment.module import SentimentDataModule, SentimentModule

        hp = self.hparams(p, data)
        net = self.build_net(hp)
        if data.get("embedding_vectors") is not None:
            _start_from_vectors(net, data, p)
        module = SentimentModule(net, p.training, hp)
        datamodule = SentimentDataModule(data, batch_size=p.training.batch_size, seed=p.training.seed,
                                         eval_batch_size=p.evaluation.batch_size)
        return module, datamodule

    def build_net(self, hp: Mapping[str, Any]):
        from lstm_lab.models.classifier import SentimentClassifier, SentimentEnsemble

        e = hp.get("embedding") or {}
        s = e.get("subwords")  # the tokenizer hashes min_n..max_n; the network needs the bucket count and pooling
        subwords = {"buckets": int(s["buckets"]), "pooling": s.get("pooling", "mean")} if s else None

        def member():
            return SentimentClassifier(int(hp["vocab_size"]), int(e.get("dim", 100)),
                                       ModelSpec.model_validate(hp["model"]), float(e.get("dropout", 0.0)),
                                       float(e.get("word_dropout", 0.0)), float(hp.get("weight_drop", 0.0)),
                                       subwords)

        members = int(hp.get("ensemble", 1))
        return SentimentEnsemble([member() for _ in range(members)]) if members > 1 else member()


TASK = SentimentTask()


def _start_from_vectors(net, data: Mapping[str, Any], p: SentimentParams) -> None:
    """Copy the pretrained rows into the embedding (random rows on their scale for the words the file lacks,
    seeded by training.seed) and freeze it when asked."""
    import torch

    from lstm_lab.data.vectors import Vectors, initial_embedding

    vectors = Vectors(matrix=np.asarray(data["embedding_vectors"], dtype=np.float32),
                      found=np.asarray(data["embedding_found"], dtype=bool), path="", rows_read=0)
    weight = net.embedding.weight
    if tuple(vectors.matrix.shape) != tuple(weight.shape):
        raise ValueError(f"embedding_vectors {vectors.matrix.shape} do not fit the embedding {tuple(weight.shape)}")
    matrix = initial_embedding(vectors, np.random.default_rng(p.training.seed))
    with torch.no_grad():
        weight.copy_(torch.from_numpy(matrix))
    if p.embedding.vectors is not None and p.embedding.vectors.freeze:
        weight.requires_grad_(False)  # no gradient, so no optimiser update and no weight decay either


def _member_params(p: SentimentParams, k: int) -> SentimentParams:
    """Member k: the same configuration with seed + k (and as a single network)."""
    training = p.training.model_copy(update={"seed": p.training.seed + k})
    return p.model_copy(update={"training": training, "ensemble": 1})


def train(p: SentimentParams, data: Mapping[str, Any], tracking=None) -> tuple[dict[str, Any], list[dict]]:
    """Train one network, or ``p.ensemble`` of them; returns the best checkpoint and the epoch history.

    An ensemble's history has one row per member and epoch (column ``member``); its members' epoch metrics go
    to MLflow as ``member<k>_train_loss``, ``member<k>_val_loss``, ...; its checkpoint also holds
    ``ensemble``: each member's seed, the val_loss of its kept epoch, the metric that chose that epoch
    (``monitor``: training.monitor) and its value there (``best_score``), epochs, and the ensemble's own val loss
    and accuracy."""
    from lstm_lab.training.entry import run_training

    if p.ensemble == 1:
        result = run_training(TASK, p, data, tracking=tracking)
        return result.checkpoint, result.history
    from lstm_lab.models.classifier import SentimentEnsemble

    from lstm_lab.training import distributed

    # torchrun ranks cannot run this process's callbacks: there the members log unprefixed, one after the other.
    torchrun = distributed.plan_training(p.training.trainer, distributed.Platform.detect(p.training.trainer),
                                         "sentiment.training.trainer").launcher == "torchrun"
    members, history, summary = [], [], []
    for k in range(p.ensemble):
        pk = _member_params(p, k)
        callbacks = []
        if tracking is not None and not torchrun:
            from lstm_lab.tracking.epoch_metrics import MlflowEpochMetrics

            callbacks.append(MlflowEpochMetrics(tracking, prefix=f"member{k}_"))
        log.info("ensemble member %d/%d (seed %d)", k + 1, p.ensemble, pk.training.seed)
        result = run_training(TASK, pk, data, callbacks=callbacks, tracking=tracking if torchrun else None)
        members.append(result.checkpoint)
        history += [{"member": k, **row} for row in result.history]
        summary.append({"seed": pk.training.seed, "best_val_loss": float(result.best_val_loss),
                        "monitor": result.monitor, "best_score": float(result.best_score),
                        "epochs": len(result.history)})
    checkpoint = _stack(members, p.ensemble)
    net = TASK.from_checkpoint(checkpoint).net
    if not isinstance(net, SentimentEnsemble):  # pragma: no cover - build_net reads hyper_parameters.ensemble
        raise RuntimeError("the stacked checkpoint did not rebuild as an ensemble")
    scores = _val_scores(net, data, p.evaluation.batch_size)
    checkpoint["ensemble"] = {"members": summary, **scores}
    log.info("ensemble of %d: val loss %.4f, val accuracy %.4f (members' best %s %s)", p.ensemble,
             scores["val_loss"], scores["val_acc"], p.training.monitor,
             ", ".join(f"{m['best_score']:.4f}" for m in summary))
    if tracking is not None:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=tracking.tracking_uri)
        for key, value in scores.items():
            client.log_metric(tracking.run_id, f"ensemble_{key}", value)
    return checkpoint, history


def _stack(members: list[dict[str, Any]], n: int) -> dict[str, Any]:
    """One checkpoint for N members: ``net.members.<k>.<key>`` weights, hyper-parameters with ``ensemble: N``
    (optimiser and loop state are the members' own and are left out)."""
    state = {}
    for k, member in enumerate(members):
        for key, value in member["state_dict"].items():
            if key.startswith("net."):
                state[f"net.members.{k}.{key[len('net.'):]}"] = value
    hparams = {**dict(members[0]["hyper_parameters"]), "ensemble": n}  # training.seed: the first member's
    keep = {key: members[0][key] for key in ("pytorch-lightning_version",) if key in members[0]}
    return {**keep, "state_dict": state, "hyper_parameters": hparams,
            "epoch": max(int(m.get("epoch", 0)) for m in members)}


def _val_scores(net, data: Mapping[str, Any], batch_size: int) -> dict[str, float]:
    """The ensemble's binary cross-entropy and accuracy on the validation split."""
    from lstm_lab.models.classifier import predict_probabilities

    labels = np.asarray(data["val_labels"], dtype=np.float64)
    probs = predict_probabilities(net, data["val_ids"], batch_size, data.get("val_subwords"))
    probs = np.clip(probs, 1e-7, 1 - 1e-7)
    loss = -np.mean(labels * np.log(probs) + (1 - labels) * np.log(1 - probs))
    return {"val_loss": float(loss), "val_acc": float(np.mean((probs > 0.5) == (labels > 0.5)))}
