"""Nodes of the sentiment pipeline: thin wrappers from catalog data + ``params:sentiment`` to library calls.

prepare:  sentiment_raw ({role: frame}; missing files fetched only if data.download) → load_corpus
          → sentiment_corpus (text, label, split), sentiment_data_report
          sentiment_corpus → fit_tokenizer (training split only) → sentiment_tokenizer (JSON)
          (corpus, tokenizer) → describe_text → sentiment_text_stats (vocabulary, OOV rate, length percentiles)
train:    (corpus, tokenizer) → train_classifier → sentiment_model (best checkpoint), sentiment_history
evaluate: (model, corpus, tokenizer) → evaluate_classifier → sentiment_metrics, sentiment_predictions → plots;
          (model, tokenizer) → log_serving_model → the pyfunc model in the MLflow run, sentiment_model_info

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

from lstm_lab.data.text import TextConfig, Tokenizer
from lstm_lab.datasets import LabelledText
from lstm_lab.errors import LstmLabError
from lstm_lab.pipelines.sentiment import reporting
from lstm_lab.pipelines.sentiment.params import SentimentParams, _label_key

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
REASONS = ("missing_text", "empty_text", "missing_label", "unknown_label")


def _params(raw: dict[str, Any]) -> SentimentParams:
    from lstm_lab.params import validate

    return validate("sentiment", raw)


def _text_config(p: SentimentParams) -> TextConfig:
    return TextConfig(**p.text.model_dump())


# ---------------------------------------------------------------------------------------------------- prepare
def _check_rows(frame: pd.DataFrame, role: str, p: SentimentParams) -> tuple[pd.DataFrame, dict[str, int]]:
    """Rows with a usable text and a mapped label, as (text, label); bad rows raise or are counted."""
    d = p.data
    source = str(frame["__source__"].iloc[0]) if "__source__" in frame and len(frame) else f"sentiment_raw[{role}]"
    user_columns = [c for c in frame.columns if c not in ("__source__", "__line__")]
    for column, key in ((d.text_column, "text_column"), (d.label_column, "label_column")):
        if column not in frame.columns:
            raise LstmLabError(f"{source}: column {column!r} not found; columns are {user_columns} "
                               f"(set sentiment.data.{key}, or the catalog entry's header/columns)")
    texts, raw_labels = frame[d.text_column], frame[d.label_column]
    is_text = texts.map(lambda v: isinstance(v, str)).to_numpy(bool)
    blank = np.zeros(len(frame), dtype=bool)
    blank[is_text] = texts[is_text].str.strip().eq("").to_numpy(bool)
    missing_label = raw_labels.map(lambda v: v is None or (isinstance(v, float) and np.isnan(v))
                                   or (isinstance(v, str) and not v.strip())).to_numpy(bool)
    keys = raw_labels.map(_label_key)
    mapped = keys.map(d.labels)  # NaN where the key is not in the mapping
    unknown = mapped.isna().to_numpy(bool) & ~missing_label
    bad = {"missing_text": ~is_text, "empty_text": blank, "missing_label": missing_label, "unknown_label": unknown}
    any_bad = np.logical_or.reduce(list(bad.values()))
    lines = frame["__line__"].to_numpy() if "__line__" in frame else np.arange(1, len(frame) + 1)
    if any_bad.any() and d.on_bad_rows == "error":
        i = int(np.flatnonzero(any_bad)[0])
        where = f"{frame['__source__'].iloc[i] if '__source__' in frame else source}: line {lines[i]}"
        if bad["missing_text"][i]:
            what = f"missing text in column {d.text_column!r} (got {texts.iloc[i]!r})"
        elif bad["empty_text"][i]:
            what = f"empty text in column {d.text_column!r}"
        elif bad["missing_label"][i]:
            what = f"missing label in column {d.label_column!r}"
        else:
            what = (f"label {raw_labels.iloc[i]!r} is not in sentiment.data.labels "
                    f"(known: {sorted(d.labels)})")
        raise LstmLabError(f"{where}: {what}; fix the row or set sentiment.data.on_bad_rows: skip")
    counts = {reason: int(mask.sum()) for reason, mask in bad.items()}
    keep = ~any_bad
    out = pd.DataFrame({"text": texts[keep].astype(str).to_numpy(), "label": mapped[keep].astype(np.int8).to_numpy()})
    return out, counts


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


def _split_off(labels: np.ndarray, fraction: float, rng: np.random.Generator, stratify: bool) -> np.ndarray:
    """Boolean mask of ~``fraction`` of the rows (per class when stratified), chosen by ``rng``."""
    mask = np.zeros(len(labels), dtype=bool)
    groups = [np.flatnonzero(labels == c) for c in (0, 1)] if stratify else [np.arange(len(labels))]
    for rows in groups:
        take = int(round(fraction * len(rows)))
        mask[rng.permutation(rows)[:take]] = True
    return mask


def load_corpus(raw: Mapping[str, pd.DataFrame], params: dict[str, Any]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Validate the labelled files, map labels to 0/1, make the missing splits (seeded); text, label, split.

    ``raw``: ``{role: table}``, usually a ``LabelledText``; its missing files are downloaded first only when
    ``sentiment.data.download`` is true."""
    p = _params(params)
    if not isinstance(raw, Mapping) or not raw:
        raise LstmLabError("sentiment_raw: expected {role: table} from a LabelledTextDataset")
    if isinstance(raw, LabelledText) and raw.missing():
        _fetch_or_explain(raw, p)
    frames, skipped = {}, dict.fromkeys(REASONS, 0)
    for role, frame in raw.items():
        frames[role], counts = _check_rows(frame, role, p)
        for reason, n in counts.items():
            skipped[reason] += n
    if sum(skipped.values()):
        log.warning("skipped %d bad row(s) (sentiment.data.on_bad_rows: skip): %s", sum(skipped.values()),
                    ", ".join(f"{n} {r.replace('_', ' ')}" for r, n in skipped.items() if n))
    rng = np.random.default_rng(p.split.seed)
    s = p.split
    if "all" in frames:
        pool = frames.pop("all")
        test = _split_off(pool["label"].to_numpy(), s.test_fraction, rng, s.stratify)
        frames["test"] = pool[test]
        pool = pool[~test]
        # val_fraction of the whole corpus, taken from what is left
        val = _split_off(pool["label"].to_numpy(), min(s.val_fraction / (1 - s.test_fraction), 0.999), rng,
                         s.stratify)
        frames["val"], frames["train"] = pool[val], pool[~val]
    if "train" not in frames:
        raise LstmLabError(f"sentiment_raw: no 'train' (or 'all') file among {sorted(raw)}")
    made = []
    for split, fraction in (("test", s.test_fraction), ("val", s.val_fraction)):
        if split not in frames:
            train = frames["train"]
            mask = _split_off(train["label"].to_numpy(), fraction, rng, s.stratify)
            frames[split], frames["train"] = train[mask], train[~mask]
            made.append(f"{split} = {fraction:g} of train")
    for split in SPLITS:
        if len(frames[split]) == 0:
            raise LstmLabError(f"sentiment: the {split} split is empty after cleaning; give more rows or a "
                               f"{split} file")
    if frames["train"]["label"].nunique() < 2:
        raise LstmLabError(f"sentiment: the train split has only class {int(frames['train']['label'].iloc[0])} "
                           "rows; check sentiment.data.labels")
    corpus = pd.concat([frames[split].assign(split=split) for split in SPLITS], ignore_index=True)
    report: dict[str, Any] = {"rows": {split: int(len(frames[split])) for split in SPLITS},
                              "positive_fraction": {split: float(frames[split]["label"].mean()) for split in SPLITS},
                              "skipped": skipped, "skipped_total": int(sum(skipped.values()))}
    log.info("corpus: %s rows (train/val/test)%s", "/".join(str(report["rows"][k]) for k in SPLITS),
             f"; {', '.join(made)} (seed {s.seed})" if made else "")
    return corpus, report


def fit_tokenizer(corpus: pd.DataFrame, params: dict[str, Any]) -> dict[str, Any]:
    """Vocabulary of the training split only (validation and test never leak into it)."""
    p = _params(params)
    train = corpus.loc[corpus["split"] == "train", "text"].tolist()
    tokenizer = Tokenizer.fit(train, _text_config(p))
    log.info("vocabulary: %d ids (max %d) from %d training texts, %d tokens", len(tokenizer), p.text.max_size,
             tokenizer.train_texts, tokenizer.train_tokens)
    return tokenizer.to_dict()


def describe_text(corpus: pd.DataFrame, tokenizer: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
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
def _encode(tok: Tokenizer, corpus: pd.DataFrame, split: str) -> tuple[np.ndarray, np.ndarray]:
    rows = corpus[corpus["split"] == split]
    ids, _ = tok.encode_padded(rows["text"].tolist())
    return ids, rows["label"].to_numpy(np.float32)


def training_data(corpus: pd.DataFrame, tokenizer: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """What ``run_training("sentiment", ...)`` takes (in memory); also the input of the ``tune_sentiment`` sweep."""
    tok = Tokenizer.from_dict(tokenizer, "sentiment_tokenizer")
    (train_ids, train_labels), (val_ids, val_labels) = _encode(tok, corpus, "train"), _encode(tok, corpus, "val")
    return {"train_ids": train_ids, "train_labels": train_labels, "val_ids": val_ids, "val_labels": val_labels,
            "vocab_size": len(tok)}


def train_classifier(data: dict[str, Any], params: dict[str, Any]) -> tuple[dict[str, Any], pd.DataFrame]:
    from lstm_lab.tracking import active_target
    from lstm_lab.training.entry import run_training

    p = _params(params)
    result = run_training("sentiment", p.model_dump(mode="json"), data, tracking=active_target())
    return result.checkpoint, pd.DataFrame(result.history)


# --------------------------------------------------------------------------------------------------- evaluate
def evaluate_classifier(checkpoint: dict[str, Any], corpus: pd.DataFrame, tokenizer: dict[str, Any],
                        params: dict[str, Any]) -> tuple[dict[str, Any], pd.DataFrame]:
    from lstm_lab.models.classifier import predict_probabilities
    from lstm_lab.training.sentiment import load_module

    p = _params(params)
    tok = Tokenizer.from_dict(tokenizer, "sentiment_tokenizer")
    module = load_module(checkpoint)
    ids, labels = _encode(tok, corpus, "test")
    probs = predict_probabilities(module.net, ids, p.evaluation.batch_size)
    metrics = reporting.binary_scores(labels, probs, p.evaluation.threshold)
    log.info("test: accuracy %.4f  F1 %.4f  ROC-AUC %.4f  (%d texts)", metrics["accuracy"], metrics["f1"],
             metrics["roc_auc"], metrics["n"])
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

    return plots.learning_curves(history, "sentiment: learning curves",
                                 {"loss": "binary cross-entropy", "acc": "accuracy"}, log_scale=False)


def plot_confusion_matrix(metrics: dict[str, Any], params: dict[str, Any]):
    p = _params(params)
    return reporting.confusion_figure(metrics["confusion"], p.data.class_names,
                                      f"test: accuracy {metrics['accuracy']:.3f}, F1 {metrics['f1']:.3f}")


def log_serving_model(checkpoint: dict[str, Any], tokenizer: dict[str, Any], params: dict[str, Any]
                      ) -> dict[str, Any]:
    """The pyfunc model (raw strings → probabilities, tokenizer bundled) logged into the active MLflow run."""
    import mlflow

    p = _params(params)
    run = mlflow.active_run()
    if not p.serving.log_model or run is None:
        reason = "sentiment.serving.log_model is false" if not p.serving.log_model else "no active MLflow run"
        log.info("pyfunc model not logged: %s", reason)
        return {"logged": False, "reason": reason}
    from lstm_lab.serving.sentiment_pyfunc import log_model

    info = log_model(p.serving.name, checkpoint, tokenizer, p.data.class_names, p.evaluation.threshold,
                     p.evaluation.batch_size)
    uri = f"runs:/{run.info.run_id}/{p.serving.name}"
    log.info("pyfunc model logged: %s (%s)", uri, info.model_uri)
    return {"logged": True, "run_id": run.info.run_id, "model_uri": uri, "logged_model_uri": info.model_uri,
            "name": p.serving.name}
