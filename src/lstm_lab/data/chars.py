"""Character tokenisation for the textgen pipeline: split, vocabulary, encode/decode, JSON.

    text ──split_point──▶ train = text[:n] | val = text[n:]        (a character split, 90/10 by default)
    train ──CharVocab.build──▶ vocabulary (training split only: val never leaks into it)
    text ──vocab.encode──▶ ids, uint8 when the vocabulary has ≤ 256 symbols, else uint16

Unseen characters. Id 0 is always ``UNK``: a character of the validation split (or of any text encoded later)
that never occurs in the training split is encoded as ``UNK``, so the validation loss still scores every
character (the model has an output for UNK but never sees it as a target in training, so an unseen
character costs many nats — as it should). At generation there is no silent fallback: a prompt character
outside the vocabulary is an error (``encode(..., unknown="error")``), and UNK is never sampled.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from lstm_lab.errors import LstmLabError

UNK_ID = 0
UNK_TEXT = "\N{REPLACEMENT CHARACTER}"  # how UNK reads back in decoded text
FORMAT = "lstm_lab.char_vocab"
VERSION = 1


def split_point(n_chars: int, train_fraction: float) -> int:
    """Index of the first validation character: the first ``int(n · fraction)`` characters are training."""
    if not 0.0 < train_fraction < 1.0:
        raise LstmLabError(f"train_fraction must be in (0, 1), got {train_fraction}")
    return int(n_chars * train_fraction)


def describe_char(ch: str) -> str:
    """``'é' (U+00E9)``: readable in a one-line error even for newlines and invisible characters."""
    return f"{ch!r} (U+{ord(ch):04X})"


# Control characters a text file may not carry: C0 except the whitespace ones (\t \n \v \f \r), DEL, and C1.
_CONTROL = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f]")
MAX_CONTROL_FRACTION = 0.01  # a stray escape sequence is tolerated; a binary file is not


def check_corpus(text: str, source: str) -> None:
    """Refuse what is not plain text: any NUL (no text file has one; a file of zeros, an image, a
    compressed archive do) or more than 1% control characters other than whitespace. Otherwise such a
    "corpus" trains a model of bytes without any error, and its vocabulary is full of invisible symbols."""
    nul = text.find("\x00")
    if nul != -1:
        raise LstmLabError(
            f"{source}: not a text corpus: NUL character (U+0000) at character {nul}; expected plain text "
            f"(is it a binary or compressed file?)"
        )
    controls = _CONTROL.findall(text)
    if text and len(controls) > MAX_CONTROL_FRACTION * len(text):
        first = _CONTROL.search(text)
        raise LstmLabError(
            f"{source}: not a text corpus: {len(controls)} of {len(text)} characters are control characters "
            f"(first {describe_char(first.group())} at character {first.start()}); expected plain text with at "
            f"most {MAX_CONTROL_FRACTION:.0%} of them"
        )


@dataclass(frozen=True)
class CharVocab:
    """Id ``i + 1`` ↔ ``chars[i]``; id 0 is UNK. Characters sorted by code point (stable across runs)."""

    chars: tuple[str, ...]

    def __post_init__(self):
        if any(len(c) != 1 for c in self.chars):
            raise LstmLabError("a character vocabulary holds single characters only")
        if len(set(self.chars)) != len(self.chars):
            raise LstmLabError("a character vocabulary must not repeat characters")
        object.__setattr__(self, "_index", {c: i + 1 for i, c in enumerate(self.chars)})

    # ------------------------------------------------------------------------------------------ building
    @classmethod
    def build(cls, train_text: str) -> CharVocab:
        if not train_text:
            raise LstmLabError("cannot build a character vocabulary from an empty training split")
        return cls(tuple(sorted(set(train_text))))

    @property
    def size(self) -> int:
        """Number of ids, UNK included (the model's input and output size)."""
        return len(self.chars) + 1

    def __len__(self) -> int:
        return self.size

    @property
    def unk_id(self) -> int:
        return UNK_ID

    @property
    def dtype(self) -> np.dtype:
        """The smallest unsigned integer type that holds every id."""
        if self.size <= 1 << 8:
            return np.dtype(np.uint8)
        if self.size <= 1 << 16:
            return np.dtype(np.uint16)
        raise LstmLabError(f"{self.size} distinct characters: more than a uint16 can encode (65,536)")

    def __contains__(self, ch: str) -> bool:
        return ch in self._index

    # -------------------------------------------------------------------------------------- text <-> ids
    def unseen(self, text: str) -> Counter:
        """Characters of ``text`` outside the vocabulary, with their counts."""
        return Counter(ch for ch in text if ch not in self._index)

    def encode(self, text: str, *, unknown: Literal["unk", "error"] = "unk", what: str = "text") -> np.ndarray:
        """``text`` as ids (1-D array of :attr:`dtype`). ``unknown="error"`` rejects characters outside the
        vocabulary (prompts); ``"unk"`` maps them to UNK (validation text)."""
        if unknown == "error":
            missing = self.unseen(text)
            if missing:
                shown = ", ".join(describe_char(c) for c, _ in missing.most_common(5))
                more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
                raise LstmLabError(
                    f"{what} contains {len(missing)} character(s) never seen in the training text: {shown}{more}"
                )
        elif unknown != "unk":
            raise ValueError(f"unknown must be 'unk' or 'error', got {unknown!r}")
        # One lookup table over the code points present: fast enough for a few MB of text.
        points = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        if points.size == 0:
            return np.empty(0, dtype=self.dtype)
        table = np.full(int(points.max()) + 1, UNK_ID, dtype=self.dtype)
        for ch, i in self._index.items():
            if ord(ch) < table.size:
                table[ord(ch)] = i
        return table[points]

    def decode(self, ids: Iterable[int] | np.ndarray) -> str:
        chars = (UNK_TEXT, *self.chars)
        out = []
        for i in np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids, dtype=np.int64).reshape(-1):
            if not 0 <= i < len(chars):
                raise LstmLabError(f"id {int(i)} is outside the vocabulary (0..{len(chars) - 1})")
            out.append(chars[i])
        return "".join(out)

    # ----------------------------------------------------------------------------------------------- JSON
    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "unk_id": UNK_ID, "chars": list(self.chars)}

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "vocabulary") -> CharVocab:
        if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("chars"), list):
            raise LstmLabError(f"{source}: not a character vocabulary (expected a JSON object with format {FORMAT!r})")
        if data.get("version") != VERSION or data.get("unk_id") != UNK_ID:
            raise LstmLabError(f"{source}: unsupported vocabulary version {data.get('version')!r}")
        return cls(tuple(data["chars"]))

    def save(self, path: str | Path) -> None:
        from lstm_lab.io import write_json

        write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> CharVocab:
        from lstm_lab.io import read_json

        return cls.from_dict(read_json(path, "vocabulary"), source=str(path))


def check_ids(ids: Sequence[int] | np.ndarray, vocab_size: int, what: str = "ids") -> None:
    """An encoded corpus must fit the vocabulary it claims (a stale .npy beside a new vocab would not)."""
    arr = np.asarray(ids)
    if arr.size and int(arr.max()) >= vocab_size:
        raise LstmLabError(f"{what}: id {int(arr.max())} does not fit a vocabulary of {vocab_size}; re-run prepare")
