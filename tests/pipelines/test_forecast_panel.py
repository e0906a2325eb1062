"""The forecast pipeline on panels: many series through the real nodes, the M4 env through `kedro run`."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from lstm_lab.datasets import NotGivenDataset
from lstm_lab.errors import LstmLabError
from lstm_lab.pipelines.forecast import nodes
from lstm_lab.pipelines.forecast.pipeline import create_pipeline
from tests.conftest import SHARED, TINY_FORECAST, kedro, make_project, typed_params

LENGTHS = [120, 150, 96, 200, 130]


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # training.resume keeps its folders under ./checkpoints


def hourly_panel(lengths=LENGTHS, seed=0) -> pd.DataFrame:
    """Series of different lengths and levels with a daily cycle, rows shuffled (the nodes sort them)."""
    rng = np.random.default_rng(seed)
    parts = []
    for k, n in enumerate(lengths):
        t = np.arange(n)
        y = 50 + 10 * k + 5 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 0.5, n)
        start = pd.Timestamp("2020-01-01") + pd.Timedelta(hours=k)
        parts.append(pd.DataFrame({"id": f"S{k}", "time": pd.date_range(start, periods=n, freq="h"), "y": y}))
    return pd.concat(parts).sample(frac=1, random_state=seed).reset_index(drop=True)


def panel_params(**change):
    base = {**TINY_FORECAST["forecast"],
            "data": {"time_column": "time", "target_columns": ["y"], "id_column": "id", "calendar": ["hour"],
                     "frequency": "h"},
            "split": {"fractions": None, "last": [12, 12]},
            "window": {"lookback": 24, "horizon": 6},
            "output": {"kind": "quantile"},
            "evaluation": {"seasonal_period": 24}}
    for key, value in change.items():
        base[key] = {**base[key], **value} if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return typed_params("forecast", base)


def run_nodes(raw: pd.DataFrame, p):
    clean = nodes.clean(raw, p)
    split = nodes.split_series(clean, p)
    scaler = nodes.fit_scaler(clean, split, p)
    checkpoint, history = nodes.train_forecaster(nodes.training_data(clean, split, scaler, p), p)
    return clean, split, scaler, checkpoint, history


def test_panel_through_the_real_pipeline():
    p = panel_params(backtest={"n_windows": 2, "step": 3})
    catalog = DataCatalog({"forecast_raw": MemoryDataset(hourly_panel()), "params:forecast": MemoryDataset(p),
                           "forecast_future_covariates": NotGivenDataset(),
                           "forecast_future_actuals": NotGivenDataset()})
    outputs = ("forecast_metrics", "forecast_plot", "forecast_backtest", "forecast_future_metrics")
    out = SequentialRunner().run(create_pipeline().to_outputs(*outputs), catalog)
    metrics = out["forecast_metrics"].load()
    # every test window of every series (12 test steps, horizon 6: 7 origins each), the model beside baselines
    assert metrics["windows"] == 7 * len(LENGTHS)
    assert {"mse", "mae", "smape", "mase", "coverage80", "coverage95", "msis80", "msis95", "pinball"} <= set(
        metrics["lstm"])
    assert set(metrics["seasonal_naive"]) == {"mse", "mae", "smape", "mase"}
    assert metrics["seasonal_naive"]["mase"] < metrics["naive"]["mase"]  # a daily cycle: the seasonal baseline wins
    backtest = out["forecast_backtest"].load()
    assert [c["steps_before_end"] for c in backtest["cutoffs"]] == [9, 6]
    assert all(c["series"] == len(LENGTHS) and c["windows"] == len(LENGTHS) for c in backtest["cutoffs"])
    assert set(backtest["overall"]) == {"lstm", "naive", "seasonal_naive"}
    assert out["forecast_future_metrics"].load() == {"scored": False}


def test_future_forecast_quantiles_and_serving_agree(tmp_path):
    import mlflow

    from lstm_lab.serving import panel_pyfunc

    raw = hourly_panel()
    p = panel_params()
    clean, _, scaler, checkpoint, _ = run_nodes(raw, p)
    future = nodes.forecast_future(checkpoint, clean, scaler, None, p)
    assert len(future) == len(LENGTHS) * 6 and list(pd.unique(future["id"])) == list(pd.unique(clean["id"]))
    q = future[["lo95", "lo80", "median", "hi80", "hi95"]].to_numpy()
    assert (np.diff(q, axis=1) >= 0).all()  # quantiles never cross
    last = clean.groupby("id", sort=False)["time"].max()
    first_step = future[future["step"] == 1].set_index("id")["time"]
    assert (pd.to_datetime(first_step) == last + pd.Timedelta(hours=1)).all()  # the hour after each series' end

    panel_pyfunc.save_model(tmp_path / "model", checkpoint, history=clean)
    model = mlflow.pyfunc.load_model(str(tmp_path / "model"))
    served = model.predict(raw)
    np.testing.assert_allclose(served["median"].to_numpy(), future["median"].to_numpy(), rtol=0, atol=1e-9)
    np.testing.assert_allclose(served["hi95"].to_numpy(), future["hi95"].to_numpy(), rtol=0, atol=1e-9)
    with pytest.raises(Exception, match="id 'Z9' was not in the training panel"):
        model.predict(pd.concat([raw, raw[raw["id"] == "S0"].assign(id="Z9")]))


def test_seasonal_differences_start_as_seasonal_naive_and_ensemble_answers_as_one():
    """The untrained seasonal-log-difference model forecasts exactly sNaive; two members answer as one; a folded
    encoder comes through training, the checkpoint and evaluation, on the lookback it was trained on only."""
    from lstm_lab.models.panel_forecaster import PanelEnsemble
    from lstm_lab.pipelines.forecast import panel_nodes
    from lstm_lab.training.forecast.task import TASK

    p = panel_params(data={"target_transform": "seasonal_log_diff", "calendar": []},
                     panel={"scaling": "mean_abs", "fold": 4}, split={"last": [None, 6]},
                     training={"max_epochs": 1, "learning_rate": 1e-9}, ensemble=2)
    clean, _, scaler, checkpoint, history = run_nodes(hourly_panel(), p)
    assert set(history["member"]) == {0, 1}
    net = TASK.from_checkpoint(checkpoint).net
    assert isinstance(net, PanelEnsemble) and len(net.members) == 2
    assert [m.fold for m in net.members] == [4, 4]  # lookback 24: 6 LSTM steps of 4 hours
    with pytest.raises(LstmLabError, match="trained with window.lookback 24, the parameters say 12"):
        panel_nodes.evaluate(checkpoint, clean, scaler, p.model_copy(update={"window": p.window.model_copy(
            update={"lookback": 12})}))
    metrics, table = panel_nodes.evaluate(checkpoint, clean, scaler, p)
    # lr 1e-9: every member is still the untrained one (zero output layer) → exactly the seasonal naive forecast
    np.testing.assert_allclose(table["median"], table["seasonal_naive"], rtol=1e-6)
    assert metrics["lstm"]["mase"] == pytest.approx(metrics["seasonal_naive"]["mase"], rel=1e-6)


def test_one_series_with_intervals_is_a_panel_of_one():
    t = np.arange(300)
    raw = pd.DataFrame({"date": pd.date_range("2000-01-01", periods=300, freq="D"),
                        "co2": 300 + 0.05 * t + np.sin(2 * np.pi * t / 7)})
    p = typed_params("forecast", {**TINY_FORECAST["forecast"], "output": {"kind": "gaussian"},
                                  "evaluation": {"seasonal_period": 7}})
    assert p.is_panel
    clean, _, scaler, checkpoint, _ = run_nodes(raw, p)
    metrics, _ = nodes.evaluate_forecaster(checkpoint, clean, {}, scaler, p)
    assert metrics["windows"] > 0 and 0 <= metrics["lstm"]["coverage95"] <= 1
    future = nodes.forecast_future(checkpoint, clean, scaler, None, p)
    assert len(future) == 4 and set(future["id"]) == {"co2"}


def test_calibrated_intervals_cover_the_validation_windows_and_reach_every_forecast(tmp_path):
    import mlflow

    from lstm_lab.pipelines.forecast import panel_nodes
    from lstm_lab.serving import panel_pyfunc
    from lstm_lab.training.forecast.task import TASK

    with pytest.raises(LstmLabError, match="calibrate: a point forecast has no intervals"):
        panel_params(output={"kind": "point", "calibrate": True})
    raw = hourly_panel()
    p = panel_params(output={"kind": "quantile", "calibrate": True}, training={"max_epochs": 1})
    clean, _, scaler, checkpoint, _ = run_nodes(raw, p)
    info = checkpoint["calibration"]  # 12 validation steps, horizon 6: 7 windows per series
    assert info["windows"] == 7 * len(LENGTHS) and set(info["coverage_after"]) == {"0.8", "0.95"}
    assert info["coverage_after"]["0.95"] >= 0.95 and info["coverage_after"]["0.8"] >= 0.8
    offsets = checkpoint["state_dict"]["net.quantile_offsets"]
    assert offsets.shape == (6, 1, 5) and offsets.abs().sum() > 0
    uncalibrated = dict(checkpoint, state_dict={**checkpoint["state_dict"],
                                                "net.quantile_offsets": torch.zeros_like(offsets)})
    _, table = panel_nodes.evaluate(checkpoint, clean, scaler, p)
    _, raw_table = panel_nodes.evaluate(uncalibrated, clean, scaler, p)
    np.testing.assert_allclose(table["median"], raw_table["median"])  # the point forecast is untouched
    assert not np.allclose(table["hi95"], raw_table["hi95"])  # the bounds moved
    future = nodes.forecast_future(checkpoint, clean, scaler, None, p)
    assert (np.diff(future[["lo95", "lo80", "median", "hi80", "hi95"]].to_numpy(), axis=1) >= 0).all()
    panel_pyfunc.save_model(tmp_path / "model", checkpoint, history=clean)
    served = mlflow.pyfunc.load_model(str(tmp_path / "model")).predict(raw)
    np.testing.assert_allclose(served["hi95"].to_numpy(), future["hi95"].to_numpy(), rtol=0, atol=1e-9)
    assert TASK.from_checkpoint(checkpoint).net.quantile_offsets.abs().sum() > 0


def test_refit_backtest_trains_per_cutoff(caplog):
    import logging

    p = panel_params(backtest={"n_windows": 2, "refit": True}, training={"max_epochs": 1})
    clean, _, scaler, checkpoint, _ = run_nodes(hourly_panel(), p)
    with caplog.at_level(logging.INFO, logger="lstm_lab.pipelines.forecast.panel_nodes"):
        out = nodes.backtest_forecaster(checkpoint, clean, scaler, p)
    assert out["refit"] and len(out["cutoffs"]) == 2
    assert sum("refitting on the rows before it" in r.message for r in caplog.records) == 2


def test_user_future_columns_are_required_for_the_future():
    raw = hourly_panel()
    raw["promo"] = (raw["time"].dt.hour < 12).astype(float)
    p = panel_params(data={"future_columns": ["promo"]})
    clean, _, scaler, checkpoint, _ = run_nodes(raw, p)
    with pytest.raises(LstmLabError, match="forecast_future_covariates: no data"):
        nodes.forecast_future(checkpoint, clean, scaler, None, p)
    last = clean.groupby("id", sort=False)["time"].max()
    rows = [{"id": i, "time": end + pd.Timedelta(hours=h), "promo": 1.0} for i, end in last.items() for h in range(1, 7)]
    future = nodes.forecast_future(checkpoint, clean, scaler, pd.DataFrame(rows), p)
    assert len(future) == len(LENGTHS) * 6
    with pytest.raises(LstmLabError, match="future covariate 'promo' is missing at id 'S4'"):
        broken = pd.DataFrame(rows)
        broken.loc[broken["id"] == "S4", "promo"] = np.nan
        nodes.forecast_future(checkpoint, clean, scaler, broken, p)


@pytest.mark.parametrize("defect, message", [
    (lambda f: pd.concat([f, f.iloc[[0]]]), r"duplicate \(id, time\) pair: id 'S\d'"),
    (lambda f: pd.concat([f, pd.DataFrame({"id": ["lonely"], "time": [pd.Timestamp("2021-01-01")], "y": [1.0]})]),
     "id 'lonely' has a single row"),
    (lambda f: f.assign(y=f["y"].where(f.index != 5)), "target 'y' is missing at id"),
])
def test_bad_panel_input_is_one_line(defect, message):
    with pytest.raises(LstmLabError, match=message) as info:
        nodes.clean(defect(hourly_panel()), panel_params())
    assert "\n" not in str(info.value) and "forecast_raw" in str(info.value)


def test_m4_defaults_and_contradictions():
    from lstm_lab.params import validate
    from tests.conftest import raw_params

    p = validate("forecast", raw_params("forecast", {"window": {"horizon": None, "lookback": None},
                                                     "evaluation": {"m4_group": "Daily", "seasonal_period": None},
                                                     "data": {"frequency": None}}))
    assert (p.window.horizon, p.window.lookback, p.evaluation.seasonal_period, p.data.frequency) == (14, 28, 1, "D")
    # panel.fold: null (conf/m4) is the group's: a day of hours per LSTM step for Hourly, one row elsewhere
    unset = {"window": {"horizon": None, "lookback": None}, "data": {"frequency": None}, "panel": {"fold": None},
             "output": {"kind": "quantile"}}
    for group, fold in (("Hourly", 24), ("Daily", 1)):
        change = {**unset, "evaluation": {"m4_group": group, "seasonal_period": None}}
        assert validate("forecast", raw_params("forecast", change)).panel.fold == fold
    with pytest.raises(LstmLabError, match="panel.fold: null means the M4 group's fold"):
        validate("forecast", raw_params("forecast", {"panel": {"fold": None}, "output": {"kind": "quantile"}}))
    with pytest.raises(LstmLabError, match="window.horizon 13: M4 Hourly forecasts 48 steps"):
        validate("forecast", raw_params("forecast", {"evaluation": {"m4_group": "Hourly"}}))
    with pytest.raises(LstmLabError, match="split.last is for panels"):
        validate("forecast", raw_params("forecast", {"split": {"fractions": None, "last": [13, 13]}}))


@pytest.mark.parametrize("change", [{"output": {"kind": "point"}}, {"residual": False},
                                    {"data": {"target_transform": "seasonal_log_diff"}}])
def test_a_mean_anchor_needs_a_residual_panel_forecaster(change):
    from lstm_lab.params import validate
    from tests.conftest import raw_params

    mean = {"panel": {"anchor": "mean"}, "output": {"kind": "quantile"}}
    assert validate("forecast", raw_params("forecast", mean)).panel.anchor == "mean"
    with pytest.raises(LstmLabError, match="panel.anchor 'mean' is for panels with residual: true") as info:
        validate("forecast", raw_params("forecast", {**mean, **change}))
    assert "\n" not in str(info.value)


def test_a_fold_must_divide_the_lookback_of_a_panel():
    from lstm_lab.params import validate
    from tests.conftest import raw_params

    panel = {"output": {"kind": "quantile"}, "window": {"lookback": 24}}
    assert validate("forecast", raw_params("forecast", {**panel, "panel": {"fold": 6}})).panel.fold == 6
    for change, says in (({**panel, "panel": {"fold": 5}}, r"panel.fold 5: window.lookback \(24\) must be a "
                                                            "multiple of it"),
                         ({"panel": {"fold": 2}}, "panel.fold 2: folding is for panels")):  # the base: one series
        with pytest.raises(LstmLabError, match=says) as info:
            validate("forecast", raw_params("forecast", change))
        assert "\n" not in str(info.value)


# ------------------------------------------------------------------------------------------------ through kedro
def small_m4(folder, n=12):
    """The first ``n`` series of M4 Hourly (train and test), a few hundred steps each, in the competition layout."""
    for name, keep in (("train", 300), ("test", None)):
        wide = pd.read_csv(SHARED / "m4" / f"Hourly-{name}.csv", nrows=n)
        if keep is not None:  # the last `keep` values of each series, left-aligned as in the files
            values = [row[~np.isnan(row)][-keep:] for row in wide.iloc[:, 1:].to_numpy(np.float64)]
            wide = pd.DataFrame([[i, *v] for i, v in zip(wide["V1"], values)],
                                columns=["V1", *[f"V{k + 2}" for k in range(keep)]])
        wide.to_csv(folder / f"Hourly-{name}.csv", index=False)


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED / "m4" / "Hourly-train.csv").is_file(), reason="../shared/data/m4 not available")
def test_m4_env_through_kedro_run(tmp_path):
    m4_dir = tmp_path / "m4"
    m4_dir.mkdir()
    small_m4(m4_dir)
    import yaml

    from tests.conftest import deep_merge, write_yaml

    root = make_project(tmp_path / "project", None, fresh_store=True)
    conf = root / "conf/m4/parameters_forecast.yml"  # the env's own file, shrunk (conf/local is not read)
    write_yaml(conf, deep_merge(yaml.safe_load(conf.read_text()), {"forecast": {
        "model": {"hidden_sizes": [8]}, "window": {"lookback": 48}, "ensemble": 2,  # folded by the group: 2 steps
        "panel": {"windows_per_epoch": 256}, "training": {"max_epochs": 1, "max_minutes": 5}}}))
    done = kedro(root, "--pipelines=forecast", "--env=m4", f"--params=m4_dir={m4_dir},m4_group=Hourly")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = root / "data/07_model_output/m4"
    ids = pd.read_csv(m4_dir / "Hourly-train.csv")["V1"].tolist()
    for name in ("forecasts", "lo95", "hi95"):
        wide = pd.read_csv(out / f"Hourly_{name}.csv")
        assert list(wide.columns) == ["id", *[f"F{k}" for k in range(1, 49)]] and wide["id"].tolist() == ids
    lo, mid, hi = (pd.read_csv(out / f"Hourly_{n}.csv").iloc[:, 1:].to_numpy() for n in ("lo95", "forecasts", "hi95"))
    assert (lo <= mid).all() and (mid <= hi).all()
    scores = json.loads((root / "data/08_reporting/m4/forecast_future_metrics.json").read_text())
    written = sorted(str(f.relative_to(root / "data")) for f in (root / "data").rglob("*") if f.is_file())
    assert all(f.split("/")[1] == "m4" for f in written), written  # nothing where the default (CO2) run writes
    assert scores["scored"] and scores["series"] == len(ids)
    assert scores["owa_reference"] == "official Naive2" and 0 < scores["lstm"]["owa"] < 2
    assert "future_lstm_owa" in done.stdout or "owa" in done.stdout


# -------------------------------------------------------------------------------------------------- distributed
@pytest.mark.parametrize("per_epoch", [None, 64])
def test_each_rank_gets_a_share_of_the_window_index(per_epoch):
    """Lightning re-creates the training DataLoader with a distributed sampler (wrapping our random sampler when
    an epoch draws windows): the ranks split the draws, batches stay whole dicts."""
    from lightning.fabric.utilities.data import _replace_dunder_methods
    from lightning.pytorch.trainer.connectors.data_connector import _get_distributed_sampler
    from lightning.pytorch.trainer.states import RunningStage
    from lightning.pytorch.utilities.data import _update_dataloader
    from torch.utils.data import BatchSampler, DataLoader

    from lstm_lab.training.forecast import panel_data
    from lstm_lab.training.panel_module import PanelDataModule

    p = panel_params()
    prepared = panel_data.prepare_panel(nodes.clean(hourly_panel(), p), p)
    dm = PanelDataModule(prepared.panel, 24, 6, 1, 16, seed=0, max_windows_per_epoch=per_epoch)
    with _replace_dunder_methods(DataLoader, "dataset"), _replace_dunder_methods(BatchSampler):
        loader = dm.train_dataloader()
    counts = []
    for rank in (0, 1):
        sampler = _get_distributed_sampler(loader, shuffle=True, overfit_batches=0, num_replicas=2, rank=rank)
        ranked = _update_dataloader(loader, sampler, mode=RunningStage.TRAINING)
        n = 0
        for batch in ranked:
            assert batch["x"].shape[1:] == (24, 1) and batch["future"].shape[1:] == (6, 2) and len(batch["y"]) <= 16
            n += len(batch["y"])
        counts.append(n)
    total = per_epoch or len(dm.dataset("train"))
    assert counts[0] == counts[1] == (total + 1) // 2


@pytest.mark.slow
def test_two_ddp_spawn_ranks_train_a_panel():
    from lstm_lab.training.entry import run_training
    from lstm_lab.training.forecast.task import TASK

    p = panel_params(training={"batch_size": 32, "trainer": {"accelerator": "cpu", "devices": 2,
                                                              "strategy": "ddp_spawn"}})
    clean = nodes.clean(hourly_panel(), p)
    scaler = nodes.fit_scaler(clean, nodes.split_series(clean, p), p)
    result = run_training(TASK, p, nodes.training_data(clean, {}, scaler, p))
    assert [row["epoch"] for row in result.history] == [0, 1, 2]
    assert TASK.from_checkpoint(result.checkpoint).hparams["kind"] == "panel"
