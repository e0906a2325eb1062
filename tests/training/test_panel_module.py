"""The panel Lightning layer (PanelDataModule, PanelModule, sampled epochs) and the M4 Hourly benchmark's glue."""

from __future__ import annotations

import importlib.util

import numpy as np
import pandas as pd
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
from tests.conftest import REPO

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


def test_fit_two_epochs_checkpoint_reloads_and_forecasts(tmp_path):
    panel = tiny_panel()
    cfg = TrainingConfig(max_epochs=2, batch_size=16, num_threads=1, resume="never", early_stopping_patience=None,
                         trainer={"limit_train_batches": 3})
    hp = panel_hparams(panel, LOOKBACK, HORIZON, ModelSpec(hidden_sizes=[8], impl="native"), id_embedding=2,
                       context_size=4, local_hidden=8, training=cfg.model_dump(mode="json"))
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


# ---------------------------------------------------------------------------------------------------------------
# benchmarks/m4_hourly.py on a tiny fake M4 pair
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("m4_hourly_bench", REPO / "benchmarks" / "m4_hourly.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_wide(path, ids, rows) -> None:
    width = max(len(r) for r in rows)
    frame = pd.DataFrame([[i, *r, *[None] * (width - len(r))] for i, r in zip(ids, rows)],
                         columns=[f"V{k + 1}" for k in range(width + 1)])
    frame.to_csv(path, index=False)


@pytest.fixture
def fake_m4(tmp_path):
    rng = np.random.default_rng(1)
    ids, train, test = ["H1", "H2", "H3"], [], []
    for s, n in enumerate((200, 220, 210)):
        t = np.arange(n + 48)
        y = 100 * (s + 1) + 20 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 2, n + 48)
        train.append(y[:n].round(1).tolist())
        test.append(y[n:].round(1).tolist())
    write_wide(tmp_path / "Hourly-train.csv", ids, train)
    write_wide(tmp_path / "Hourly-test.csv", ids, test)
    return tmp_path


def test_benchmark_glue_scores_like_the_metrics_module(bench, fake_m4):
    from lstm_lab.evaluation.m4 import M4_NAIVE2_OFFICIAL, m4_scores, mase_scale, snaive_forecast

    train, test = bench.load_m4(fake_m4)
    panel, future = bench.build_panel(train, 48, 48)
    assert panel.n_series == 3 and panel.n_future == 4 and future.shape == (3, 48, 4)
    assert panel.bounds[:, 0].tolist() == [152, 172, 162] and panel.bounds[:, 1].tolist() == [200, 220, 210]
    # Step 0 after the end has the phase of 24 steps before it (hour) and of 168 before it (weekday).
    last_day = panel.values[panel.offsets[1] - 24, panel.n_inputs:]  # series 0, 24 steps before its end
    np.testing.assert_allclose(future[0, 0, :2], last_day[:2], atol=1e-5)

    insample = [np.asarray(r) for r in train.groupby("id", sort=False)["y"].agg(list)]
    actual = test["y"].to_numpy().reshape(3, 48)
    # The seasonal scaler's scale is the MASE scale of each series' training rows (here of log y).
    logged = bench.with_log_target(panel)
    scaler = bench.fit_scaler(logged, "seasonal")
    train_rows = [np.log(x[:n]) for x, n in zip(insample, panel.bounds[:, 0])]
    np.testing.assert_allclose(scaler.scale[:, 0], mase_scale(train_rows, 24), rtol=1e-5)
    scaled = scaler.transform(logged)
    q = np.asarray(scaled.values[:, :1])[panel.offsets[1:] - 1][:, None, :, None].repeat(5, axis=-1)  # last value
    restored = bench.to_original_scale(np.broadcast_to(q, (3, 2, 1, 5)), scaler, log=True, clip_at_zero=False)
    np.testing.assert_allclose(restored[:, 0, 2], [x[-1] for x in insample], rtol=1e-4)
    point = snaive_forecast(insample, 48, 24)  # (S, H)
    quantiles = np.stack([point - 10, point - 5, point, point + 5, point + 10], axis=-1)  # (S, H, Q)
    scores = bench.score(train, test, panel.ids, quantiles)
    expected = m4_scores(actual, point, insample, 24, naive2=M4_NAIVE2_OFFICIAL["Hourly"], lower=point - 10,
                         upper=point + 10)
    for key in ("smape", "mase", "owa", "msis", "acd"):
        assert scores[key] == pytest.approx(expected[key])
    assert 0.0 <= scores["coverage80"] <= scores["coverage"] <= 1.0
    assert bench.baseline_scores(train, test)["sNaive"]["smape"] == pytest.approx(expected["smape"])

    paths = bench.write_submissions(panel.ids, quantiles, fake_m4 / "out")
    forecast = pd.read_csv(paths[0])
    assert [p.name for p in paths] == ["hourly_forecast.csv", "hourly_lo95.csv", "hourly_hi95.csv"]
    assert list(forecast.columns) == ["id", *[f"F{k}" for k in range(1, 49)]]
    np.testing.assert_allclose(forecast.iloc[:, 1:].to_numpy(), point)
    np.testing.assert_allclose(pd.read_csv(paths[1]).iloc[:, 1:].to_numpy(), point - 10)


def test_seasonal_differences_at_zero_are_the_seasonal_naive_forecast(bench, fake_m4):
    from lstm_lab.evaluation.m4 import snaive_forecast

    train, _ = bench.load_m4(fake_m4)
    panel, future = bench.build_sdiff_panel(train, 48, 48)
    assert panel.target_columns == ("d24", "d48") and future.shape == (3, 48, 4)
    assert panel.lengths.tolist() == [152, 172, 162]  # the first 48 rows have no d48
    insample = [np.asarray(r) for r in train.groupby("id", sort=False)["y"].agg(list)]
    first = np.log(insample[0])
    np.testing.assert_allclose(panel.values[0, :2], [first[48] - first[24], first[48] - first[0]], rtol=1e-5)

    scaler = bench.sdiff_scaler(panel)
    for s, (x, n) in enumerate(zip(insample, panel.bounds[:, 0])):  # mean |d_k| over the training rows
        log_x = np.log(x[: 48 + n])
        expected = [np.abs(log_x[48:] - log_x[48 - k : -k]).mean() for k in (24, 48)]
        np.testing.assert_allclose(scaler.scale[s], expected, rtol=1e-5)
    assert (scaler.center == 0).all()
    zero = np.zeros((3, 48, 2, 5))
    restored = bench.restore_sdiff(zero, scaler, train, panel.ids)
    np.testing.assert_allclose(restored[..., 2], snaive_forecast(insample, 48, 24), rtol=1e-9)
    # A positive d48 at step 30 raises that step only, by exp(d * scale), from the value 48 steps before.
    zero[:, 30, 1, :] = 1.0
    moved = bench.restore_sdiff(zero, scaler, train, panel.ids)[..., 2]
    np.testing.assert_allclose(moved[:, 30], np.array([x[-18] for x in insample]) * np.exp(scaler.scale[:, 1]))
    np.testing.assert_allclose(np.delete(moved, 30, axis=1), np.delete(restored[..., 2], 30, axis=1))


def test_benchmark_main_runs_end_to_end_on_the_fake_pair(bench, fake_m4):
    results = fake_m4 / "m4_hourly.md"
    out = bench.main([
        "--m4-dir", str(fake_m4), "--out", str(fake_m4 / "sub"), "--results", str(results),
        "--anchors", str(fake_m4 / "no_anchors.csv"), "--minutes", "1", "--lookback", "24", "--hidden", "8",
        "--embedding", "2", "--context", "4", "--local-hidden", "8", "--batch-size", "32",
        "--windows-per-epoch", "64", "--max-epochs", "1", "--threads", "1",
    ])
    assert all(np.isfinite(out["scores"][k]) for k in ("smape", "mase", "owa", "msis", "acd"))
    assert [row["epoch"] for row in out["info"]["history"]] == [0, 1]
    text = results.read_text()
    assert "**this run**" in text and "--lookback 24" in text and "preliminary" in text
    assert len(pd.read_csv(fake_m4 / "sub" / "hourly_hi95.csv")) == 3
