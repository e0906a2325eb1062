"""Nodes of the sentiment pipeline: catalog data + the typed ``params:sentiment`` → library calls.

prepare:  sentiment_raw ({role: frame}; missing files fetched only if data.download) → load_corpus
          → sentiment_corpus (text, label, split), sentiment_data_report
          sentiment_corpus → fit_tokenizer (training split only) → sentiment_tokenizer (JSON)
          (corpus, tokenizer) → describe_text → sentiment_text_stats (vocabulary, OOV rate, length percentiles)
train:    (corpus, tokenizer) → train_classifier → sentiment_model (best checkpoint), sentiment_history
evaluate: (model, corpus, tokenizer) → evaluate_classifier → sentiment_metrics, sentiment_predictions → plots;
          (model, tokenizer, metrics) → log_serving_model → the pyfunc model in the MLflow run, registered as
          `sentiment` (champion or challenger by sentiment.serving), sentiment_model_info

Bad rows (``sentiment.data.on_bad_rows``): ``error`` (default) stops at the first empty or missing text, missing
label or label outside ``sentiment.data.labels``, naming the file and line, before anything is written;
``skip`` drops every such row and reports how many per reason (log line, sentiment_data_report.json and the
MLflow metrics ``data_skipped_*``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from lstm_lab.data.corpus import REASONS, SPLITS, assemble_splits, check_rows, corpus_table
from lstm_lab.data.text import SubwordConfig, TextConfig, Tokenizer
from lstm_lab.datasets import LabelledText
from lstm_lab.errors import LstmLabError
from lstm_lab.training.sentiment.params import SentimentParams
from lstm_lab.training.sentiment.task import TASK

log = logging.getLogger(__name__)


def _text_config(p: SentimentParams) -> TextConfig:
    return TextConfig(**p.text.model_dump())


# ---------------------------------------------------------------------------------------------------- prepare
def _fetch_or_explain(raw: LabelledText, p: SentimentParams) -> None:
    missing = raw.missing()[0]
    if not raw.sources:
        raise LstmLabError(f"{missing}: file not found (catalog entry sentiment_raw)")
    if not p.data.download:
        raise LstmLabError(
            f"{missing}: file not found. Put the data there (or point the catalog entry sentiment_raw at your "
            f"files in conf/local/catalog.yml), or run with --params=sentiment.data.download=true to fetch it "
            f"from {', '.join(raw.sources)} (checksummed)"
        )
    raw.download()


def load_corpus(raw: Mapping[str, pd.DataFrame], p: SentimentParams) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Validate the labelled files, map labels to 0/1, make the missing splits (seeded); text, label, split.

    ``raw``: ``{role: table}``, usually a ``LabelledText``; its missing files are downloaded first only when
    ``sentiment.data.download`` is true."""
    if not isinstance(raw, Mapping) or not raw:
        raise LstmLabError("sentiment_raw: expected {role: table} from a LabelledTextDataset")
    if isinstance(raw, LabelledText) and raw.missing():
        _fetch_or_explain(raw, p)
    d, s = p.data, p.split
    frames, skipped = {}, dict.fromkeys(REASONS, 0)
    for role, frame in raw.items():
        frames[role], counts = check_rows(frame, role, text_column=d.text_column, label_column=d.label_column,
                                         labels=d.labels, on_bad_rows=d.on_bad_rows)
        for reason, n in counts.items():
            skipped[reason] += n
    if sum(skipped.values()):
        log.warning("skipped %d bad row(s) (sentiment.data.on_bad_rows: skip): %s", sum(skipped.values()),
                    ", ".join(f"{n} {r.replace('_', ' ')}" for r, n in skipped.items() if n))
    holdout = None
    if s.holdout == "sentences":  # val (and a test not given as a file) = whole held-out sentences
        from lstm_lab.data.sst2_split import sentence_splits

        frames, holdout = sentence_splits(frames, val_fraction=s.val_fraction, test_fraction=s.test_fraction,
                                          seed=s.seed, stratify=s.stratify)
        held = [f"{holdout[f'{k}_sentences']} {k}" for k in ("val", "test") if f"{k}_sentences" in holdout]
        log.info("sentence-level split: %d sentences found in %d rows; held out %s; %d training phrase(s) "
                 "dropped (they occur only inside held-out sentences)", holdout["sentences"], holdout["rows"],
                 ", ".join(held), holdout["dropped_rows"])
    frames, made = assemble_splits(frames, val_fraction=s.val_fraction, test_fraction=s.test_fraction, seed=s.seed,
                                   stratify=s.stratify, roles=list(raw))
    corpus, report = corpus_table(frames, skipped)
    if holdout is not None:
        report["holdout"] = holdout
    log.info("corpus: %s rows (train/val/test)%s", "/".join(str(report["rows"][k]) for k in SPLITS),
             f"; {', '.join(made)} (seed {s.seed})" if made else "")
    return corpus, report


def _subword_config(p: SentimentParams) -> SubwordConfig | None:
    s = p.embedding.subwords
    return None if s is None else SubwordConfig(min_n=s.min_n, max_n=s.max_n, buckets=s.buckets)


def fit_tokenizer(corpus: pd.DataFrame, p: SentimentParams) -> dict[str, Any]:
    """Vocabulary of the training split only (validation and test never leak into it); with
    ``embedding.subwords`` the tokenizer also records how it hashes n-grams, so every later encoding agrees."""
    train = corpus.loc[corpus["split"] == "train", "text"].tolist()
    tokenizer = Tokenizer.fit(train, _text_config(p), subwords=_subword_config(p))
    log.info("vocabulary: %d ids (max %d) from %d training texts, %d tokens", len(tokenizer), p.text.max_size,
             tokenizer.train_texts, tokenizer.train_tokens)
    return tokenizer.to_dict()


def describe_text(corpus: pd.DataFrame, tokenizer: dict[str, Any], p: SentimentParams) -> dict[str, Any]:
    """Vocabulary size, OOV rate per split, token-length percentiles (train) — logged as MLflow metrics."""
    tok = Tokenizer.from_dict(tokenizer, "sentiment_tokenizer")
    stats: dict[str, Any] = {"vocab_size": len(tok), "train_tokens": tok.train_tokens}
    for split in SPLITS:
        s = tok.stats(corpus.loc[corpus["split"] == split, "text"].tolist())
        stats[split] = s
    train = stats["train"]
    log.info("text: vocabulary %d, OOV rate val %.2f%% test %.2f%%, train length p50 %.0f p95 %.0f max %d "
             "(max_length %d, %.2f%% truncated)", len(tok), 100 * stats["val"]["oov_rate"],
             100 * stats["test"]["oov_rate"], train["length_p50"], train["length_p95"], train["length_max"],
             tok.config.max_length, 100 * train["truncated_fraction"])
    return stats


# ------------------------------------------------------------------------------------------------------ train
def _encode(tok: Tokenizer, corpus: pd.DataFrame, split: str) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Ids (word ids, or type ids with subwords), the types' table (None without subwords) and the labels."""
    rows = corpus[corpus["split"] == split]
    ids, subwords = tok.encode_model_input(rows["text"].tolist())
    return ids, subwords, rows["label"].to_numpy(np.float32)


def _check_subwords(tok: Tokenizer, p: SentimentParams) -> None:
    """The tokenizer (written by ``prepare``) must hash n-grams as ``embedding.subwords`` now says."""
    if tok.subwords != _subword_config(p):
        raise LstmLabError(f"sentiment_tokenizer: its subwords ({tok.subwords}) differ from sentiment.embedding."
                           f"subwords ({_subword_config(p)}); re-run the prepare stage (fit_tokenizer)")


def training_data(corpus: pd.DataFrame, tokenizer: dict[str, Any], p: SentimentParams) -> dict[str, Any]:
    """What the sentiment task trains on (in memory); also the input of the ``tune_sentiment`` sweep."""
    tok = Tokenizer.from_dict(tokenizer, "sentiment_tokenizer")
    _check_subwords(tok, p)
    data: dict[str, Any] = {"vocab_size": len(tok), "tokenizer": tokenizer}
    for split in ("train", "val"):
        ids, subwords, labels = _encode(tok, corpus, split)
        data.update({f"{split}_ids": ids, f"{split}_labels": labels})
        if subwords is not None:
            data[f"{split}_subwords"] = subwords
    if p.embedding.vectors is not None:
        data.update(_pretrained_vectors(tok, p))
    return data


def _pretrained_vectors(tok: Tokenizer, p: SentimentParams) -> dict[str, Any]:
    """The vocabulary's rows of the configured vectors file; coverage logged and recorded as MLflow params."""
    from lstm_lab.data.vectors import read_vectors
    from lstm_lab.tracking import active_target, log_params

    v = p.embedding.vectors
    vectors = read_vectors(v.path, tok.vocab, p.embedding.dim, sha256=v.sha256, lowercase=tok.config.lowercase)
    summary = vectors.summary()
    log.info("word vectors %s: %d of %d vocabulary words found (coverage %.1f%%, %d rows in the file); the "
             "others start random%s", vectors.path, summary["found"], summary["vocab_words"],
             100 * vectors.coverage, summary["file_rows"], ", all frozen" if v.freeze else "")
    target = active_target()
    if target is not None:
        from mlflow.tracking import MlflowClient

        log_params(MlflowClient(tracking_uri=target.tracking_uri), target.run_id,
                   {f"embedding.vectors.{key}": value for key, value in summary.items()})
    return {"embedding_vectors": vectors.matrix, "embedding_found": vectors.found}


def train_classifier(data: dict[str, Any], p: SentimentParams) -> tuple[dict[str, Any], pd.DataFrame]:
    from lstm_lab.tracking import active_target
    from lstm_lab.training.sentiment.task import train

    checkpoint, history = train(p, data, tracking=active_target())  # one network or an ensemble (p.ensemble)
    return checkpoint, pd.DataFrame(history)


# --------------------------------------------------------------------------------------------------- evaluate
def evaluate_classifier(checkpoint: dict[str, Any], corpus: pd.DataFrame, tokenizer: dict[str, Any],
                        p: SentimentParams) -> tuple[dict[str, Any], pd.DataFrame]:
    from lstm_lab.evaluation.classification import binary_scores
    from lstm_lab.models.classifier import predict_probabilities

    tok = Tokenizer.from_dict(tokenizer, "sentiment_tokenizer")
    net = TASK.from_checkpoint(checkpoint).net
    ids, subwords, labels = _encode(tok, corpus, "test")
    probs = predict_probabilities(net, ids, p.evaluation.batch_size, subwords)
    metrics = binary_scores(labels, probs, p.evaluation.threshold)
    log.info("test: accuracy %.4f  F1 %.4f  ROC-AUC %.4f  (%d texts)", metrics["accuracy"], metrics["f1"],
             metrics["roc_auc"], metrics["n"])
    if hasattr(net, "members"):  # an ensemble: each member's own scores too (MLflow: test_member_accuracy_<k>)
        keys = ("accuracy", "f1", "roc_auc", "log_loss")
        for key in keys:
            metrics[f"member_{key}"] = {}
        for k, member in enumerate(net.members):
            scores = binary_scores(labels, predict_probabilities(member, ids, p.evaluation.batch_size, subwords),
                                   p.evaluation.threshold)
            for key in keys:
                metrics[f"member_{key}"][str(k)] = scores[key]
        log.info("test accuracy of the %d members: %s", len(net.members),
                 ", ".join(f"{a:.4f}" for a in metrics["member_accuracy"].values()))
    names = np.asarray(p.data.class_names, dtype=object)
    predictions = pd.DataFrame({
        "text": corpus.loc[corpus["split"] == "test", "text"].to_numpy(),
        "label": names[labels.astype(int)],
        "probability": probs,
        "predicted": names[(probs > p.evaluation.threshold).astype(int)],
    })
    return metrics, predictions


def plot_learning_curves(history: pd.DataFrame):
    from lstm_lab.evaluation import plots

    title = "sentiment: learning curves"
    if "member" in history:  # an ensemble: the members' mean per epoch (over the members still training)
        members = history["member"].nunique()
        history = history.drop(columns="member").groupby("epoch", as_index=False).mean()
        title += f" (mean of {members} ensemble members)"
    return plots.learning_curves(history, title,
                                 {"loss": "binary cross-entropy", "acc": "accuracy"}, log_scale=False)


def plot_confusion_matrix(metrics: dict[str, Any], p: SentimentParams):
    from lstm_lab.evaluation.classification import confusion_figure

    return confusion_figure(metrics["confusion"], p.data.class_names,
                                      f"test: accuracy {metrics['accuracy']:.3f}, F1 {metrics['f1']:.3f}")


def log_serving_model(checkpoint: dict[str, Any], tokenizer: dict[str, Any], p: SentimentParams,
                      metrics: dict[str, Any] | None = None) -> dict[str, Any]:
    """The pyfunc model (raw strings → probabilities, tokenizer bundled) logged into the active MLflow run and,
    scored by ``metrics`` (the test scores), registered by the champion/challenger rule (sentiment.serving)."""
    from lstm_lab.serving.registry import publish

    return publish("sentiment", p, checkpoint, metrics, tokenizer=tokenizer)
