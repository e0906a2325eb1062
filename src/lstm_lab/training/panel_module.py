"""Lightning side of panel forecasting: windows of many series in, a global probabilistic forecaster trained.

``PanelDataModule`` serves the train/val/test windows of a (scaled) ``Panel`` as the batch dicts
``PanelWindows`` returns (x, future, y, series[, mask]); ``PanelModule`` trains a ``PanelForecaster`` on them
with the forecaster's own criterion (pinball loss for the quantile head, NLL for a parametric one) and logs the
MAE of its median on the scaled values beside it.

An epoch need not be every window. M4 Hourly alone has ~300k training windows and a 100k-series panel billions,
so ``max_windows_per_epoch`` turns an epoch into that many windows drawn uniformly, with replacement, from the
flat window index (``RandomWindowSampler``): random integers in ``[0, n_windows)``, drawn in chunks by the
DataModule's seeded generator, mapped to (series, row) by ``PanelWindows.locate``. Nothing of size O(windows)
is ever built, and the draws are the same on every run with the same seed (and continue, not repeat, from
one epoch to the next).

Checkpoints hold plain hyper-parameters (``panel_hparams``): ``forecaster_from_checkpoint`` rebuilds the
network with its weights, without Lightning.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from lstm_lab.data.panel import Panel
from lstm_lab.data.panel_windows import PanelWindows, already_batched
from lstm_lab.errors import LstmLabError
from lstm_lab.models.panel_forecaster import PanelForecaster
from lstm_lab.models.quantiles import default_levels
from lstm_lab.models.spec import ModelSpec
from lstm_lab.training.module import SplitDataModule, TaskModule

DRAW_CHUNK = 1 << 16  # random indices drawn per call to the generator


class RandomWindowSampler(Sampler[int]):
    """``n_draws`` flat window indices, uniform over ``[0, n_windows)`` with replacement, from ``generator``.

    Drawn ``DRAW_CHUNK`` at a time while the DataLoader consumes them: memory O(chunk), whatever the panel.
    A plain index sampler (not a batch sampler), so Lightning can still wrap it for distributed training.
    """

    def __init__(self, n_windows: int, n_draws: int, generator: torch.Generator):
        if n_windows < 1 or n_draws < 1:
            raise LstmLabError(f"window sampler: {n_draws} draw(s) from {n_windows} window(s); expected >= 1 of each")
        self.n_windows, self.n_draws, self.generator = int(n_windows), int(n_draws), generator

    def __len__(self) -> int:
        return self.n_draws

    def __iter__(self) -> Iterator[int]:
        left = self.n_draws
        while left > 0:
            k = min(left, DRAW_CHUNK)
            yield from torch.randint(self.n_windows, (k,), generator=self.generator, dtype=torch.int64).tolist()
            left -= k


class PanelDataModule(SplitDataModule):
    """Train/val/test windows of ``panel`` (split by ``panel.bounds``), in batches of ``batch_size``.

    Training windows use ``stride`` and are shuffled by a seeded generator (the same order on every run), or,
    with ``max_windows_per_epoch``, that many are drawn per epoch (see the module docstring). Validation and
    test score every window (stride 1), in order.
    """

    def __init__(self, panel: Panel, lookback: int, horizon: int, stride: int, batch_size: int, seed: int,
                 max_windows_per_epoch: int | None = None):
        super().__init__()
        if panel.bounds is None:
            raise LstmLabError("panel: no split boundaries; call with_bounds(split_last(...) or split_times(...)) "
                               "first")
        if max_windows_per_epoch is not None and max_windows_per_epoch < 1:
            raise LstmLabError(f"max_windows_per_epoch={max_windows_per_epoch}; expected >= 1 or None (every window)")
        self.panel, self.lookback, self.horizon, self.stride = panel, lookback, horizon, stride
        self.batch_size, self.seed, self.max_windows_per_epoch = batch_size, seed, max_windows_per_epoch
        self._datasets: dict[str, PanelWindows] = {}
        self._generators: dict[str, torch.Generator] | None = None

    @property
    def generators(self) -> dict[str, torch.Generator]:
        """The training order's generator, seeded; one per DataModule, so a resumed fit can restore its state
        (training/resume.py). Created on first use, in the process that trains."""
        if self._generators is None:
            self._generators = {"shuffle": torch.Generator().manual_seed(self.seed)}
        return self._generators

    def dataset(self, split: str) -> PanelWindows:
        if split not in self._datasets:
            stride = self.stride if split == "train" else 1
            self._datasets[split] = PanelWindows(self.panel, split, self.lookback, self.horizon, stride)
        return self._datasets[split]

    def _loader(self, split: str) -> DataLoader:
        data = self.dataset(split)
        if len(data) == 0 and split != "test":
            raise LstmLabError(
                f"panel: the {split} split holds no window of lookback {self.lookback} + horizon {self.horizon} in "
                f"any series; use more {split} steps per series or a shorter lookback/horizon"
            )
        sampler, shuffle = None, False
        if split == "train" and self.max_windows_per_epoch is not None:
            sampler = RandomWindowSampler(len(data), self.max_windows_per_epoch, self.generators["shuffle"])
        elif split == "train":
            shuffle = True
        return DataLoader(data, batch_size=self.batch_size, shuffle=shuffle, sampler=sampler,
                          collate_fn=already_batched, generator=self.generators["shuffle"] if shuffle else None)



class PanelModule(TaskModule):
    """Trains a ``PanelForecaster``: its own criterion as the loss, the median's MAE as ``<stage>_mae``.

    The residual forecaster starts as the naive forecast (zero output layer): it is validated first and kept
    when no epoch beats it.
    """

    initial_validation = True

    def loss(self, batch, stage: str):
        y = batch["y"]  # (B, H, C)
        out = self.net(batch, with_quantiles=stage != "train")
        extras = {}
        if stage != "train":
            extras["mae"] = (out["median"] - y).abs().mean()
        return self.net.loss(out, y), len(y), extras


# --------------------------------------------------------------------------------------------------------------
# Hyper-parameters, the network, its checkpoint, its forecasts
# --------------------------------------------------------------------------------------------------------------
def panel_hparams(panel: Panel, lookback: int, horizon: int, spec: ModelSpec, *, id_embedding: int = 8,
                  levels: Sequence[float] = default_levels(), distribution: str | None = None,
                  context_size: int = 16, local_hidden: int = 32, residual: bool = True,
                  anchor: str = "last", fold: int = 1, training: Mapping[str, Any] | None = None,
                  scaler: Mapping[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """Plain values that rebuild the forecaster (``build_panel_forecaster``) and tell how to feed it: sizes,
    window, head, column names, series ids, and optionally the training settings and the scaler's state."""
    return {
        "n_inputs": panel.n_inputs, "n_targets": panel.n_targets, "n_future": panel.n_future,
        "n_series": panel.n_series, "id_embedding": int(id_embedding), "lookback": int(lookback),
        "horizon": int(horizon), "model": spec.model_dump(mode="json"), "levels": [float(q) for q in levels],
        "distribution": distribution, "context_size": int(context_size), "local_hidden": int(local_hidden),
        "residual": bool(residual), "anchor": str(anchor), "fold": int(fold),
        "target_columns": list(panel.target_columns),
        "past_columns": list(panel.past_columns), "future_columns": list(panel.future_columns),
        "ids": [i.item() if isinstance(i, np.generic) else i for i in panel.ids],
        "training": dict(training) if training is not None else None,
        "scaler": dict(scaler) if scaler is not None else None, **extra,
    }


def build_panel_forecaster(hp: Mapping[str, Any]) -> PanelForecaster:
    """The untrained network described by ``panel_hparams``."""
    return PanelForecaster(
        int(hp["n_inputs"]), int(hp["n_targets"]), int(hp["horizon"]), ModelSpec.model_validate(hp["model"]),
        n_future=int(hp["n_future"]), n_series=int(hp["n_series"]), id_embedding=int(hp["id_embedding"]),
        levels=hp["levels"], distribution=hp["distribution"], context_size=int(hp["context_size"]),
        local_hidden=int(hp["local_hidden"]), residual=bool(hp["residual"]),
        anchor=str(hp.get("anchor", "last")),  # checkpoints from before the option: the last value
        fold=int(hp.get("fold", 1)),  # ... and one lookback row per LSTM step
    )


def forecaster_from_checkpoint(checkpoint: Mapping[str, Any]) -> tuple[PanelForecaster, dict[str, Any]]:
    """``(network with the checkpoint's weights, in eval mode, its hyper-parameters)`` from a checkpoint dict
    (``FitResult.checkpoint`` or ``checkpoints.load_checkpoint_file``)."""
    if not isinstance(checkpoint, Mapping) or "hyper_parameters" not in checkpoint or "state_dict" not in checkpoint:
        raise LstmLabError("panel forecaster: not a model checkpoint of this project (no hyper_parameters/state_dict)")
    hp = dict(checkpoint["hyper_parameters"])
    net = build_panel_forecaster(hp)
    weights = {k.removeprefix("net."): v for k, v in checkpoint["state_dict"].items() if k.startswith("net.")}
    net.load_state_dict(weights)
    return net.eval(), hp


def _forecasts(net: torch.nn.Module, dataset: torch.utils.data.Dataset, batch_size: int):
    """``(batch, quantiles (B, H, C, Q))`` for every batch of ``dataset`` in order, the network in eval mode
    and without gradients (its mode is restored afterwards)."""
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=already_batched)
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            for batch in loader:
                yield batch, net(batch)["quantiles"]
    finally:
        net.train(was_training)


def predict_quantiles(net: PanelForecaster, dataset: torch.utils.data.Dataset, batch_size: int = 1024,
                      ) -> np.ndarray:
    """Quantile forecasts (N, H, C, Q) float32 of every item of ``dataset`` (``ForecastOrigins`` or
    ``PanelWindows``), in order, with the network in eval mode and no gradients."""
    parts = [q.float().cpu().numpy() for _, q in _forecasts(net, dataset, batch_size)]
    if not parts:
        Q = len(net.levels)
        return np.zeros((0, net.horizon, net.n_targets, Q), dtype=np.float32)
    return np.concatenate(parts, axis=0)


def calibrate_intervals(net: torch.nn.Module, dataset: torch.utils.data.Dataset, batch_size: int = 1024,
                        ) -> tuple[torch.Tensor, dict[str, float], dict[str, float]]:
    """Split-conformal calibration of ``net``'s intervals on ``dataset`` (the validation windows): writes
    ``conformal_offsets`` into ``net.quantile_offsets`` and returns them with the coverage of each interval on
    those windows before and after (``{"0.95": 0.91}``)."""
    from lstm_lab.models.quantiles import (
        apply_offsets,
        central_intervals,
        conformal_offsets,
        interval_coverage,
        level_index,
    )

    net.quantile_offsets.zero_()  # raw intervals first
    parts, truths = [], []
    for batch, quantiles in _forecasts(net, dataset, batch_size):
        parts.append(quantiles)  # (B, H, C, Q)
        truths.append(batch["y"].to(quantiles.dtype))  # (B, H, C)
    if not parts:
        return net.quantile_offsets.clone(), {}, {}
    levels = [float(q) for q in net.levels]
    pred, y = torch.cat(parts), torch.cat(truths)
    offsets = conformal_offsets(pred, y, levels)
    calibrated = apply_offsets(pred, offsets, level_index(levels, 0.5))
    intervals = central_intervals(levels)
    before = {f"{c:g}": float(interval_coverage(y, pred[..., lo], pred[..., hi])) for lo, hi, c in intervals}
    after = {f"{c:g}": float(interval_coverage(y, calibrated[..., lo], calibrated[..., hi])) for lo, hi, c in intervals}
    net.quantile_offsets.copy_(offsets)
    return offsets, before, after


def windows_per_epoch(datamodule: PanelDataModule) -> int:
    """Training windows one epoch visits: the sample size, or every window at the training stride."""
    n = len(datamodule.dataset("train"))
    return n if datamodule.max_windows_per_epoch is None else datamodule.max_windows_per_epoch


def batches_per_epoch(datamodule: PanelDataModule) -> int:
    return math.ceil(windows_per_epoch(datamodule) / datamodule.batch_size)
