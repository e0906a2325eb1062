"""The panel Lightning layer (PanelDataModule, PanelModule, sampled epochs) and the M4 Hourly benchmark's glue."""

from __future__ import annotations


import numpy as np
import pytest
import torch

from lstm_lab.checkpoints import load_checkpoint_file
from lstm_lab.data.panel import Panel, split_last
from lstm_lab.data.panel_windows import ForecastOrigins
from lstm_lab.errors import LstmLabError
from lstm_lab.models.spec import ModelSpec
from lstm_lab.training.config import TrainingConfig
from lstm_lab.training.entry import fit
from lstm_lab.training.panel_module import (
    PanelDataModule,
    PanelModule,
    RandomWindowSampler,
    build_panel_forecaster,
    forecaster_from_checkpoint,
    panel_hparams,
    predict_quantiles,
)

LOOKBACK, HORIZON, PERIOD = 24, 6, 12
LENGTHS = (90, 120, 70)


def tiny_panel() -> Panel:
    """3 series of different lengths: a period-12 season at different levels, plus noise; one future column
    (the season's phase) known over the horizon."""
    rng = np.random.default_rng(0)
    rows = []
    for s, n in enumerate(LENGTHS):
        t = np.arange(n)
        phase = np.sin(2 * np.pi * t / PERIOD)
        y = (s + 1) * phase + 0.5 * s + 0.1 * rng.standard_normal(n)
        rows.append(np.stack([y, phase], axis=1))
    values = np.concatenate(rows).astype(np.float32)
    panel = Panel.from_arrays(values, LENGTHS, ["a", "b", "c"], target_columns=["y"], future_columns=["phase"])
    return panel.with_bounds(split_last(panel.lengths, 12, 12))


@pytest.mark.parametrize("fold", [1, 6])
def test_fit_two_epochs_checkpoint_reloads_and_forecasts(tmp_path, fold):
    panel = tiny_panel()
    cfg = TrainingConfig(max_epochs=2, batch_size=16, num_threads=1, resume="never", early_stopping_patience=None,
                         trainer={"limit_train_batches": 3})
    hp = panel_hparams(panel, LOOKBACK, HORIZON, ModelSpec(hidden_sizes=[8], impl="native"), id_embedding=2,
                       context_size=4, local_hidden=8, fold=fold, training=cfg.model_dump(mode="json"))
    torch.manual_seed(0)
    module = PanelModule(build_panel_forecaster(hp), cfg, hp)
    data = PanelDataModule(panel, LOOKBACK, HORIZON, stride=2, batch_size=16, seed=0)

    result = fit(module, data, cfg, checkpoint_dir=tmp_path / "ckpt")

    assert [row["epoch"] for row in result.history] == [0, 1, 2]
    assert all(np.isfinite(row["val_loss"]) and "val_mae" in row for row in result.history[1:])
    assert result.best_val_loss <= result.history[0]["val_loss"]  # never worse than the naive start

    torch.save(result.checkpoint, tmp_path / "best.ckpt")  # the hparams must survive a weights_only load
    net, hparams = forecaster_from_checkpoint(load_checkpoint_file(tmp_path / "best.ckpt"))
    assert hparams["ids"] == ["a", "b", "c"] and hparams["lookback"] == LOOKBACK
    assert net.fold == result.module.net.fold == fold  # a folded encoder comes back folded
    phase = np.sin(2 * np.pi * (np.asarray(LENGTHS)[:, None] + np.arange(HORIZON)) / PERIOD)  # (S, H)
    origins = ForecastOrigins(panel, LOOKBACK, HORIZON, phase[..., None].astype(np.float32))
    quantiles = predict_quantiles(net, origins)
    assert quantiles.shape == (3, HORIZON, 1, 5)
    median = quantiles[..., 0, 2]
    assert median.shape == (3, HORIZON) and np.isfinite(median).all()
    assert (np.diff(quantiles, axis=-1) >= 0).all()  # non-crossing
    np.testing.assert_allclose(quantiles, predict_quantiles(result.module.net, origins), rtol=1e-5, atol=1e-6)


def drawn(data: PanelDataModule) -> tuple[list[torch.Tensor], int]:
    batches = list(data.train_dataloader())
    return batches, sum(len(b["y"]) for b in batches)


def test_max_windows_per_epoch_draws_reproducibly_from_every_series():
    panel = tiny_panel()
    data = PanelDataModule(panel, LOOKBACK, HORIZON, stride=1, batch_size=16, seed=7, max_windows_per_epoch=50)
    n_windows = len(data.dataset("train"))
    batches, count = drawn(data)
    assert count == 50 and [len(b["y"]) for b in batches] == [16, 16, 16, 2]
    assert len(data.train_dataloader()) == 4
    series = torch.cat([b["series"] for b in batches])
    assert set(series.tolist()) == {0, 1, 2}

    # The draws are uniform flat indices from the seeded generator, mapped by PanelWindows.
    expected = list(RandomWindowSampler(n_windows, 50, torch.Generator().manual_seed(7)))
    reference = data.dataset("train").__getitems__(expected)
    assert torch.equal(series, reference["series"])
    assert torch.equal(torch.cat([b["y"] for b in batches]), reference["y"])

    again, _ = drawn(PanelDataModule(panel, LOOKBACK, HORIZON, 1, 16, seed=7, max_windows_per_epoch=50))
    assert all(torch.equal(a["x"], b["x"]) for a, b in zip(batches, again))
    other, _ = drawn(PanelDataModule(panel, LOOKBACK, HORIZON, 1, 16, seed=8, max_windows_per_epoch=50))
    assert not torch.equal(torch.cat([b["series"] for b in other]), series) or \
        not torch.equal(torch.cat([b["x"] for b in other]), torch.cat([b["x"] for b in batches]))
    next_epoch, _ = drawn(data)  # the generator moves on: a new sample, not the same one again
    assert not torch.equal(torch.cat([b["x"] for b in next_epoch]), torch.cat([b["x"] for b in batches]))


def test_empty_validation_split_is_one_clear_error():
    panel = tiny_panel()
    panel = panel.with_bounds(split_last(panel.lengths, 2, 0))  # 2 val steps: no window of horizon 6
    with pytest.raises(LstmLabError, match="val split holds no window"):
        PanelDataModule(panel, LOOKBACK, HORIZON, 1, 16, seed=0).val_dataloader()
