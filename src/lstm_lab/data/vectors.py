"""Pretrained word vectors from a text file the user already has (GloVe, word2vec or fastText text format).

Never downloaded: the file is named in ``sentiment.embedding.vectors.path`` and read where it is, checked against
``sha256`` first when one is configured. The file is streamed line by line and only the rows of words in the
vocabulary are kept, so a 5 GB file costs its reading time but not its memory.

    vectors = read_vectors("glove.6B.100d.txt", tokenizer.vocab, dim=100, sha256=None)
    vectors.matrix       # (len(vocab), 100) float32; rows of words the file lacks are zero
    vectors.found        # (len(vocab),) bool; PAD and OOV are never looked up
    vectors.coverage     # share of the vocabulary's real words (PAD and OOV excluded) found in the file

Format: one ``word v1 v2 ... vd`` line per word, separated by spaces (tabs accepted). word2vec and fastText
text files begin with a header line ``count dim``; GloVe files have none. The first line decides: two integer
fields make it a header. Every other line must have exactly ``dim + 1`` fields, else the error names the file and
line. Files ending in ``.gz`` are decompressed while read.

Matching: a vocabulary word takes the file's row for that exact word. When ``lowercase`` is true (the tokenizer
lower-cases its text), a word the file lacks in lower case takes the first row whose word lower-cases to it
("Paris" for "paris"); an exact row read later replaces it. The first of duplicate rows wins.
"""

from __future__ import annotations

import gzip
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lstm_lab.errors import LstmLabError

log = logging.getLogger(__name__)

SPECIAL = 2  # PAD (0) and OOV (1) lead every vocabulary and are not words


@dataclass
class Vectors:
    matrix: np.ndarray  # (V, dim) float32
    found: np.ndarray  # (V,) bool
    path: str
    rows_read: int  # vector lines in the file

    @property
    def coverage(self) -> float:
        words = len(self.found) - SPECIAL
        return float(self.found[SPECIAL:].sum() / words) if words > 0 else 0.0

    def summary(self) -> dict[str, float | int | str]:
        """What the run logs (log line and MLflow params)."""
        return {"found": int(self.found.sum()), "vocab_words": max(len(self.found) - SPECIAL, 0),
                "coverage": round(self.coverage, 4), "file_rows": self.rows_read}


def check_file(path: str | Path, sha256: str | None, where: str) -> Path:
    """The file, which must exist and, when ``sha256`` is given, match it."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise LstmLabError(f"{file}: word-vector file not found ({where}.path); it is never downloaded: put the "
                           f"file there or correct the path")
    if sha256:
        from lstm_lab.data.download import digest_of, parse_checksum

        algorithm, expected = parse_checksum(sha256)
        actual = digest_of(file, algorithm)
        if actual != expected:
            raise LstmLabError(f"{file}: {algorithm} is {actual}, expected {expected} ({where}.sha256); the file "
                               "differs from the one configured")
    return file


def _lines(file: Path):
    """(line number, text) of the file; bytes are decoded line by line so a bad byte is named by its line."""
    opener = gzip.open if file.suffix == ".gz" else open
    number = 0
    try:
        with opener(file, "rb") as handle:
            for number, raw in enumerate(handle, start=1):  # noqa: B007 - the number is read in except
                yield number, raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LstmLabError(f"{file}: line {number}: not UTF-8 text ({exc.reason} at byte {exc.start}); expected a "
                           "word-vector text file (word v1 v2 ...)") from None
    except (OSError, EOFError) as exc:  # a truncated or corrupt .gz
        raise LstmLabError(f"{file}: line {number + 1}: cannot be read ({exc})") from None


def _header(fields: list[str]) -> tuple[int, int] | None:
    if len(fields) == 2 and all(f.isdigit() for f in fields):
        return int(fields[0]), int(fields[1])
    return None


def read_vectors(path: str | Path, vocab: Sequence[str], dim: int, *, sha256: str | None = None,
                 lowercase: bool = True, where: str = "sentiment.embedding.vectors") -> Vectors:
    """The rows of ``path`` for the words of ``vocab`` (index = token id); see the module docstring."""
    file = check_file(path, sha256, where)
    index = {word: i for i, word in enumerate(vocab) if i >= SPECIAL}
    matrix = np.zeros((len(vocab), dim), dtype=np.float32)
    exact = np.zeros(len(vocab), dtype=bool)  # found under the very same word
    folded = np.zeros(len(vocab), dtype=bool)  # found under a word that lower-cases to it
    rows, file_dim = 0, None
    for number, line in _lines(file):
        fields = line.split()
        if not fields:
            continue  # a blank line (often the last) carries no word
        if file_dim is None:
            file_dim = _first_line_dim(fields, file, dim)
            if _header(fields) is not None:
                continue
        if len(fields) != file_dim + 1:
            raise LstmLabError(f"{file}: line {number}: {len(fields)} fields, expected {file_dim + 1} (a word and "
                               f"{file_dim} numbers)")
        rows += 1
        word = fields[0]
        i = index.get(word)
        if i is not None and not exact[i]:
            exact[i] = True
        elif lowercase and i is None and (i := index.get(word.lower())) is not None and not (exact[i] or folded[i]):
            folded[i] = True
        else:
            continue
        try:
            matrix[i] = np.asarray(fields[1:], dtype=np.float32)
        except ValueError:
            bad = next(f for f in fields[1:] if not _is_float(f))
            raise LstmLabError(f"{file}: line {number}: {bad!r} is not a number (word {word!r})") from None
    if file_dim is None:
        raise LstmLabError(f"{file}: no word vectors in the file; expected lines 'word v1 v2 ... v{dim}'")
    found = exact | folded
    return Vectors(matrix=matrix, found=found, path=str(file), rows_read=rows)


def _first_line_dim(fields: list[str], file: Path, dim: int) -> int:
    """The file's vector size from its first line (a ``count dim`` header or the first vector), checked
    against the embedding's."""
    header = _header(fields)
    file_dim = header[1] if header is not None else len(fields) - 1
    if file_dim != dim:
        raise LstmLabError(f"{file}: vectors of dimension {file_dim}, but sentiment.embedding.dim is {dim}; set "
                           f"embedding.dim: {file_dim} or use a {dim}-dimensional file")
    return file_dim


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def initial_embedding(vectors: Vectors, rng: np.random.Generator) -> np.ndarray:
    """The embedding to start from: the file's rows where found, random rows elsewhere, PAD zero.

    Random rows are drawn N(0, s²) with s the standard deviation of the found rows, so unknown words start on
    the same scale as known ones (torch's N(0, 1) would make them several times longer than GloVe's)."""
    matrix = vectors.matrix.copy()
    known = matrix[vectors.found]
    scale = float(known.std()) if known.size else 1.0
    missing = ~vectors.found
    missing[0] = False  # PAD stays zero (padding_idx)
    matrix[missing] = rng.normal(0.0, scale, size=(int(missing.sum()), matrix.shape[1])).astype(np.float32)
    return matrix
