"""Sentence-level held-out splits of a phrase corpus: sentences found, no held-out-only phrase left in training,
shared phrases kept, seeded, and GLUE SST-2 itself when the shared data is there."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lstm_lab.data.sst2_split import DROPPED, find_sentences, hold_out_sentences, phrase_key, sentence_splits
from lstm_lab.errors import LstmLabError
from tests.conftest import SHARED


def treebank(n: int = 40, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """A small phrase corpus shaped like SST: n sentences, each with its word-level and two longer constituents,
    and words shared between sentences ("the film", "good"), labels by the sentiment word."""
    texts, labels = [], []
    for i in range(n):
        label = (i + seed) % 2
        word = ["dull", "good"][label]
        subject = f"the film {i}"
        sentence = f"{subject} is {word} , says critic{i % 3} ."
        for phrase in (sentence, subject, f"is {word}", word, "the film", f"critic{i % 3}"):
            texts.append(phrase)
            labels.append(label)
    return texts, np.array(labels)


def test_find_sentences_marks_maximal_phrases_only():
    keys = [phrase_key(t) for t in ["a b c", "b c", "a b", "c", "x y", "b c d", "y"]]
    is_sentence, contains = find_sentences(keys)
    assert [keys[i] for i in np.flatnonzero(is_sentence)] == [("a", "b", "c"), ("x", "y"), ("b", "c", "d")]
    # "a b c" contains a b, b c, c; "x y" contains y; "b c d" contains b c and c (already found in "a b c")
    assert [sorted(keys[j] for j in found) for found in contains] == [
        [("a", "b"), ("b", "c"), ("c",)], [("y",)], [("b", "c"), ("c",)]]


def test_tokens_not_characters_decide_containment():
    # "good" is a character substring of "goodness" but not one of its tokens: both are sentences
    is_sentence, _ = find_sentences([phrase_key("goodness gracious"), phrase_key("good")])
    assert is_sentence.tolist() == [True, True]


def test_held_out_sentences_leak_nothing_and_shared_phrases_stay():
    texts, labels = treebank()
    assignment, report = hold_out_sentences(texts, labels, {"val": 0.25}, seed=1)
    keys = [phrase_key(t) for t in texts]
    held = [keys[i] for i in np.flatnonzero(assignment == "val")]
    train = [keys[i] for i in np.flatnonzero(assignment == "train")]
    assert report["sentences"] == 40 and report["val_sentences"] == 10 == len(held)
    assert all(len(k) > 5 for k in held)  # whole sentences, never a constituent

    def spans(key):
        return {key[a:b] for a in range(len(key)) for b in range(a + 1, len(key) + 1)}

    train_sentences = [k for k in train if len(k) > 5]
    covered = set().union(*(spans(k) for k in train_sentences))
    for k in train:  # every training phrase is inside some training sentence
        assert k in covered
    dropped = {keys[i] for i in np.flatnonzero(assignment == DROPPED)}
    assert dropped and all(k not in covered for k in dropped)  # e.g. "the film 7": only in its held-out sentence
    assert ("the", "film") in set(train) and ("good",) in set(train)  # shared by training sentences: kept
    assert report["dropped_rows"] == len(dropped)


def test_seeded_stratified_and_all_rows_of_a_duplicate_together():
    texts, labels = treebank()
    texts, labels = texts + [texts[0]], np.append(labels, labels[0])  # a duplicated sentence row
    first, _ = hold_out_sentences(texts, labels, {"val": 0.2, "test": 0.2}, seed=7)
    again, _ = hold_out_sentences(texts, labels, {"val": 0.2, "test": 0.2}, seed=7)
    other, _ = hold_out_sentences(texts, labels, {"val": 0.2, "test": 0.2}, seed=8)
    assert (first == again).all() and (first != other).any()
    assert first[0] == first[-1]
    for split in ("val", "test"):
        rows = np.flatnonzero(first == split)
        rows = rows[rows != len(texts) - 1]
        assert len(rows) == 8 and labels[rows].mean() == 0.5  # 20 % of 40 sentences, per class


def test_bad_fractions_and_too_few_sentences():
    texts, labels = treebank(4)
    with pytest.raises(LstmLabError, match="sum to < 1"):
        hold_out_sentences(texts, labels, {"val": 0.6, "test": 0.5}, seed=0)
    with pytest.raises(LstmLabError, match="held-out val sentences are empty"):
        hold_out_sentences(texts, labels, {"val": 0.01}, seed=0)


def test_sentence_splits_pools_train_and_val_and_keeps_a_test_file():
    texts, labels = treebank()
    frame = pd.DataFrame({"text": texts, "label": labels})
    test = pd.DataFrame({"text": ["an unseen sentence ."], "label": [1]})
    frames, report = sentence_splits({"train": frame.iloc[:200], "val": frame.iloc[200:], "test": test},
                                     val_fraction=0.1, test_fraction=0.1, seed=0)
    assert set(frames) == {"train", "val", "test"} and frames["test"].equals(test)
    assert len(frames["val"]) == report["val_sentences"] == 4
    assert len(frames["train"]) + len(frames["val"]) + report["dropped_rows"] == len(frame)
    frames, report = sentence_splits({"all": frame}, val_fraction=0.1, test_fraction=0.2, seed=0)
    assert report["test_sentences"] == 8 and report["val_sentences"] == 4


def test_glue_sst2_train_has_its_sentences_found():
    if not (SHARED / "sst2" / "train.tsv").is_file():
        pytest.skip("shared SST-2 data not found")
    read = dict(sep="\t", quoting=3, keep_default_na=False)
    pool = pd.concat([pd.read_csv(SHARED / "sst2" / f, **read) for f in ("train.tsv", "dev.tsv")])
    assignment, report = hold_out_sentences(pool["sentence"].tolist(), pool["label"].to_numpy(), {"val": 0.1},
                                            seed=42)
    # 6,920 binary training sentences in the treebank; a few coincide with (or are spans of) others
    assert 6800 < report["sentences"] <= 6920 and report["val_sentences"] == 689
    val = pool["sentence"].to_numpy()[assignment == "val"]
    assert np.median([len(s.split()) for s in val]) > 15  # sentence length, like the 872 test sentences
