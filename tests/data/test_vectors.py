"""Pretrained word vectors read from a small file written here: GloVe (no header) and word2vec/fastText (header)
text formats, only the vocabulary's rows kept, checksum, case folding, and one-line errors naming file and line."""

from __future__ import annotations

import gzip
import hashlib

import numpy as np
import pytest

from lstm_lab.data.vectors import initial_embedding, read_vectors
from lstm_lab.errors import LstmLabError

VOCAB = ["<pad>", "<oov>", "good", "bad", "film", "paris", "zyzzyva"]
ROWS = {"good": [0.5, 0.25, -1.0], "bad": [-0.5, 0.0, 1.0], "film": [1.0, 2.0, 3.0], "the": [9.0, 9.0, 9.0]}


def write(path, rows=ROWS, header: bool = False, extra: str = "") -> str:
    lines = [f"{len(rows)} 3"] if header else []
    lines += [f"{word} {' '.join(str(v) for v in values)}" for word, values in rows.items()]
    path.write_text("\n".join(lines) + "\n" + extra, encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("header", [False, True], ids=["glove", "word2vec-fasttext"])
def test_reads_the_vocabularys_rows_only(tmp_path, header):
    path = write(tmp_path / "vectors.txt", header=header)
    vectors = read_vectors(path, VOCAB, dim=3)
    assert vectors.matrix.shape == (7, 3) and vectors.matrix.dtype == np.float32
    np.testing.assert_array_equal(vectors.matrix[2], ROWS["good"])
    np.testing.assert_array_equal(vectors.matrix[4], ROWS["film"])
    assert vectors.found.tolist() == [False, False, True, True, True, False, False]
    assert vectors.rows_read == 4 and vectors.coverage == pytest.approx(3 / 5)  # PAD and OOV are not words
    assert vectors.summary() == {"found": 3, "vocab_words": 5, "coverage": 0.6, "file_rows": 4}


def test_case_folding_duplicates_gzip_and_blank_lines(tmp_path):
    text = "Paris 1 1 1\nparis 2 2 2\ngood 3 3 3\ngood 4 4 4\nFILM 5 5 5\n\n"
    path = tmp_path / "v.txt.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write(text)
    vectors = read_vectors(path, VOCAB, dim=3)
    assert vectors.matrix[5].tolist() == [2, 2, 2]  # the exact lower-case row beats "Paris" read before it
    assert vectors.matrix[2].tolist() == [3, 3, 3]  # the first of two duplicates wins
    assert vectors.matrix[4].tolist() == [5, 5, 5]  # "FILM" lower-cases to "film"
    assert not read_vectors(path, VOCAB, dim=3, lowercase=False).found[4]


def test_checksum_is_checked_when_configured(tmp_path):
    path = write(tmp_path / "vectors.txt")
    digest = hashlib.sha256((tmp_path / "vectors.txt").read_bytes()).hexdigest()
    assert read_vectors(path, VOCAB, dim=3, sha256=digest).found.sum() == 3
    assert read_vectors(path, VOCAB, dim=3, sha256=f"sha256:{digest}").found.sum() == 3
    with pytest.raises(LstmLabError, match=rf"vectors\.txt: sha256 is {digest}, expected 0{{64}}"):
        read_vectors(path, VOCAB, dim=3, sha256="0" * 64)


@pytest.mark.parametrize("content, dim, message", [
    ("good 1 2 3\nbad 1 2\n", 3, r"v\.txt: line 2: 3 fields, expected 4 \(a word and 3 numbers\)"),
    ("2 3\ngood 1 2 3\nfilm 1 2 3 4\n", 3, r"v\.txt: line 3: 5 fields, expected 4"),
    ("good 1 2 3\n", 50, r"v\.txt: vectors of dimension 3, but sentiment\.embedding\.dim is 50"),
    ("400000 300\ngood 1 2 3\n", 100, r"v\.txt: vectors of dimension 300, but sentiment\.embedding\.dim is 100"),
    ("good 1 2 x3\n", 3, r"v\.txt: line 1: 'x3' is not a number \(word 'good'\)"),
    ("\n\n", 3, r"v\.txt: no word vectors in the file"),
])
def test_bad_files_are_one_line_naming_the_file_and_line(tmp_path, content, dim, message):
    path = tmp_path / "v.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(LstmLabError, match=message) as caught:
        read_vectors(path, VOCAB, dim=dim)
    assert "\n" not in str(caught.value)


def test_not_utf8_and_missing_file(tmp_path):
    path = tmp_path / "v.txt"
    path.write_bytes(b"good 1 2 3\ncaf\xe9 1 2 3\n")
    with pytest.raises(LstmLabError, match=r"v\.txt: line 2: not UTF-8 text"):
        read_vectors(path, VOCAB, dim=3)
    with pytest.raises(LstmLabError, match=r"nope\.txt: word-vector file not found .*never downloaded"):
        read_vectors(tmp_path / "nope.txt", VOCAB, dim=3)


def test_initial_embedding_fills_missing_rows_on_the_files_scale(tmp_path):
    vectors = read_vectors(write(tmp_path / "v.txt"), VOCAB, dim=3)
    matrix = initial_embedding(vectors, np.random.default_rng(0))
    np.testing.assert_array_equal(matrix[vectors.found], vectors.matrix[vectors.found])
    assert (matrix[0] == 0).all()  # PAD stays zero
    assert (matrix[[1, 5, 6]] != 0).all()  # OOV and the words the file lacks start random
    again = initial_embedding(vectors, np.random.default_rng(0))
    np.testing.assert_array_equal(matrix, again)
