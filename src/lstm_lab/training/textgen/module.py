"""Lightning side of the textgen task: stateful truncated-BPTT batches and the character language model.

Why stateful truncated BPTT rather than random windows
------------------------------------------------------
Random windows (sample a start, feed ``seq_len`` characters from a zero state) make every window start
without context: the first characters of each window are predicted from nothing, a large share of the
training signal goes on "cold starts", and the loss measured that way overstates the model's loss on running
text. Generation, on the other hand, carries the state across hundreds of characters. Stateful truncated BPTT
(char-rnn, Zaremba et al. 2014) trains what generation does:

    text[0 : n-1] cut into B equal streams, one per batch row, each read left to right in seq_len chunks:

        batch k = rows s = 0..B-1:  x = stream_s[k·T : (k+1)·T],  y = the same shifted by one character

    The LSTM state at the end of batch k is the initial state of batch k+1 (detached: gradients stop at the
    chunk boundary, the context does not). The state is reset at each epoch's start.

Every training character is used once per epoch, each prediction sees all preceding text of its stream, and
validation scores the validation text the same way (B streams, state carried), so ``val_loss`` is the
model's per-character cross-entropy on running text with almost all predictions made in full context (only
the first character of each stream starts cold). The price is that batch order is fixed rather than shuffled;
with B streams spread over the whole text each batch still mixes B unrelated places.

Under DDP each rank reads its own B streams (the text is cut into B · world_size streams), so every rank has
the same number of batches and its state stays continuous — a DistributedSampler would interleave chunks.

Losses are natural-log cross-entropy per character (nats/char): ``train_loss``, ``val_loss`` (early stopping
and the checkpoint monitor it) and ``val_bits_per_char`` = nats / ln 2, averaged over characters (each batch
weighted by its number of predictions, so a short last chunk counts for what it holds).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, IterableDataset

from lstm_lab.errors import LstmLabError
from lstm_lab.models.char_lm import CharLM, detach_state
from lstm_lab.training.module import TaskModule

LN2 = math.log(2.0)

# StreamChunks is an IterableDataset with an exact __len__ and no worker processes (num_workers=0): Lightning's
# warning that __len__ "could be inaccurate" with several workers does not apply.
warnings.filterwarnings("ignore", message="Your `IterableDataset` has `__len__` defined", category=UserWarning)


# --------------------------------------------------------------------------------------------------------------
# Data: B parallel streams read in chunks of seq_len
# --------------------------------------------------------------------------------------------------------------
def check_split_sizes(n_train: int, n_val: int, seq_len: int, context: str = "") -> None:
    """The training split must hold at least one window (seq_len inputs and the character after them), the
    validation split at least one prediction. ``context`` says where the sizes come from, for the message."""
    if n_train < seq_len + 1:
        raise LstmLabError(
            f"the training split has {n_train} characters, fewer than one training window "
            f"(window.length + 1 = {seq_len + 1}); use a longer corpus or a smaller textgen.window.length"
        )
    if n_val < 2:
        raise LstmLabError(f"the validation split has {n_val} character(s){context}; it needs at least 2")


class StreamChunks(IterableDataset):
    """Batches ``(x, y)``, each (B, T) int64, of ``streams`` parallel streams of ``ids`` (see module docstring).

    ``full_windows``: training wants every stream to hold at least one whole chunk, so fewer streams are used
    when the text is short; validation uses up to ``streams`` streams of any length (≥ 1 prediction each).
    ``world_size`` / ``rank``: this process reads streams ``[rank·B, (rank+1)·B)`` of ``B·world_size``.
    """

    def __init__(self, ids: np.ndarray | torch.Tensor, streams: int, seq_len: int, *, full_windows: bool,
                 world_size: int = 1, rank: int = 0):
        self.ids = torch.as_tensor(np.asarray(ids), dtype=torch.long) if not isinstance(ids, torch.Tensor) \
            else ids.long()
        usable = len(self.ids) - 1  # positions that have a next character to predict
        if usable < 1:
            raise LstmLabError(f"a text of {len(self.ids)} character(s) has nothing to predict")
        total = streams * world_size
        limit = usable // seq_len if full_windows else usable  # streams we can fill
        if limit < world_size:
            raise LstmLabError(f"{len(self.ids)} characters cannot feed {world_size} rank(s) with one window each")
        self.streams = max(1, min(total, limit) // world_size)  # per rank
        self.per_stream = usable // (self.streams * world_size)  # predictions per stream (the rest: < B·W)
        self.seq_len, self.rank = seq_len, rank
        first = rank * self.streams
        self.starts = (torch.arange(first, first + self.streams) * self.per_stream)  # (B,)

    @property
    def n_predictions(self) -> int:
        return self.streams * self.per_stream

    def __len__(self) -> int:
        return math.ceil(self.per_stream / self.seq_len)

    def __iter__(self):
        for t0 in range(0, self.per_stream, self.seq_len):
            t = torch.arange(t0, min(t0 + self.seq_len, self.per_stream))  # (T,)
            index = self.starts[:, None] + t[None, :]  # (B, T)
            yield self.ids[index], self.ids[index + 1]  # x (B, T), y (B, T)


class TextgenDataModule(pl.LightningDataModule):
    def __init__(self, ids: np.ndarray, train_end: int, batch_size: int, seq_len: int):
        super().__init__()
        check_split_sizes(train_end, len(ids) - train_end, seq_len)
        self.ids = torch.as_tensor(np.asarray(ids), dtype=torch.long)
        self.train_end, self.batch_size, self.seq_len = train_end, batch_size, seq_len

    def dataset(self, split: str, world_size: int = 1, rank: int = 0) -> StreamChunks:
        part = self.ids[: self.train_end] if split == "train" else self.ids[self.train_end :]
        return StreamChunks(part, self.batch_size, self.seq_len, full_windows=split == "train",
                            world_size=world_size, rank=rank)

    def _loader(self, split: str) -> DataLoader:
        trainer = self.trainer
        world, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
        return DataLoader(self.dataset(split, world, rank), batch_size=None)  # already batched, in order

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")


# --------------------------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------------------------
class TextgenModule(TaskModule):
    """Cross-entropy per character with the LSTM state carried from batch to batch (truncated BPTT)."""

    def __init__(self, net: CharLM, training, hparams):
        super().__init__(net, training, hparams)
        self._state: dict[str, Any] = {}  # carried LSTM state per stage (train / val)

    def loss(self, batch, stage: str):
        x, y = batch  # (B, T) each
        logits, state = self.net(x, self._state.get(stage))  # (B, T, V)
        self._state[stage] = detach_state(state)  # truncated BPTT: carry the values, cut the graph
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))  # nats per character
        return loss, y.numel(), ({"bits_per_char": loss / LN2} if stage == "val" else {})

    def on_train_epoch_start(self) -> None:
        self._state["train"] = None

    def on_validation_epoch_start(self) -> None:
        self._state["val"] = None


# --------------------------------------------------------------------------------------------------------------
# Evaluation with the same protocol, outside Lightning
# --------------------------------------------------------------------------------------------------------------
@torch.no_grad()
def evaluate_nats(net: CharLM, ids: np.ndarray, streams: int, seq_len: int) -> tuple[float, int]:
    """Mean cross-entropy (nats/char) of ``net`` on ``ids`` read as ``streams`` stateful streams (the
    validation protocol of training), and the number of characters scored."""
    was_training = net.training
    net.eval()
    data = StreamChunks(ids, streams, seq_len, full_windows=False)
    total, state = 0.0, None
    try:
        for x, y in data:
            logits, state = net(x, state)  # (B, T, V)
            total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum"))
    finally:
        net.train(was_training)
    return total / data.n_predictions, data.n_predictions
