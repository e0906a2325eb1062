"""Subwords: FNV-1a n-gram ids stable across processes, boundary markers, the tokenizer's type ids and table (an
unseen word keeps n-grams it shares with known ones), and nothing changed without subwords."""

import json
import os

import numpy as np
import pytest

from lstm_lab.data.subwords import SubwordConfig, char_ngrams, fnv1a, subword_ids, type_table
from lstm_lab.data.text import OOV, PAD, Tokenizer
from lstm_lab.errors import LstmLabError


def test_fnv1a_matches_the_reference_values_and_ngrams_carry_boundary_markers():
    # The published 32-bit FNV-1a test vectors: a different hash (or Python's hash()) fails here.
    assert fnv1a(b"") == 0x811C9DC5 and fnv1a(b"a") == 0xE40C292C and fnv1a(b"foobar") == 0xBF9CF968
    assert char_ngrams("film", 3, 5) == ["<fi", "fil", "ilm", "lm>", "<fil", "film", "ilm>", "<film", "film>"]
    assert char_ngrams("a", 3, 5) == ["<a>"]
    config = SubwordConfig(min_n=3, max_n=5, buckets=1000)
    assert subword_ids("film", config) == [fnv1a(g.encode()) % 1000 for g in char_ngrams("film")]


def test_subword_ids_are_the_same_in_every_process():
    """String hashing is randomised per process (PYTHONHASHSEED); the n-gram ids must not be."""
    import subprocess
    import sys

    words = ["unfunny", "funny", "naïve", "n't", "film"]
    code = ("import json, sys; from lstm_lab.data.subwords import SubwordConfig, subword_ids; "
            f"print(json.dumps([subword_ids(w, SubwordConfig(buckets=2**17)) for w in {words!r}]))")
    here = [subword_ids(w, SubwordConfig(buckets=2**17)) for w in words]
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        assert json.loads(done.stdout) == here


def test_an_oov_word_keeps_its_ngrams_and_shares_them_with_a_known_word():
    tok = Tokenizer.fit(["a funny film", "a dull film", "funny and dull"], subwords=SubwordConfig(buckets=2**17))
    ids, lengths, table = tok.encode_types(["an unfunny film", "funny film"])
    assert ids.dtype == np.int32 and table.dtype == np.int32 and lengths.tolist() == [3, 2]
    (an, unfunny, film), (funny, film2) = ids[0, -3:], ids[1, -2:]
    assert film == film2 and len({an, unfunny, film, funny}) == 4  # one type id per distinct token
    assert table[0].tolist() == [PAD] + [0] * (table.shape[1] - 1)  # type 0 is padding: no word, no n-grams
    # Word ids: the vocabulary's, OOV for the unseen words, exactly what encode_padded gives.
    np.testing.assert_array_equal(table[ids, 0], tok.encode_padded(["an unfunny film", "funny film"])[0])
    assert table[unfunny, 0] == OOV and table[funny, 0] == tok.index["funny"]
    grams = {k: set(table[k, 1:][table[k, 1:] > 0] - 1) for k in (unfunny, funny, an)}
    assert len(grams[unfunny]) == len(char_ngrams("unfunny")) and grams[unfunny] != grams[funny]
    assert {"funny", "unny>", "nny>"} <= set(char_ngrams("unfunny")) & set(char_ngrams("funny"))
    # fun unn nny ny> funn unny nny> funny unny>: nine shared n-grams, so nine shared buckets
    assert len(grams[unfunny] & grams[funny]) >= 9
    assert not grams[an] & grams[funny]
    # The same texts always get the same ids; the tokenizer's JSON carries the subword settings.
    again = Tokenizer.from_dict(json.loads(json.dumps(tok.to_dict())))
    assert again.subwords == tok.subwords
    for a, b in zip(again.encode_types(["an unfunny film", "funny film"]), (ids, lengths, table), strict=True):
        np.testing.assert_array_equal(a, b)


def test_without_subwords_the_encoding_and_the_json_are_unchanged():
    tok = Tokenizer.fit(["good film", "bad plot"])
    assert "subwords" not in tok.to_dict() and Tokenizer.from_dict(tok.to_dict()).subwords is None
    ids, table = tok.encode_model_input(["good plot", "terrible"])
    assert table is None
    np.testing.assert_array_equal(ids, tok.encode_padded(["good plot", "terrible"])[0])
    with pytest.raises(LstmLabError, match="max_n=2 is not valid"):
        SubwordConfig(min_n=3, max_n=2)
    with pytest.raises(LstmLabError, match="unknown key"):
        Tokenizer.from_dict({**tok.to_dict(), "subwords": {"min_n": 3, "bucket": 10}})


def test_type_table_shifts_ngram_ids_and_pads_with_zero():
    table = type_table([PAD, 5, OOV], [[], [2, 7], [0]])
    assert table.dtype == np.int32 and table.tolist() == [[0, 0, 0], [5, 3, 8], [1, 1, 0]]
    assert type_table([PAD], [[]]).shape == (1, 2)  # at least one n-gram column, all "none"
