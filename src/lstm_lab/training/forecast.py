"""Lightning side of the forecast task: the DataModule over windowed splits and the LightningModule.

The DataModule receives the prepared (scaled) series as plain arrays plus the split boundaries; windows are
built lazily by ``WindowDataset`` so no copy of all windows ever exists. The module holds an
``LSTMForecaster`` built from the model spec and trains it with MSE (+ optional L2 on LSTM kernels).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader

from lstm_lab.data.windowing import WindowDataset, already_batched, target_starts
from lstm_lab.models.forecaster import LSTMForecaster
from lstm_lab.models.spec import ModelSpec
from lstm_lab.training.config import TrainingConfig
from lstm_lab.training.optim import configure_optimizers


class ForecastDataModule(pl.LightningDataModule):
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

    def dataset(self, split: str) -> WindowDataset:
        # Training windows use the configured stride; evaluation always scores every window (stride 1).
        stride = self.stride if split == "train" else 1
        starts = target_starts(self.spans[split], self.lookback, self.horizon, stride)
        return WindowDataset(self.inputs, self.targets, starts, self.lookback, self.horizon)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        generator = torch.Generator().manual_seed(self.seed)  # same shuffling order on every run
        return DataLoader(
            self.dataset(split),
            batch_size=self.batch_size,
            shuffle=shuffle,
            collate_fn=already_batched,
            generator=generator if shuffle else None,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)


class ForecastModule(pl.LightningModule):
    """Hyper-parameters are plain dicts so a checkpoint alone rebuilds the model (``load_from_checkpoint``)."""

    def __init__(
        self,
        n_features: int,
        n_targets: int,
        horizon: int,
        model: dict[str, Any],
        training: dict[str, Any],
        residual: bool = True,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.spec = ModelSpec.model_validate(model)
        self.cfg = TrainingConfig.model_validate(training)
        self.net = LSTMForecaster(n_features, n_targets, horizon, self.spec, residual=residual)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (B, L, F) → (B, H, C)

    def _step(self, batch, stage: str) -> torch.Tensor:
        x, y = batch
        loss = torch.nn.functional.mse_loss(self(x), y)
        self.log(f"{stage}_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(x), sync_dist=True)
        return loss

    def training_step(self, batch, batch_idx):
        loss = self._step(batch, "train")
        return loss + self.net.regularization()

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._step(batch, "test")

    def configure_optimizers(self):
        return configure_optimizers(self, self.cfg)


def build_task(config: Mapping[str, Any], data: Mapping[str, Any]) -> tuple[ForecastModule, ForecastDataModule]:
    """The training entry's hook (``entry.TASKS``): the module and data module for one forecast config."""
    window, training = config["window"], TrainingConfig.model_validate(config.get("training", {}))
    inputs, targets = data["inputs"], data["targets"]
    module = ForecastModule(
        n_features=inputs.shape[1],
        n_targets=targets.shape[1],
        horizon=window["horizon"],
        model=dict(config.get("model", {})),
        training=training.model_dump(),
        residual=config.get("residual", True),
    )
    datamodule = ForecastDataModule(
        inputs,
        targets,
        data["bounds"],
        lookback=window["lookback"],
        horizon=window["horizon"],
        stride=window.get("stride", 1),
        batch_size=training.batch_size,
        seed=training.seed,
    )
    return module, datamodule
