"""Tokenisation: normalisation, a training-only vocabulary, OOV, padding and truncation, JSON round trip, speed."""

import json
import time

import numpy as np
import pytest

from lstm_lab.data.text import (
    OOV,
    PAD,
    TextConfig,
    Tokenizer,
    left_align,
    normalize,
    pad_sequences,
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

