"""Nodes of the textgen pipeline: catalog data + the typed ``params:textgen`` → library calls.

prepare:  textgen_corpus (a path) → load_corpus → text → build_vocabulary → textgen_vocab (train split only)
                                                  └─────→ encode_corpus → textgen_ids (uint8/16), textgen_split
train:    (ids, split, vocab) → train_char_lm → textgen_model (best checkpoint), textgen_history
evaluate: (model, ids, split) → evaluate_char_lm → textgen_metrics (val nats/char, bits/char)
          model → sample_text → textgen_samples (greedy + temperature samples, markdown)
          history → plot_learning_curves
          (model, metrics) → register_textgen_model → the pyfunc model in the MLflow run, registered as `textgen`
          (champion or challenger by textgen.serving); writes no file
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import pandas as pd

from lstm_lab.data.chars import CharVocab, check_corpus, check_ids, split_point
from lstm_lab.errors import LstmLabError
from lstm_lab.training.textgen.params import TextgenParams
from lstm_lab.training.textgen.task import TASK

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------------- prepare
def load_corpus(source, p: TextgenParams) -> str:
    """The corpus text (first ``data.max_chars`` characters). ``source``: a ``TextSource`` (path, encoding);
    a missing file is downloaded only when ``data.download`` is true."""
    if not source.exists():
        if not p.data.download:
            raise LstmLabError(
                f"{source.path}: corpus not found. Put a plain-text corpus there (or point the catalog entry "
                f"textgen_corpus at yours in conf/local/catalog.yml), or run with "
                f"--params=textgen.data.download=true to fetch tinyshakespeare from {p.data.url} (sha256-checked)"
            )
        from lstm_lab.data.download import fetch

        fetch(p.data.url, p.data.sha256, source.path)
    text = source.read()
    if p.data.max_chars is not None:
        text = text[: p.data.max_chars]
    if not text:
        raise LstmLabError(f"{source.path}: the corpus is empty")
    check_corpus(text, str(source.path))
    log.info("corpus %s: %d characters", source.path, len(text))
    return text


def build_vocabulary(text: str, p: TextgenParams) -> dict[str, Any]:
    """The character vocabulary of the training split only (validation characters never leak into it)."""
    train_end = split_point(len(text), p.split.train_fraction)
    vocab = CharVocab.build(text[:train_end])
    log.info("vocabulary: %d characters from the first %d (training split) + UNK", len(vocab.chars), train_end)
    return vocab.to_dict()


def encode_corpus(text: str, vocab: dict[str, Any], p: TextgenParams) -> tuple[np.ndarray, dict[str, Any]]:
    """The whole corpus as ids (uint8 up to 256 symbols) and where validation starts; checks the sizes."""
    from lstm_lab.training.textgen.module import check_split_sizes

    v = CharVocab.from_dict(vocab, source="textgen_vocab")
    train_end = split_point(len(text), p.split.train_fraction)
    check_split_sizes(train_end, len(text) - train_end, p.window.length,
                      f" (corpus of {len(text)}, train_fraction {p.split.train_fraction})")
    for prompt in p.sampling.prompts:  # fail now rather than after training
        v.encode(prompt, unknown="error", what=f"textgen.sampling.prompts entry {prompt!r}")
    ids = v.encode(text)
    unseen = v.unseen(text[train_end:])
    if unseen:
        log.warning("%d validation character(s) of %d kind(s) never occur in training: encoded as UNK",
                    sum(unseen.values()), len(unseen))
    split = {
        "n_chars": len(text),
        "train_end": train_end,
        "train_chars": train_end,
        "val_chars": len(text) - train_end,
        "vocab_size": v.size,
        "val_unk_chars": int(sum(unseen.values())),
        "dtype": str(ids.dtype),
    }
    return ids, split


# ------------------------------------------------------------------------------------------------------ train
def training_data(
    ids: np.ndarray, split: dict[str, Any], vocab: dict[str, Any], p: TextgenParams
) -> dict[str, Any]:
    """What the textgen task trains on (in memory); also the input of the ``tune_textgen`` sweep."""
    check_ids(ids, CharVocab.from_dict(vocab).size, "textgen_ids")
    return {"ids": np.asarray(ids), "train_end": int(split["train_end"]), "vocab": vocab}


def train_char_lm(data: dict[str, Any], p: TextgenParams) -> tuple[dict[str, Any], pd.DataFrame]:
    from lstm_lab.tracking import active_target
    from lstm_lab.training.entry import run_training

    result = run_training(TASK, p, data, tracking=active_target())
    log.info("best val_loss %.4f nats/char (%.4f bits/char)", result.best_val_loss, result.best_val_loss / math.log(2))
    return result.checkpoint, pd.DataFrame(result.history)


# --------------------------------------------------------------------------------------------------- evaluate
def _model_and_vocab(checkpoint: dict[str, Any]):
    model = TASK.from_checkpoint(checkpoint)
    return model.net, TASK.vocabulary(model)


def evaluate_char_lm(checkpoint: dict[str, Any], ids: np.ndarray, split: dict[str, Any],
                     p: TextgenParams) -> dict[str, Any]:
    """Validation cross-entropy of the best model, by the training protocol (stateful streams)."""
    from lstm_lab.training.runtime import apply_runtime
    from lstm_lab.training.textgen.module import evaluate_nats

    apply_runtime(p.training)  # the fit's threads and subnormal policy, for the evaluation too
    net, _ = _model_and_vocab(checkpoint)
    val = np.asarray(ids)[int(split["train_end"]) :]
    nats, scored = evaluate_nats(net, val, p.training.batch_size, p.window.length)
    metrics = {
        "val_loss_nats": nats,
        "val_bits_per_char": nats / math.log(2),
        "val_chars_scored": scored,
        "train_chars": int(split["train_chars"]),
        "vocab_size": int(split["vocab_size"]),
    }
    log.info("validation: %.4f nats/char = %.4f bits/char over %d characters", nats, nats / math.log(2), scored)
    return metrics


def sample_text(checkpoint: dict[str, Any], p: TextgenParams) -> str:
    """Greedy and sampled continuations of each prompt, as markdown."""
    from lstm_lab.models.generate import generate_text

    s = p.sampling
    net, vocab = _model_and_vocab(checkpoint)
    top_k = f", top-k {s.top_k}" if s.top_k else ""
    lines = ["# textgen samples", "",
             f"{s.length} characters after each prompt; seed {s.seed}. Regenerate any of them with "
             "`lstm-lab-generate --model data/06_models/textgen_model.ckpt --prompt ... --seed ...`.", ""]
    for prompt in s.prompts:
        runs = [("greedy (argmax)", {"greedy": True})]
        runs += [(f"temperature {t}{top_k}", {"temperature": t, "top_k": s.top_k, "seed": s.seed})
                 for t in s.temperatures]
        for title, how in runs:
            text = generate_text(net, vocab, prompt, s.length, **how)
            lines += [f"## prompt {prompt!r}, {title}", "", "````text", prompt + text, "````", ""]
    return "\n".join(lines)


def plot_learning_curves(history: pd.DataFrame):
    from lstm_lab.evaluation import plots

    return plots.learning_curves(history, "textgen: cross-entropy per character", {"loss": "nats / character"},
                                 log_scale=False)


def log_serving_model(checkpoint: dict[str, Any], metrics: dict[str, Any], p: TextgenParams) -> None:
    """The pyfunc model (prompts → generated text, vocabulary bundled) logged into the active MLflow run and
    registered by the champion/challenger rule."""
    from lstm_lab.serving.registry import publish

    publish("textgen", p, checkpoint, metrics)
