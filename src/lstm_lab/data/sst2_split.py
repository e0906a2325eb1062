"""Sentence-level held-out splits for a phrase-level corpus such as GLUE SST-2 train.

Why: GLUE's SST-2 training file holds every labelled *phrase* of the treebank's training sentences (67,349
phrases from ~6,900 sentences), while the test sentences (GLUE dev) are whole sentences the model never saw a
part of. A validation split drawn at random from the phrases shares sentences with training: "a charming and
often affecting journey" is in val while "often affecting" and "a charming and often affecting journey ." are in
train, so val accuracy (92 %) says little about test accuracy (83 %), and early stopping picks its epoch on the
wrong signal. Here val (and test, when not given as a file) is made of whole held-out sentences instead, so it is
scored under the test's conditions.

    assignment, report = hold_out_sentences(texts, labels, {"val": 0.1}, seed=42)
    # assignment[i]: "train", "val" or "dropped" for row i

How (phrases compared as sequences of lower-cased, whitespace-separated tokens; SST text is already tokenised):

1. A *sentence* is a maximal phrase: one that is no contiguous token span of any other row. On GLUE SST-2 train
   this finds 6,885 sentences (the binary treebank has 6,920 training sentences; a few coincide or are spans of
   longer ones), with the test set's length distribution (median 19 tokens).
2. ``fractions`` of the sentences (per class when ``stratify``, seeded) are held out; their rows (duplicates
   included) form those splits.
3. Every other phrase stays in training if it is a span of at least one *training* sentence, and is dropped if it
   only occurs inside held-out sentences. This mirrors how GLUE built its own splits: a test sentence's phrases
   are in the training file exactly when some training sentence contains them too ("the film", "good"), and are
   absent otherwise. Dropping every span of a held-out sentence would instead remove the common words and short
   phrases the test sentences are allowed to share with training.

Memory: only the phrases and, per sentence, which of them it contains; spans are looked up, never stored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from lstm_lab.errors import LstmLabError

DROPPED = "dropped"


def phrase_key(text: str) -> tuple[str, ...]:
    """How phrases are compared: lower-cased whitespace tokens (SST's own tokenisation)."""
    return tuple(text.lower().split())


def find_sentences(keys: Sequence[tuple[str, ...]]) -> tuple[np.ndarray, list[list[int]]]:
    """Which distinct phrases are sentences (maximal), and for each sentence the distinct phrases it contains.

    ``keys``: distinct token tuples. Returns ``is_sentence`` (bool per key) and ``contains[j]``: the key indices
    that are spans of sentence j (sentence j itself excluded), in the order of ``np.flatnonzero(is_sentence)``.
    """
    index = {key: i for i, key in enumerate(keys)}
    covered = np.zeros(len(keys), dtype=bool)
    is_sentence = np.zeros(len(keys), dtype=bool)
    contains: dict[int, list[int]] = {}
    # Longest first: a phrase is covered by then if any longer phrase contains it (equal length means equal key).
    for i in sorted(range(len(keys)), key=lambda k: -len(keys[k])):
        if covered[i]:
            continue
        is_sentence[i] = True
        key, inside = keys[i], set()
        n = len(key)
        for start in range(n):
            for stop in range(start + 1, n + 1 if start else n):  # the whole key is the sentence itself
                j = index.get(key[start:stop])
                if j is not None:
                    inside.add(j)
        covered[list(inside)] = True
        contains[i] = sorted(inside)
    return is_sentence, [contains[i] for i in np.flatnonzero(is_sentence)]


def hold_out_sentences(texts: Sequence[str], labels: np.ndarray, fractions: Mapping[str, float], *, seed: int,
                       stratify: bool = True) -> tuple[np.ndarray, dict[str, Any]]:
    """Split phrase rows by sentence: ``fractions`` {split: share of the sentences} are held out (in the order
    given, each from the sentences left), the rest trains; see the module docstring.

    Returns one of ``"train"``, a held-out split's name or ``"dropped"`` per row, and a report (counts)."""
    labels = np.asarray(labels)
    if len(texts) != len(labels):
        raise LstmLabError(f"hold_out_sentences: {len(texts)} texts but {len(labels)} labels")
    if sum(fractions.values()) >= 1 or any(f <= 0 for f in fractions.values()):
        raise LstmLabError(f"sentiment.split: held-out sentence fractions must be > 0 and sum to < 1, got "
                           f"{dict(fractions)}")
    row_keys = [phrase_key(t) for t in texts]
    keys = list(dict.fromkeys(row_keys))
    key_of_row = np.fromiter((k for k in _positions(row_keys, keys)), dtype=np.int64, count=len(row_keys))
    is_sentence, contains = find_sentences(keys)
    sentences = np.flatnonzero(is_sentence)  # key indices
    # A sentence's label: that of its first row (SST has one label per phrase; duplicates agree).
    first_row = np.full(len(keys), -1, dtype=np.int64)
    first_row[key_of_row[::-1]] = np.arange(len(row_keys))[::-1]
    sentence_labels = labels[first_row[sentences]]

    rng = np.random.default_rng(seed)
    role = np.full(len(sentences), "train", dtype=object)
    for split, fraction in fractions.items():
        free = np.flatnonzero(role == "train")
        groups = [free[sentence_labels[free] == c] for c in np.unique(sentence_labels)] if stratify else [free]
        for group in groups:
            take = int(round(fraction * len(sentences) * len(group) / max(len(free), 1)))
            role[rng.permutation(group)[:take]] = split
    for split in fractions:
        if not (role == split).any():
            raise LstmLabError(f"sentiment.split: the held-out {split} sentences are empty ({len(sentences)} "
                               f"sentences found); raise sentiment.split.{split}_fraction or give more rows")

    in_train = np.zeros(len(keys), dtype=bool)  # a span of at least one training sentence
    key_role = np.full(len(keys), "", dtype=object)
    for j, sentence in enumerate(sentences):
        key_role[sentence] = role[j]
        if role[j] == "train":
            in_train[contains[j]] = True
    phrase = key_role == ""
    key_role[phrase & in_train] = "train"
    key_role[phrase & ~in_train] = DROPPED  # every phrase is inside some sentence: here only held-out ones
    assignment = key_role[key_of_row].astype(str)

    report = {"sentences": int(len(sentences)), "rows": int(len(row_keys)),
              "dropped_rows": int((assignment == DROPPED).sum())}
    for split in ("train", *fractions):
        report[f"{split}_sentences"] = int((role == split).sum())
        report[f"{split}_rows"] = int((assignment == split).sum())
    return assignment, report


def _positions(row_keys: Sequence[tuple[str, ...]], keys: Sequence[tuple[str, ...]]):
    index = {key: i for i, key in enumerate(keys)}
    return (index[k] for k in row_keys)


def sentence_splits(frames: Mapping[str, pd.DataFrame], *, val_fraction: float, test_fraction: float, seed: int,
                    stratify: bool = True) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """``{role: (text, label) frame}`` → train / val (/ test) by held-out sentences (``split.holdout: sentences``).

    The ``all``, ``train`` and ``val`` frames are pooled (a phrase-level val file is part of the same phrase
    collection, e.g. our SST-2 dev.tsv is 10 % of GLUE train); val is ``val_fraction`` of the pool's sentences
    and, when no test file is given, test is ``test_fraction`` of them. A test file is kept as it is."""
    frames = dict(frames)
    pooled = [frames.pop(role) for role in ("all", "train", "val") if role in frames]
    if not pooled:
        raise LstmLabError(f"sentiment_raw: no 'train' (or 'all') file among {sorted(frames)}")
    pool = pd.concat(pooled, ignore_index=True)
    held = {} if "test" in frames else {"test": test_fraction}
    held["val"] = val_fraction
    assignment, report = hold_out_sentences(pool["text"].tolist(), pool["label"].to_numpy(), held, seed=seed,
                                            stratify=stratify)
    for split in ("train", *held):
        frames[split] = pool[assignment == split].reset_index(drop=True)
    return frames, report
