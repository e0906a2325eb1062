"""fastText-style subwords (Bojanowski et al. 2017): hashed character n-grams of a token, and the type table.

    config = SubwordConfig(min_n=3, max_n=5, buckets=65_536)
    char_ngrams("film")                    # ["<fi", "fil", "ilm", "lm>", "<fil", "film", "ilm>", "<film", "film>"]
    subword_ids("unfunny", config)         # bucket ids 0..buckets-1, the same in every process
    type_table(word_ids, ngram_ids)        # (K, 1 + G) int32: word id, then n-gram ids + 1 (0 = none)

The n-grams are ``min_n``..``max_n`` characters of ``<token>``, the angle brackets marking the word's start and
end, so "<un" (a prefix) and "un" inside a word differ. They are hashed with 32-bit FNV-1a over the UTF-8 bytes
(as fastText does): the same bucket in every process and on every machine, where Python's ``hash()`` of a string
changes per process (PYTHONHASHSEED). A word outside the vocabulary ("unfunny") then still shares n-grams
("fun", "funny", "nny>") with words the model has learnt.

The classifier reads *type* ids (``Tokenizer.encode_types``) and one table per encoded set: each distinct token's
n-grams are stored once (SST-2 train: ~15k types × ≤ 78 n-grams), not once per token occurrence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain

import numpy as np

from lstm_lab.data.settings import CheckedSettings


@dataclass(frozen=True)
class SubwordConfig(CheckedSettings):
    label = "subword config"
    min_n: int = 3  # n-gram lengths, counted with the boundary markers: "<unfunny>" → "<un", ..., "funny", "nny>"
    max_n: int = 5
    buckets: int = 65_536  # hashed n-gram ids 0..buckets-1 (collisions share a vector, as in fastText)

    def __post_init__(self):
        checks = {
            "min_n": isinstance(self.min_n, int) and self.min_n >= 1,
            "max_n": isinstance(self.max_n, int) and self.max_n >= self.min_n,
            "buckets": isinstance(self.buckets, int) and self.buckets >= 1,
        }
        self._refuse(checks)


_FNV_OFFSET, _FNV_PRIME, _MASK32 = 2166136261, 16777619, 0xFFFFFFFF


def fnv1a(data: bytes) -> int:
    """32-bit FNV-1a, the hash fastText buckets its n-grams with: stable across processes, unlike ``hash()``."""
    h = _FNV_OFFSET
    for byte in data:
        h = ((h ^ byte) * _FNV_PRIME) & _MASK32
    return h


def char_ngrams(token: str, min_n: int = 3, max_n: int = 5) -> list[str]:
    """The character n-grams of ``<token>`` (boundary markers included), shortest first, left to right."""
    marked = f"<{token}>"
    return [marked[i : i + n] for n in range(min_n, max_n + 1) for i in range(len(marked) - n + 1)]


def subword_ids(token: str, config: SubwordConfig) -> list[int]:
    """Hashed bucket ids (0..buckets-1) of the token's n-grams; duplicates kept (they weigh twice, as in fastText)."""
    return [fnv1a(g.encode("utf-8")) % config.buckets for g in char_ngrams(token, config.min_n, config.max_n)]


def type_table(word_ids: Sequence[int], ngram_ids: Sequence[Sequence[int]]) -> np.ndarray:
    """(K, 1 + G) int32 for K types: column 0 the type's word id, columns 1.. its n-gram bucket ids + 1, 0 filling
    the rows of types with fewer than G n-grams (G ≥ 1, the most any type has)."""
    width = max(1, max(map(len, ngram_ids), default=0))
    table = np.zeros((len(word_ids), 1 + width), dtype=np.int32)
    table[:, 0] = np.asarray(word_ids, dtype=np.int32)
    for k, row in enumerate(ngram_ids):
        table[k, 1 : 1 + len(row)] = np.asarray(row, dtype=np.int64) + 1  # + 1: 0 is "no n-gram"
    return table


class Ngrams:
    """token → its bucket ids under ``config``, each token hashed once (FNV-1a runs in Python: SST-2's 15k training
    types take about a second, its 540k tokens would take ~30)."""

    def __init__(self, config: SubwordConfig):
        self.config, self._cache = config, {}

    def __call__(self, token: str) -> list[int]:
        ids = self._cache.get(token)
        if ids is None:
            ids = self._cache[token] = subword_ids(token, self.config)
        return ids


def number_types(token_lists: Sequence[list[str]], pad: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Every token's type id, concatenated (int32), each text's length (int64), and the types in id order: type 0
    is ``pad``, the others numbered by first occurrence (the same texts always give the same ids)."""
    types: dict[str, int] = {pad: 0}
    setdefault = types.setdefault
    lengths = np.fromiter((len(t) for t in token_lists), dtype=np.int64, count=len(token_lists))
    flat = np.fromiter((setdefault(t, len(types)) for t in chain.from_iterable(token_lists)), dtype=np.int32,
                       count=int(lengths.sum()))
    return flat, lengths, list(types)  # dicts keep insertion order: position k is type k
