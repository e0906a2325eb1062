"""Sliding windows over a series, without materialising them.

A window is identified by the row ``t`` of its first target: inputs are rows ``[t - L, t)``, targets rows
``[t, t + H)``. For a split that owns rows ``[a, b)``, the targets must lie inside ``[a, b)`` — they never
cross a split boundary — while inputs may reach back ``L`` rows into the previous split for context (the
Informer protocol's ``val = [8640 - L, 11520)``). Only the starting rows are stored; a batch is gathered with
one fancy-index per tensor, so memory is O(batch), not O(number of windows × L).
"""

from __future__ import annotations

import numpy as np
import torch

from lstm_lab.errors import LstmLabError


def target_starts(span: tuple[int, int], lookback: int, horizon: int, stride: int = 1) -> np.ndarray:
    """First-target rows ``t`` of every window whose targets fit in ``span = [a, b)``."""
    a, b = span
    first, last = max(a, lookback), b - horizon  # inclusive range of t
    if last < first:
        return np.empty(0, dtype=np.int64)
    return np.arange(first, last + 1, stride, dtype=np.int64)


def gather(values: np.ndarray | torch.Tensor, rows: np.ndarray, length: int, offset: int = 0):
    """``out[i] = values[rows[i] + offset : rows[i] + offset + length]`` for all i at once: (B, length, F)."""
    index = (np.asarray(rows)[:, None] + offset) + np.arange(length)[None, :]  # (B, length)
    if isinstance(values, torch.Tensor):
        return values[torch.from_numpy(index)]
    return values[index]


class WindowDataset(torch.utils.data.Dataset):
    """Map-style dataset of (input window (L, F), target window (H, C)) pairs over shared series tensors.

    ``__getitems__`` returns a whole batch at once (the DataLoader's batched fetch), so use it with
    ``collate_fn=already_batched``.
    """

    def __init__(self, inputs: np.ndarray, targets: np.ndarray, starts: np.ndarray, lookback: int, horizon: int):
        if len(inputs) != len(targets):
            raise ValueError("inputs and targets must have the same number of rows")
        self.inputs = torch.as_tensor(np.ascontiguousarray(inputs), dtype=torch.float32)  # (N, F)
        self.targets = torch.as_tensor(np.ascontiguousarray(targets), dtype=torch.float32)  # (N, C)
        self.starts = np.asarray(starts, dtype=np.int64)
        self.lookback, self.horizon = lookback, horizon

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, i: int):
        x, y = self.__getitems__([i])
        return x[0], y[0]

    def __getitems__(self, indices) -> tuple[torch.Tensor, torch.Tensor]:
        rows = self.starts[np.asarray(indices, dtype=np.int64)]
        x = gather(self.inputs, rows, self.lookback, offset=-self.lookback)  # (B, L, F)
        y = gather(self.targets, rows, self.horizon)  # (B, H, C)
        return x, y


def already_batched(batch):
    """collate_fn for datasets whose ``__getitems__`` already returns stacked tensors."""
    return batch


def check_enough_windows(span: tuple[int, int], lookback: int, horizon: int, split: str, n_rows: int) -> None:
    """Fail with a clear message when a split cannot hold a single window."""
    if len(target_starts(span, lookback, horizon)) == 0:
        a, b = span
        raise LstmLabError(
            f"forecast.window: the {split} split (rows {a}..{b} of {n_rows}) is too short for one window of "
            f"lookback {lookback} + horizon {horizon}; use a longer series or a smaller lookback/horizon"
        )
