"""Lightning side of the forecast task: the DataModule over windowed splits and the LightningModule.

The DataModule receives the prepared (scaled) series as plain arrays plus the split boundaries; windows are
built lazily by ``WindowDataset`` so no copy of all windows ever exists. The module trains the
``LSTMForecaster`` the task built from the model spec with MSE (+ optional L2 on LSTM kernels).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader

from lstm_lab.data.windowing import WindowDataset, already_batched, target_starts
from lstm_lab.training.module import SplitDataModule, TaskModule


class ForecastDataModule(SplitDataModule):
    def __init__(
        self,
        inputs: np.ndarray,
        targets: np.ndarray,
        bounds: dict[str, int],
        lookback: int,
        horizon: int,
        stride: int,
        batch_size: int,
        seed: int,
    ):
        super().__init__()
        self.inputs, self.targets = inputs, targets
        self.spans = {
            "train": (0, bounds["train_end"]),
            "val": (bounds["train_end"], bounds["val_end"]),
            "test": (bounds["val_end"], bounds["test_end"]),
        }
        self.lookback, self.horizon, self.stride = lookback, horizon, stride
        self.batch_size, self.seed = batch_size, seed
        self._generators: dict[str, torch.Generator] | None = None

    @property
    def generators(self) -> dict[str, torch.Generator]:
        """The training order's generator, seeded: the same order on every run. One per DataModule, so that a
        resumed fit can restore its state (training/resume.py); created on first use, in the process that
        trains, since a torch.Generator cannot be sent to a ddp_spawn rank."""
        if self._generators is None:
            self._generators = {"shuffle": torch.Generator().manual_seed(self.seed)}
        return self._generators

    def dataset(self, split: str) -> WindowDataset:
        # Training windows use the configured stride; evaluation always scores every window (stride 1).
        stride = self.stride if split == "train" else 1
        starts = target_starts(self.spans[split], self.lookback, self.horizon, stride)
        return WindowDataset(self.inputs, self.targets, starts, self.lookback, self.horizon)

    def _loader(self, split: str) -> DataLoader:
        shuffle = split == "train"
        return DataLoader(
            self.dataset(split),
            batch_size=self.batch_size,
            shuffle=shuffle,
            collate_fn=already_batched,
            generator=self.generators["shuffle"] if shuffle else None,
        )


class ForecastModule(TaskModule):
    """Direct multi-step forecaster trained with MSE on scaled values (+ the spec's L2 on LSTM kernels).

    With ``residual`` the untrained network is exactly the naive forecast (LSTMForecaster zeroes its output
    layer), so validating it first and keeping it unless an epoch does better means training never ends worse
    than naive on validation.
    """

    initial_validation = True

    def loss(self, batch, stage: str):
        x, y = batch  # (B, L, F), (B, H, C)
        return torch.nn.functional.mse_loss(self.net(x), y), len(x), {}
