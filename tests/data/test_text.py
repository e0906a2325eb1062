"""Tokenisation: normalisation, a training-only vocabulary, OOV, padding and truncation, JSON round trip, speed."""

import json
import os
import time

import numpy as np
import pytest

from lstm_lab.data.text import (
    OOV,
    PAD,
    SubwordConfig,
    TextConfig,
    Tokenizer,
    char_ngrams,
    fnv1a,
    left_align,
    normalize,
    pad_sequences,
    subword_ids,
    tokenize,
)
from lstm_lab.errors import LstmLabError
from tests.conftest import SHARED


def test_normalisation_and_punctuation_modes():
    assert normalize("ＧＲＥＡＴ ﬁlm") == "great film"  # NFKC: full-width letters, ligature
    assert tokenize("It's not great!") == ["it", "'s", "not", "great", "!"]
    assert tokenize("Doesn't work, can't stop.") == ["does", "n't", "work", ",", "ca", "n't", "stop", "."]
    assert tokenize("I’m here") == ["i", "'m", "here"]  # typographic apostrophe folded
    assert tokenize("a well-made film") == ["a", "well-made", "film"]
    # SST-2's text is already tokenised this way: it stays as it is.
    assert tokenize("it 's a film that does n't work .") == "it 's a film that does n't work .".split()
    assert tokenize("Great, fun!", TextConfig(punctuation="strip")) == ["great", "fun"]
    assert tokenize("Great, fun!", TextConfig(punctuation="keep")) == ["great,", "fun!"]
    assert tokenize("Great", TextConfig(lowercase=False)) == ["Great"]
    assert tokenize("don't", TextConfig(contractions=False)) == ["don't"]


def test_vocabulary_comes_from_the_training_texts_only():
    train = ["good film", "good acting", "bad plot"]
    test = ["terrible film"]
    tok = Tokenizer.fit(train)
    assert tok.vocab[:2] == ["<pad>", "<oov>"]
    assert tok.vocab[2] == "good"  # most frequent first, then alphabetical
    assert tok.vocab[3:] == ["acting", "bad", "film", "plot"]
    assert "terrible" not in tok.index
    assert tok.encode("terrible film") == [OOV, tok.index["film"]]
    assert tok.stats(test)["oov_rate"] == 0.5
    assert tok.stats(train)["oov_rate"] == 0.0


def test_max_size_and_min_freq():
    train = ["a a a b b c", "a b d"]
    tok = Tokenizer.fit(train, TextConfig(max_size=4))  # PAD, OOV + the two most frequent
    assert tok.vocab == ["<pad>", "<oov>", "a", "b"]
    assert tok.encode("c d e") == [OOV, OOV, OOV]
    tok = Tokenizer.fit(train, TextConfig(min_freq=2))
    assert tok.vocab == ["<pad>", "<oov>", "a", "b"]


@pytest.mark.parametrize("padding,truncating,expected", [
    ("pre", "pre", [[0, 0, 0, 5, 6], [8, 9, 10, 11, 12]]),
    ("post", "pre", [[5, 6, 0, 0, 0], [8, 9, 10, 11, 12]]),
    ("pre", "post", [[0, 0, 0, 5, 6], [7, 8, 9, 10, 11]]),
    ("post", "post", [[5, 6, 0, 0, 0], [7, 8, 9, 10, 11]]),
])
def test_padding_and_truncation(padding, truncating, expected):
    flat = np.array([5, 6, 7, 8, 9, 10, 11, 12], dtype=np.int32)  # [5, 6] and [7 .. 12]
    out = pad_sequences(flat, np.array([2, 6]), max_length=5, padding=padding, truncating=truncating)
    assert out.tolist() == expected


def test_encode_padded_and_left_align():
    tok = Tokenizer.fit(["one two three four five six"], TextConfig(max_length=4))
    ids, lengths = tok.encode_padded(["one two", "one two three four five six", "seven"])
    assert ids.shape == (3, 4) and ids.dtype == np.int32
    assert lengths.tolist() == [2, 4, 1]
    assert ids[0].tolist() == [PAD, PAD, tok.index["one"], tok.index["two"]]  # Keras defaults: pre / pre
    assert tok.decode(ids[1]) == ["three", "four", "five", "six"]  # the end of a long text is kept
    assert ids[2].tolist() == [PAD, PAD, PAD, OOV]
    aligned, n = left_align(ids)
    assert aligned[0].tolist() == [tok.index["one"], tok.index["two"], PAD, PAD] and n.tolist() == [2, 4, 1]


def test_json_round_trip_and_bad_files(tmp_path):
    tok = Tokenizer.fit(["naïve café — déjà vu", "plain words"], TextConfig(max_length=7, padding="post"))
    path = tmp_path / "tokenizer.json"
    tok.save(path)
    data = json.loads(path.read_text(encoding="utf-8"))  # plain JSON, never pickle
    assert data["format"] == "lstm_lab.tokenizer" and data["config"]["padding"] == "post"
    again = Tokenizer.load(path)
    assert again.vocab == tok.vocab and again.config == tok.config
    texts = ["déjà vu words", "unknown café"]
    assert np.array_equal(again.encode_padded(texts)[0], tok.encode_padded(texts)[0])
    path.write_text('{"format": "something else"}')
    with pytest.raises(LstmLabError, match="not an lstm_lab tokenizer"):
        Tokenizer.load(path)
    path.write_text("{broken")
    with pytest.raises(LstmLabError, match="not valid JSON"):
        Tokenizer.load(path)
    bad = tok.to_dict()
    bad["config"]["padding"] = "middle"
    with pytest.raises(LstmLabError, match="padding"):
        Tokenizer.from_dict(bad)


def _sst2_texts():
    path = SHARED / "sst2" / "train.tsv"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    texts = []
    for name in ("train.tsv", "dev.tsv"):
        lines = (SHARED / "sst2" / name).read_text(encoding="utf-8").splitlines()[1:]
        texts += [line.split("\t")[0] for line in lines if line.strip()]
    return texts


def test_sst2_tokenises_in_seconds():
    texts = _sst2_texts()
    assert len(texts) == 67_349  # GLUE SST-2 train
    start, cpu = time.perf_counter(), time.process_time()
    tok = Tokenizer.fit(texts)
    ids, lengths = tok.encode_padded(texts)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    print(f"SST-2: fit + encode {len(texts)} texts in {seconds:.2f} s wall, {cpu:.2f} s CPU; vocabulary {len(tok)}")
    assert len(tok) == 10_000 and ids.shape == (67_349, 200)
    assert int(lengths.max()) <= 200 and (lengths > 0).all()
    assert cpu < 10  # about 2 s of CPU (CPU time, not wall: the test machine may be shared)


def test_one_file_per_class_corpus(tmp_path):
    """Pang & Lee's sentence polarity layout: rt-polarity.pos / .neg, one sentence per line, no label column."""
    from lstm_lab.datasets import LabelledTextDataset

    (tmp_path / "rt.pos").write_text("a gorgeous film\n\nwitty and warm\n", encoding="latin-1")
    (tmp_path / "rt.neg").write_text("dull\n", encoding="latin-1")
    data = LabelledTextDataset(classes={"pos": str(tmp_path / "rt.pos"), "neg": str(tmp_path / "rt.neg")},
                               encoding="latin-1").load()
    frame = data["all"]
    assert list(data) == ["all"]
    assert frame[["sentence", "label"]].values.tolist() == [["a gorgeous film", "pos"], ["witty and warm", "pos"],
                                                             ["dull", "neg"]]
    assert frame["__line__"].tolist() == [1, 3, 1]  # the blank line is skipped, line numbers stay true


# ------------------------------------------------------------------------------------------------------ subwords
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
    code = ("import json, sys; from lstm_lab.data.text import SubwordConfig, subword_ids; "
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
