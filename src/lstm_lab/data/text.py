"""Text to token ids: normalisation, a vocabulary built on the training split only, padding and truncation.

    config = TextConfig(max_size=10_000, max_length=200)         # the seeds' Keras Tokenizer + pad_sequences
    tokenizer = Tokenizer.fit(train_texts, config)               # the training split only: no test leakage
    ids, lengths = tokenizer.encode_padded(texts)                # (N, max_length) int32, (N,) int64
    Tokenizer.from_dict(tokenizer.to_dict())                     # JSON-safe; never pickle

Normalisation (each step configurable): Unicode NFKC (full-width letters, ligatures and compatibility forms
become their plain equivalents; typographic apostrophes and quotes become ASCII ones), lower-case, and punctuation split into tokens of its own ("great!" → "great",
"!") or stripped, or left alone (whitespace split only). With punctuation split, English contractions are split
the Penn Treebank way ("doesn't" → "does", "n't"; "it's" → "it", "'s"), which is how SST-2's text is already
tokenised, so raw sentences typed at the served model meet the same tokens the vocabulary was built from.

Ids: 0 is padding (PAD), 1 stands for every token outside the vocabulary (OOV); the vocabulary holds at most
``max_size`` ids including these two (so ``Embedding(max_size, dim)`` always fits), the most frequent training
tokens first (ties alphabetical, so the same corpus always gives the same ids), each seen at least ``min_freq``
times. Sequences longer than ``max_length`` lose tokens at the start (``truncating="pre"``, Keras' default: the end
of a review usually carries the verdict) or at the end (``"post"``); shorter ones get PAD before (``"pre"``) or
after (``"post"``). The classifier ignores padding either way (it reads the true lengths).

Speed: one compiled regular expression per sentence and dictionary look-ups; padding is vectorised with numpy.
SST-2's 67k training phrases tokenise, count and encode in about a second (see tests/test_text.py).

Subwords (optional, ``lstm_lab.data.subwords``): with a ``SubwordConfig`` the tokenizer also hashes each token's
character n-grams, and :meth:`Tokenizer.encode_model_input` (what training, evaluation and serving all call) gives
type ids and their table instead of word ids, so a word outside the vocabulary keeps its n-grams.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from itertools import chain
from typing import Any

import numpy as np

from lstm_lab.data.settings import CheckedSettings
from lstm_lab.data.subwords import Ngrams, SubwordConfig, number_types, type_table
from lstm_lab.errors import LstmLabError

PAD, OOV = 0, 1
PAD_TOKEN, OOV_TOKEN = "<pad>", "<oov>"
FORMAT = "lstm_lab.tokenizer"
VERSION = 1

# Progress bars only where a person watches and the wait is noticeable.
PROGRESS_MIN_ITEMS = 20_000

# PTB-style contractions first, then words (letters/digits/underscore, inner hyphens and apostrophes kept:
# "well-made", "o'clock"), then any single other non-space character (punctuation, symbols, emoji).
_CONTRACTIONS = r"\w+(?=n't\b)|n't\b|'(?:s|re|ve|ll|d|m)\b"
_WORD = r"\w+(?:[-']\w+)*"
_WORD_BEFORE_CONTRACTION = r"\w+(?:-\w+|'(?!(?:s|re|ve|ll|d|m|t)\b)\w+)*"  # "it's" stops before "'s"
_SPLIT_RE = re.compile(rf"{_CONTRACTIONS}|{_WORD_BEFORE_CONTRACTION}|[^\w\s]")
_SPLIT_NO_CONTRACTIONS_RE = re.compile(rf"{_WORD}|[^\w\s]")
_WORDS_ONLY_RE = re.compile(_WORD)
# Typographic apostrophes and quotes, folded to ASCII with the Unicode normalisation (NFKC leaves them alone).
_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u201c": '"', "\u201d": '"'})


@dataclass(frozen=True)
class TextConfig(CheckedSettings):
    label = "text config"
    unicode_form: str | None = "NFKC"  # NFC | NFKC | NFD | NFKD | None (no normalisation)
    lowercase: bool = True
    punctuation: str = "split"  # split: own tokens | strip: removed | keep: whitespace split only
    contractions: bool = True  # PTB split of n't 's 're 've 'll 'd 'm (with punctuation: split)
    max_size: int = 10_000  # vocabulary size including PAD and OOV
    min_freq: int = 1
    max_length: int = 200
    padding: str = "pre"  # pre | post
    truncating: str = "pre"  # pre | post

    def __post_init__(self):
        checks = {
            "unicode_form": self.unicode_form in (None, "NFC", "NFKC", "NFD", "NFKD"),
            "punctuation": self.punctuation in ("split", "strip", "keep"),
            "max_size": isinstance(self.max_size, int) and self.max_size >= 3,
            "min_freq": isinstance(self.min_freq, int) and self.min_freq >= 1,
            "max_length": isinstance(self.max_length, int) and self.max_length >= 1,
            "padding": self.padding in ("pre", "post"),
            "truncating": self.truncating in ("pre", "post"),
        }
        self._refuse(checks)


def normalize(text: str, config: TextConfig = TextConfig()) -> str:
    if config.unicode_form:
        text = unicodedata.normalize(config.unicode_form, text).translate(_QUOTES)
    return text.lower() if config.lowercase else text


def _pattern(config: TextConfig) -> re.Pattern | None:
    if config.punctuation == "keep":
        return None
    if config.punctuation == "strip":
        return _WORDS_ONLY_RE
    return _SPLIT_RE if config.contractions else _SPLIT_NO_CONTRACTIONS_RE


def tokenize(text: str, config: TextConfig = TextConfig()) -> list[str]:
    """Normalised tokens of one text."""
    pattern = _pattern(config)
    text = normalize(text, config)
    return text.split() if pattern is None else pattern.findall(text)


def _progress(items: Sequence, desc: str, show: bool | None):
    if show is None:
        show = len(items) >= PROGRESS_MIN_ITEMS and sys.stderr.isatty()
    if not show:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, unit=" texts", leave=False, mininterval=0.5)


def tokenize_all(texts: Sequence[str], config: TextConfig = TextConfig(), progress: bool | None = None
                 ) -> list[list[str]]:
    """Tokens of every text (a progress bar on a terminal for large corpora)."""
    pattern, form, lower = _pattern(config), config.unicode_form, config.lowercase
    norm = unicodedata.normalize
    out = []
    for text in _progress(texts, "tokenising", progress):
        if form:
            text = norm(form, text).translate(_QUOTES)
        if lower:
            text = text.lower()
        out.append(text.split() if pattern is None else pattern.findall(text))
    return out


def pad_sequences(flat: np.ndarray, lengths: np.ndarray, max_length: int, padding: str = "pre",
                  truncating: str = "pre", pad: int = PAD) -> np.ndarray:
    """Ragged sequences (concatenated in ``flat``, with ``lengths``) → (N, max_length), vectorised."""
    lengths = np.asarray(lengths, dtype=np.int64)
    n = len(lengths)
    out = np.full((n, max_length), pad, dtype=np.int32)
    if n == 0 or flat.size == 0:
        return out
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])  # offset of each sequence in flat
    kept = np.minimum(lengths, max_length)
    # Which slice of each sequence survives truncation: the last max_length tokens ("pre") or the first.
    first = starts + (lengths - kept if truncating == "pre" else 0)
    rows = np.repeat(np.arange(n), kept)
    within = np.arange(kept.sum()) - np.repeat(np.cumsum(kept) - kept, kept)  # 0..kept-1 per row
    source = np.repeat(first, kept) + within
    columns = within + (np.repeat(max_length - kept, kept) if padding == "pre" else 0)
    out[rows, columns] = flat[source]
    return out


def left_align(ids: np.ndarray, pad: int = PAD) -> tuple[np.ndarray, np.ndarray]:
    """Padded ids (pre or post) → the same tokens moved to the start of each row, and the true lengths."""
    ids = np.asarray(ids)
    valid = ids != pad
    lengths = valid.sum(axis=1).astype(np.int64)
    if ids.ndim != 2 or ids.shape[1] == 0:
        return ids, lengths
    T = ids.shape[1]
    steps = np.arange(T)
    # Pre-padded rows (tokens at the end, the tokenizer's default) rotate into place; post-padded rows already
    # are; anything else (padding inside a row) takes a stable sort.
    shift = np.where((valid == (steps[None, :] >= (T - lengths)[:, None])).all(axis=1), T - lengths, 0)
    out = np.take_along_axis(ids, (steps[None, :] + shift[:, None]) % T, axis=1)
    irregular = ~((out != pad) == (steps[None, :] < lengths[:, None])).all(axis=1)
    if irregular.any():
        rows = np.flatnonzero(irregular)
        order = np.argsort(~valid[rows], axis=1, kind="stable")
        out[rows] = np.take_along_axis(ids[rows], order, axis=1)
    return out, lengths


class Tokenizer:
    """Vocabulary + text config. Build with :meth:`fit` on the training split; store with :meth:`to_dict`."""

    def __init__(self, vocab: Sequence[str], config: TextConfig = TextConfig(), *, train_texts: int = 0,
                 train_tokens: int = 0, subwords: SubwordConfig | None = None):
        vocab = list(vocab)
        if vocab[:2] != [PAD_TOKEN, OOV_TOKEN]:
            raise LstmLabError(f"tokenizer: the vocabulary must start with {PAD_TOKEN!r}, {OOV_TOKEN!r}")
        if len(set(vocab)) != len(vocab):
            raise LstmLabError("tokenizer: the vocabulary has duplicate tokens")
        if len(vocab) > config.max_size:
            raise LstmLabError(f"tokenizer: {len(vocab)} tokens exceed max_size {config.max_size}")
        self.vocab = vocab
        self.config = config
        self.index = {token: i for i, token in enumerate(vocab)}
        self.train_texts, self.train_tokens = train_texts, train_tokens
        self.subwords = subwords
        self._ngrams = Ngrams(subwords) if subwords is not None else None

    def __len__(self) -> int:
        return len(self.vocab)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    @classmethod
    def fit(cls, texts: Sequence[str] | Iterable[list[str]], config: TextConfig = TextConfig(), *,
            pretokenized: bool = False, progress: bool | None = None,
            subwords: SubwordConfig | None = None) -> Tokenizer:
        """Vocabulary of ``texts`` (the training split): most frequent first, ties alphabetical."""
        token_lists = texts if pretokenized else tokenize_all(list(texts), config, progress)
        counts = Counter(chain.from_iterable(token_lists))
        ranked = sorted(((c, t) for t, c in counts.items() if c >= config.min_freq and t not in
                         (PAD_TOKEN, OOV_TOKEN)), key=lambda ct: (-ct[0], ct[1]))
        vocab = [PAD_TOKEN, OOV_TOKEN, *(t for _, t in ranked[: config.max_size - 2])]
        return cls(vocab, config, train_texts=len(token_lists), train_tokens=sum(counts.values()),
                   subwords=subwords)

    # ------------------------------------------------------------------------------------------ encoding
    def tokens(self, text: str) -> list[str]:
        return tokenize(text, self.config)

    def encode(self, text: str) -> list[int]:
        """Ids of one text, neither padded nor truncated."""
        get = self.index.get
        return [get(t, OOV) for t in self.tokens(text)]

    def encode_ragged(self, texts: Sequence[str], *, pretokenized: bool = False, progress: bool | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
        """All ids concatenated (int32) and each text's length (int64), before padding and truncation."""
        token_lists = texts if pretokenized else tokenize_all(texts, self.config, progress)
        get = self.index.get
        lengths = np.fromiter((len(t) for t in token_lists), dtype=np.int64, count=len(token_lists))
        flat = np.fromiter((get(t, OOV) for t in chain.from_iterable(token_lists)), dtype=np.int32,
                           count=int(lengths.sum()))
        return flat, lengths

    def encode_padded(self, texts: Sequence[str], *, pretokenized: bool = False, progress: bool | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
        """(N, max_length) int32 ids, padded and truncated as configured, and the lengths after truncation."""
        flat, lengths = self.encode_ragged(texts, pretokenized=pretokenized, progress=progress)
        c = self.config
        ids = pad_sequences(flat, lengths, c.max_length, c.padding, c.truncating)
        return ids, np.minimum(lengths, c.max_length)

    def encode_types(self, texts: Sequence[str], *, pretokenized: bool = False, progress: bool | None = None
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Type ids (N, max_length) int32, padded and truncated like :meth:`encode_padded`, their lengths (N,), and
        the types' table (K, 1 + G) int32 (``subwords.type_table``: word id, or OOV, then n-gram ids + 1). Type 0
        is PAD, so padding is 0 in both id spaces; the table covers these texts only (each encoded set, a request
        to the served model too, carries its own)."""
        token_lists = texts if pretokenized else tokenize_all(texts, self.config, progress)
        flat, lengths, types = number_types(token_lists, PAD_TOKEN)
        get, ngrams = self.index.get, self._ngrams or (lambda token: [])
        table = type_table([PAD] + [get(t, OOV) for t in types[1:]],
                           [[]] + [[] if t == OOV_TOKEN else ngrams(t) for t in types[1:]])
        ids = pad_sequences(flat, lengths, self.config.max_length, self.config.padding, self.config.truncating)
        return ids, np.minimum(lengths, self.config.max_length), table

    def encode_model_input(self, texts: Sequence[str], *, pretokenized: bool = False, progress: bool | None = None
                           ) -> tuple[np.ndarray, np.ndarray | None]:
        """What the classifier reads: (N, max_length) word ids and None, or, with subwords, type ids and their
        table (:meth:`encode_types`). The one encoding training, evaluation and serving share."""
        if self.subwords is None:
            return self.encode_padded(texts, pretokenized=pretokenized, progress=progress)[0], None
        ids, _, table = self.encode_types(texts, pretokenized=pretokenized, progress=progress)
        return ids, table

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.vocab[i] for i in ids if i != PAD]

    def stats(self, texts: Sequence[str], *, pretokenized: bool = False) -> dict[str, float]:
        """OOV rate (share of tokens outside the vocabulary), length percentiles, share truncated."""
        flat, lengths = self.encode_ragged(texts, pretokenized=pretokenized)
        out: dict[str, float] = {"texts": len(lengths), "tokens": int(lengths.sum())}
        out["oov_rate"] = float((flat == OOV).mean()) if flat.size else 0.0
        if len(lengths):
            for q in (50, 90, 95, 99):
                out[f"length_p{q}"] = float(np.percentile(lengths, q))
            out["length_max"] = int(lengths.max())
            out["length_mean"] = float(lengths.mean())
            out["truncated_fraction"] = float((lengths > self.config.max_length).mean())
            out["empty_fraction"] = float((lengths == 0).mean())
        return out

    # ------------------------------------------------------------------------------------------ storage
    def to_dict(self) -> dict[str, Any]:
        out = {
            "format": FORMAT,
            "version": VERSION,
            "config": asdict(self.config),
            "train_texts": self.train_texts,
            "train_tokens": self.train_tokens,
            "vocab": list(self.vocab),
        }
        if self.subwords is not None:  # absent without subwords: those tokenizer files stay as they were
            out["subwords"] = asdict(self.subwords)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "tokenizer") -> Tokenizer:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise LstmLabError(f"{source}: not an lstm_lab tokenizer (expected \"format\": \"{FORMAT}\")")
        if data.get("version") != VERSION:
            raise LstmLabError(f"{source}: tokenizer version {data.get('version')!r}; this code reads {VERSION}")
        vocab = data.get("vocab")
        if not isinstance(vocab, list) or not all(isinstance(t, str) for t in vocab):
            raise LstmLabError(f"{source}: 'vocab' must be a list of strings")
        subwords = data.get("subwords")
        return cls(vocab, TextConfig.from_dict(data.get("config") or {}),
                   train_texts=int(data.get("train_texts", 0)), train_tokens=int(data.get("train_tokens", 0)),
                   subwords=SubwordConfig.from_dict(subwords) if subwords is not None else None)

    def save(self, path) -> None:
        from lstm_lab.io import write_json

        write_json(path, self.to_dict())

    @classmethod
    def load(cls, path) -> Tokenizer:
        from lstm_lab.io import read_json

        return cls.from_dict(read_json(path, "tokenizer"), str(path))
