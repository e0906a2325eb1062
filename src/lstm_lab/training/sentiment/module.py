"""Lightning side of the sentiment task: length-bucketed batches of token ids and the classifier module.

``data`` (what the pipeline's train node passes to ``run_training("sentiment", config, data)``) is flat, so it
also travels to torchrun ranks (``distributed.write_job``): ``train_ids`` / ``val_ids`` (N, max_length) int
(padded either way, PAD = 0), ``train_labels`` / ``val_labels`` (N,) 0/1, and ``vocab_size``; with subwords
also ``train_subwords`` / ``val_subwords``, the tables (K, 1 + G) the type ids point into, handed to the network
with every batch (a reference, not a copy).

Length bucketing: sentences of similar length share a batch, so a batch is only as wide as its longest
sentence instead of max_length (SST-2 phrases average under 10 tokens against a max_length of 200). Training
order is still random and seeded: indices come from a seeded random sampler (a different order each epoch,
the same sequence of orders on every run), are grouped into pools of ``batch_size × pool`` indices, sorted by
length within each pool, cut into batches, and the batches of a pool are shuffled with a seeded generator. The
batch sampler subclasses ``BatchSampler`` with a ``sampler`` argument, so Lightning can swap in a
``DistributedSampler`` under DDP and each rank buckets its own share.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, Sampler, SequentialSampler

from lstm_lab.data.text import left_align
from lstm_lab.training.module import SplitDataModule, TaskModule


class TokenDataset(torch.utils.data.Dataset):
    """Left-aligned ids + lengths + labels; ``__getitems__`` returns a whole batch cut to its longest row."""

    def __init__(self, ids: np.ndarray, labels: np.ndarray, subwords: np.ndarray | None = None):
        aligned, lengths = left_align(np.asarray(ids))
        aligned = aligned[:, : max(int(lengths.max(initial=0)), 1)]  # columns past the longest row are all PAD
        self.ids = torch.from_numpy(aligned.astype(np.int64))
        self.lengths = torch.from_numpy(np.maximum(lengths, 1))  # an empty row reads one PAD step
        self.labels = torch.from_numpy(np.asarray(labels, dtype=np.float32))
        # The types' table (K, 1 + G) when the ids are type ids: every batch carries the same tensor.
        self.extra = () if subwords is None else (torch.from_numpy(np.asarray(subwords)),)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.__getitems__([i])

    def __getitems__(self, indices: list[int]):
        index = torch.as_tensor(indices, dtype=torch.long)
        lengths = self.lengths[index]
        return self.ids[index, : int(lengths.max())], lengths, self.labels[index], *self.extra


def _batch(batch):  # collate_fn: the dataset already stacked it
    return batch


class BucketBatchSampler(BatchSampler):
    """Batches of similar-length indices drawn from ``sampler`` (see the module docstring)."""

    def __init__(self, sampler: Sampler[int], batch_size: int, drop_last: bool = False, *,
                 lengths: np.ndarray | torch.Tensor, pool: int = 50, shuffle: bool = True, seed: int = 0,
                 generator: torch.Generator | None = None):
        super().__init__(sampler, batch_size, drop_last)
        self.lengths = np.asarray(lengths)
        self.pool, self.shuffle = pool, shuffle
        self.generator = generator if generator is not None else torch.Generator().manual_seed(seed)

    def _pool_size(self, n: int) -> int:
        return self.batch_size * self.pool if self.shuffle else max(n, 1)  # evaluation: one pool, all sorted

    def __len__(self) -> int:
        n = len(self.sampler)
        size = self._pool_size(n)
        full, rest = divmod(n, size)
        per_pool = size // self.batch_size if self.drop_last else -(-size // self.batch_size)
        last = rest // self.batch_size if self.drop_last else -(-rest // self.batch_size)
        return full * per_pool + last

    def __iter__(self) -> Iterator[list[int]]:
        indices = np.fromiter(iter(self.sampler), dtype=np.int64)
        size = self._pool_size(len(indices))
        for start in range(0, len(indices), size):
            chunk = indices[start : start + size]
            chunk = chunk[np.argsort(self.lengths[chunk], kind="stable")]
            batches = [chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
            if self.drop_last and batches and len(batches[-1]) < self.batch_size:
                batches.pop()
            order = torch.randperm(len(batches), generator=self.generator).tolist() if self.shuffle else \
                range(len(batches))
            for b in order:
                yield batches[b].tolist()


class SentimentDataModule(SplitDataModule):
    def __init__(self, data: Mapping[str, Any], batch_size: int, seed: int, eval_batch_size: int = 512):
        super().__init__()
        self.batch_size, self.eval_batch_size, self.seed = batch_size, eval_batch_size, seed
        self.sets = {
            split: TokenDataset(data[f"{split}_ids"], data[f"{split}_labels"], data.get(f"{split}_subwords"))
            for split in ("train", "val", "test")
            if f"{split}_ids" in data
        }
        self._generators: dict[str, torch.Generator] | None = None

    @property
    def generators(self) -> dict[str, torch.Generator]:
        """The training order's generators (sampler, batch shuffling), seeded. One pair per DataModule, so that
        a resumed fit can restore their state (training/resume.py); created on first use, in the process that
        trains, since a torch.Generator cannot be sent to a ddp_spawn rank."""
        if self._generators is None:
            self._generators = {"sampler": torch.Generator().manual_seed(self.seed),
                                "buckets": torch.Generator().manual_seed(self.seed)}
        return self._generators

    def _loader(self, split: str) -> DataLoader:
        dataset = self.sets[split]
        train = split == "train"
        if train:
            sampler = RandomSampler(dataset, generator=self.generators["sampler"])
        else:
            sampler = SequentialSampler(dataset)
        batches = BucketBatchSampler(sampler, self.batch_size if train else self.eval_batch_size, False,
                                     lengths=dataset.lengths.numpy(), shuffle=train, seed=self.seed,
                                     generator=self.generators["buckets"] if train else None)
        return DataLoader(dataset, batch_sampler=batches, collate_fn=_batch)



class SentimentModule(TaskModule):
    """Binary cross-entropy on the classifier's logits; accuracy at 0.5 logged beside the loss."""

    # The embedding (1M weights at 10000 x 100) makes the unfused per-tensor Adam step about half of each CPU
    # training step; fused, it is ~8x cheaper.
    fused_optimizer = True

    def loss(self, batch, stage: str):
        ids, lengths, labels, *subwords = batch  # (B, T), (B,), (B,) [, the types' table (K, 1 + G)]
        logits = self.net(ids, lengths, *subwords)  # (B,)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels)
        accuracy = ((logits > 0).float() == labels).float().mean()
        return loss, len(labels), {"acc": accuracy}
