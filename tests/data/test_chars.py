"""Character tokenisation: vocabulary from the training split only, UNK, compact dtypes, JSON round trip."""

import json

import numpy as np
import pytest

from lstm_lab.data.chars import UNK_ID, UNK_TEXT, CharVocab, check_ids, split_point
from lstm_lab.errors import LstmLabError
from tests.conftest import SHARED


def test_split_point_is_the_standard_90_10():
    assert split_point(1_115_394, 0.9) == 1_003_854  # tinyshakespeare: 1,003,854 train / 111,540 val
    assert split_point(10, 0.5) == 5
    with pytest.raises(LstmLabError, match="train_fraction"):
        split_point(10, 1.0)


def test_vocabulary_comes_from_the_training_split_only():
    text = "hello world\nHELLO?"
    n = split_point(len(text), 0.6)
    vocab = CharVocab.build(text[:n])
    assert vocab.chars == tuple(sorted(set(text[:n])))
    assert "H" not in vocab and "?" not in vocab  # only in the validation part
    assert vocab.size == len(set(text[:n])) + 1 and vocab.unk_id == UNK_ID == 0
    ids = vocab.encode(text)
    assert ids[n:].tolist().count(UNK_ID) == sum(ch not in vocab for ch in text[n:])
    assert (ids[:n] != UNK_ID).all()
    assert vocab.unseen(text[n:]) == {c: text[n:].count(c) for c in set(text[n:]) if c not in vocab}


def test_encode_decode_round_trip_and_unk():
    vocab = CharVocab.build("abc\n é")
    assert vocab.decode(vocab.encode("ab\né c")) == "ab\né c"
    assert vocab.decode(vocab.encode("abXc")) == f"ab{UNK_TEXT}c"  # unseen → UNK → the replacement character
    assert vocab.encode("").dtype == np.uint8 and vocab.encode("").size == 0
    with pytest.raises(LstmLabError, match=r"never seen in the training text: 'X' \(U\+0058\), '\\t' \(U\+0009\)"):
        vocab.encode("aXX\tb", unknown="error")
    with pytest.raises(LstmLabError, match="outside the vocabulary"):
        vocab.decode([vocab.size])


def test_uint8_up_to_256_symbols_then_uint16():
    small = CharVocab(tuple(chr(0x100 + i) for i in range(255)))  # 255 + UNK = 256 ids
    assert small.dtype == np.uint8
    assert small.encode(chr(0x100 + 254) + "a").tolist() == [255, 0]
    big = CharVocab(tuple(chr(0x100 + i) for i in range(256)))  # 257 ids
    assert big.dtype == np.uint16
    text = "".join(big.chars)
    ids = big.encode(text)
    assert ids.dtype == np.uint16 and ids.max() == 256 and big.decode(ids) == text
    with pytest.raises(LstmLabError, match="more than a uint16"):
        CharVocab(tuple(chr(0x100 + i) for i in range(70_000))).dtype


def test_json_round_trip(tmp_path):
    vocab = CharVocab.build("To be, or not to be:\nthat is the question. «€»")
    path = tmp_path / "vocab.json"
    vocab.save(path)
    assert CharVocab.load(path) == vocab
    assert CharVocab.from_dict(json.loads(json.dumps(vocab.to_dict()))) == vocab
    assert json.loads(path.read_text(encoding="utf-8"))["unk_id"] == 0
    path.write_text('{"chars": ["a"]}')
    with pytest.raises(LstmLabError, match="not a character vocabulary"):
        CharVocab.load(path)
    with pytest.raises(LstmLabError, match="vocabulary file not found"):
        CharVocab.load(tmp_path / "absent.json")
    with pytest.raises(LstmLabError, match="repeat"):
        CharVocab(("a", "a"))


def test_empty_training_text_and_stale_ids():
    with pytest.raises(LstmLabError, match="empty training split"):
        CharVocab.build("")
    with pytest.raises(LstmLabError, match="does not fit a vocabulary of 3"):
        check_ids(np.array([0, 1, 3]), 3)


@pytest.mark.skipif(not (SHARED / "tinyshakespeare/input.txt").is_file(), reason="shared corpus absent")
def test_tinyshakespeare_vocabulary():
    text = (SHARED / "tinyshakespeare/input.txt").read_text(encoding="utf-8")
    n = split_point(len(text), 0.9)
    vocab = CharVocab.build(text[:n])
    ids = vocab.encode(text)
    assert len(vocab.chars) == 65 and ids.dtype == np.uint8 and ids.nbytes == len(text)
    assert not (ids == UNK_ID).any()  # every validation character also occurs in training
    assert vocab.decode(ids[:30]) == text[:30]
