"""A labelled text corpus: rows checked, labels mapped to 0/1, the missing splits made (seeded, stratified).

Input: ``{role: table}`` with roles ``train`` / ``val`` / ``test`` or ``all`` (one corpus to split), each
table holding the file's columns plus, when it came from ``LabelledTextDataset``, ``__source__`` and
``__line__`` so a bad row is named by file and line. Output: one frame ``text, label, split`` and a report.

Bad rows (``on_bad_rows``): ``error`` stops at the first empty or missing text, missing label or label outside
``labels``, naming the file and line, before anything is written; ``skip`` drops every such row and counts
them per reason.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from lstm_lab.errors import LstmLabError

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
REASONS = ("missing_text", "empty_text", "missing_label", "unknown_label")


def label_key(value) -> str:
    """How a raw label is compared with the mapping's keys: 1, 1.0 and '1' are all '1'."""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def check_rows(frame: pd.DataFrame, role: str, *, text_column: str, label_column: str, labels: Mapping[str, int],
               on_bad_rows: str, where: str = "sentiment.data") -> tuple[pd.DataFrame, dict[str, int]]:
    """Rows with a usable text and a mapped label, as (text, label); bad rows raise or are counted."""
    source = str(frame["__source__"].iloc[0]) if "__source__" in frame and len(frame) else f"sentiment_raw[{role}]"
    user_columns = [c for c in frame.columns if c not in ("__source__", "__line__")]
    for column, key in ((text_column, "text_column"), (label_column, "label_column")):
        if column not in frame.columns:
            raise LstmLabError(f"{source}: column {column!r} not found; columns are {user_columns} "
                               f"(set {where}.{key}, or the catalog entry's header/columns)")
    texts, raw_labels = frame[text_column], frame[label_column]
    is_text = texts.map(lambda v: isinstance(v, str)).to_numpy(bool)
    blank = np.zeros(len(frame), dtype=bool)
    blank[is_text] = texts[is_text].str.strip().eq("").to_numpy(bool)
    missing_label = raw_labels.map(lambda v: v is None or (isinstance(v, float) and np.isnan(v))
                                   or (isinstance(v, str) and not v.strip())).to_numpy(bool)
    mapped = raw_labels.map(label_key).map(dict(labels))  # NaN where the key is not in the mapping
    unknown = mapped.isna().to_numpy(bool) & ~missing_label
    bad = {"missing_text": ~is_text, "empty_text": blank, "missing_label": missing_label, "unknown_label": unknown}
    any_bad = np.logical_or.reduce(list(bad.values()))
    lines = frame["__line__"].to_numpy() if "__line__" in frame else np.arange(1, len(frame) + 1)
    if any_bad.any() and on_bad_rows == "error":
        i = int(np.flatnonzero(any_bad)[0])
        at = f"{frame['__source__'].iloc[i] if '__source__' in frame else source}: line {lines[i]}"
        if bad["missing_text"][i]:
            what = f"missing text in column {text_column!r} (got {texts.iloc[i]!r})"
        elif bad["empty_text"][i]:
            what = f"empty text in column {text_column!r}"
        elif bad["missing_label"][i]:
            what = f"missing label in column {label_column!r}"
        else:
            what = f"label {raw_labels.iloc[i]!r} is not in {where}.labels (known: {sorted(labels)})"
        raise LstmLabError(f"{at}: {what}; fix the row or set {where}.on_bad_rows: skip")
    counts = {reason: int(mask.sum()) for reason, mask in bad.items()}
    keep = ~any_bad
    out = pd.DataFrame({"text": texts[keep].astype(str).to_numpy(), "label": mapped[keep].astype(np.int8).to_numpy()})
    return out, counts


def split_off(labels: np.ndarray, fraction: float, rng: np.random.Generator, stratify: bool) -> np.ndarray:
    """Boolean mask of ~``fraction`` of the rows (per class when stratified), chosen by ``rng``."""
    mask = np.zeros(len(labels), dtype=bool)
    groups = [np.flatnonzero(labels == c) for c in (0, 1)] if stratify else [np.arange(len(labels))]
    for rows in groups:
        take = int(round(fraction * len(rows)))
        mask[rng.permutation(rows)[:take]] = True
    return mask


def assemble_splits(frames: dict[str, pd.DataFrame], *, val_fraction: float, test_fraction: float, seed: int,
                    stratify: bool, roles: list[str]) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """train / val / test from the checked frames: ``all`` is split three ways, a missing val or test split is
    taken from train. Returns the frames and what was made, for the log."""
    frames = dict(frames)
    rng = np.random.default_rng(seed)
    if "all" in frames:
        pool = frames.pop("all")
        test = split_off(pool["label"].to_numpy(), test_fraction, rng, stratify)
        frames["test"] = pool[test]
        pool = pool[~test]
        # val_fraction of the whole corpus, taken from what is left
        val = split_off(pool["label"].to_numpy(), min(val_fraction / (1 - test_fraction), 0.999), rng, stratify)
        frames["val"], frames["train"] = pool[val], pool[~val]
    if "train" not in frames:
        raise LstmLabError(f"sentiment_raw: no 'train' (or 'all') file among {sorted(roles)}")
    made = []
    for split, fraction in (("test", test_fraction), ("val", val_fraction)):
        if split not in frames:
            train = frames["train"]
            mask = split_off(train["label"].to_numpy(), fraction, rng, stratify)
            frames[split], frames["train"] = train[mask], train[~mask]
            made.append(f"{split} = {fraction:g} of train")
    for split in SPLITS:
        if len(frames[split]) == 0:
            raise LstmLabError(f"sentiment: the {split} split is empty after cleaning; give more rows or a "
                               f"{split} file")
    if frames["train"]["label"].nunique() < 2:
        raise LstmLabError(f"sentiment: the train split has only class {int(frames['train']['label'].iloc[0])} "
                           "rows; check sentiment.data.labels")
    return frames, made


def corpus_table(frames: Mapping[str, pd.DataFrame], skipped: Mapping[str, int]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """One ``text, label, split`` frame and the report of rows, class balance and skipped rows."""
    corpus = pd.concat([frames[split].assign(split=split) for split in SPLITS], ignore_index=True)
    report: dict[str, Any] = {"rows": {split: int(len(frames[split])) for split in SPLITS},
                              "positive_fraction": {split: float(frames[split]["label"].mean()) for split in SPLITS},
                              "skipped": dict(skipped), "skipped_total": int(sum(skipped.values()))}
    return corpus, report
