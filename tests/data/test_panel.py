"""Panels: long-frame checks, per-series splits, lazy windows against a plain loop, scaling, calendar features."""

import datetime
import json
import logging
import time
import tracemalloc

import numpy as np
import pandas as pd
import pytest
import torch

from lstm_lab.data.calendar_features import calendar_columns, calendar_features, steps_to_times
from lstm_lab.data.panel import Panel, pad_or_skip_short, split_last, split_times
from lstm_lab.data.panel_scaling import PanelScaler, window_normalise, window_restore
from lstm_lab.data.panel_windows import ForecastOrigins, PanelWindows, already_batched, future_for_origins
from lstm_lab.errors import LstmLabError

C, P, U = 2, 1, 2  # targets, past covariates, future covariates


def random_panel(lengths, seed=0, val=5, test=4):
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(sum(lengths), C + P + U)).astype(np.float32)
    panel = Panel.from_arrays(values, lengths, ids=[f"s{k}" for k in range(len(lengths))],
                              target_columns=("y0", "y1"), past_columns=("p",), future_columns=("f0", "f1"))
    return panel.with_bounds(split_last(panel.lengths, val, test))


def reference_windows(panel, split, lookback, horizon, stride):
    """The obvious loop over series and first-target rows."""
    out = []
    for s in range(panel.n_series):
        series = panel.values[panel.offsets[s] : panel.offsets[s + 1]]
        k = ("train", "val", "test").index(split)
        a, b = (0 if k == 0 else panel.bounds[s, k - 1]), panel.bounds[s, k]
        t = max(a, lookback)
        while t + horizon <= b:
            out.append((s, t, series[t - lookback : t, : C + P], series[t : t + horizon, C + P :],
                        series[t : t + horizon, :C]))
            t += stride
    return out


def long_frame():
    rows = [{"id": sid, "ts": pd.Timestamp("2021-03-01") + pd.Timedelta(hours=t), "y": 100.0 * k + t, "p": -t,
             "f": t % 24} for k, (sid, n) in enumerate([("b", 12), ("a", 9), ("c", 15)]) for t in range(n)]
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------------------------
# Windows
# --------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("split", ["train", "val", "test"])
@pytest.mark.parametrize("lookback,horizon,stride", [(5, 3, 1), (10, 1, 2), (1, 4, 3), (20, 2, 1), (3, 1, 5)])
def test_windows_match_reference_loop(split, lookback, horizon, stride):
    panel = random_panel([40, 7, 63, 25, 12, 30, 2], seed=lookback + horizon)
    ref = reference_windows(panel, split, lookback, horizon, stride if split == "train" else 1)
    ds = PanelWindows(panel, split, lookback, horizon, stride=stride if split == "train" else 1)
    assert len(ds) == len(ref)
    if not ref:
        return
    batch = ds.__getitems__(np.arange(len(ds)))
    assert batch["series"].tolist() == [r[0] for r in ref]
    for key, k in (("x", 2), ("future", 3), ("y", 4)):
        np.testing.assert_array_equal(batch[key].numpy(), np.stack([r[k] for r in ref]))
    assert "mask" not in batch and batch["x"].dtype == torch.float32
    # no window crosses its series or its split on the target side
    s, t = ds.locate(np.arange(len(ds)))
    local = t - panel.offsets[s]
    assert local.tolist() == [r[1] for r in ref]
    assert (local - lookback >= 0).all() and (t + horizon <= panel.offsets[s + 1]).all()
    k = ("train", "val", "test").index(split)
    assert (local + horizon <= panel.bounds[s, k]).all()
    if k:
        assert (local >= panel.bounds[s, k - 1]).all()
    # through a DataLoader, and one item at a time
    loader = torch.utils.data.DataLoader(ds, batch_size=7, shuffle=False, collate_fn=already_batched)
    np.testing.assert_array_equal(torch.cat([b["y"] for b in loader]).numpy(), batch["y"].numpy())
    item = ds[len(ds) - 1]
    np.testing.assert_array_equal(item["x"].numpy(), ref[-1][2])
    assert int(item["series"]) == ref[-1][0]


def test_future_is_empty_without_future_covariates():
    values = np.arange(40, dtype=np.float32)[:, None]
    panel = Panel.from_arrays(values, [40], target_columns=("y",)).with_bounds(split_last([40], 5, 5))
    batch = PanelWindows(panel, "train", 4, 2).__getitems__([0, 1])
    assert batch["future"].shape == (2, 2, 0) and batch["x"].shape == (2, 4, 1)
    assert batch["y"][:, :, 0].tolist() == [[4.0, 5.0], [5.0, 6.0]]


def test_index_is_o_of_series_on_a_100k_by_500_memmap(tmp_path, capsys):
    n_series, length, lookback, horizon = 100_000, 500, 48, 12
    mm = np.memmap(tmp_path / "panel.f32", dtype=np.float32, mode="w+", shape=(n_series * length, 3))  # sparse
    mm[7 * length : 8 * length, 0] = np.arange(length)  # one series with known values
    panel = Panel.from_arrays(mm, np.full(n_series, length), target_columns=("y",), past_columns=("p",),
                              future_columns=("f",))
    assert panel.values is mm  # wrapped, not copied
    panel = panel.with_bounds(split_last(panel.lengths, 50, 50))
    tracemalloc.start()
    ds = PanelWindows(panel, "train", lookback, horizon)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    per_series = 400 - lookback - horizon + 1
    assert len(ds) == n_series * per_series  # 34 million windows...
    assert ds.index_nbytes < 20 * n_series * 8  # ...indexed in O(S)
    assert peak < 80 * n_series * 8  # no O(windows) temporary either (that would be > 270 MB)
    batch = ds.__getitems__([7 * per_series + 3, len(ds) - 1])
    assert batch["series"].tolist() == [7, n_series - 1]
    assert batch["y"][0, :, 0].tolist() == list(range(lookback + 3, lookback + 3 + horizon))

    rng = np.random.default_rng(0)
    indices = [rng.integers(0, len(ds), 256) for _ in range(20)]
    rates = []
    for _ in ("cold pages", "warm pages"):  # the first pass faults its pages in from the file
        start = time.perf_counter()
        for idx in indices:
            ds.__getitems__(idx)
        rates.append(20 * 256 / (time.perf_counter() - start))
    with capsys.disabled():
        print(f"\n[panel throughput] __getitems__ batch 256, 100k x 500 memmap panel: {rates[0]:,.0f} windows/s "
              f"(pages cold), {rates[1]:,.0f} windows/s (warm)")


def test_padding_and_its_mask():
    panel = random_panel([40, 9, 30], val=2, test=2)  # train rows 36, 5, 26
    lookback, horizon = 6, 3
    padded = pad_or_skip_short(panel, lookback, horizon, "pad")
    assert padded.pad.tolist() == [0, 4, 0] and padded.lengths.tolist() == [40, 13, 30]
    assert padded.bounds[1].tolist() == [9, 11, 13]
    real = padded.values[padded.offsets[1] + 4 : padded.offsets[2]]
    np.testing.assert_array_equal(real, panel.values[panel.offsets[1] : panel.offsets[2]])
    assert not padded.values[padded.offsets[1] : padded.offsets[1] + 4].any()  # zeros in front
    ds = PanelWindows(padded, "train", lookback, horizon)
    batch = ds.__getitems__(np.arange(len(ds)))
    s, t = ds.locate(np.arange(len(ds)))
    assert (s == 1).sum() == 1  # the padded series has exactly one training window
    for b in range(len(ds)):
        local = t[b] - padded.offsets[s[b]] - lookback + np.arange(lookback)
        assert batch["mask"][b].tolist() == (local >= padded.pad[s[b]]).tolist()
        assert not batch["x"][b][~batch["mask"][b]].any()
    assert batch["mask"][s == 1].tolist() == [[False] * 4 + [True] * 2]
    # val windows of the padded series see real inputs only
    val = PanelWindows(padded, "val", lookback, horizon)
    assert val.__getitems__(np.arange(len(val)))["mask"].all()


def test_short_series_skip_and_pad_log_counts(caplog):
    panel = random_panel([40, 9, 30, 5], val=2, test=2)  # train rows 36, 5, 26, 1
    with caplog.at_level(logging.INFO, logger="lstm_lab.data.panel"):
        skipped = pad_or_skip_short(panel, 6, 3, "skip")
        padded = pad_or_skip_short(panel, 6, 3, "pad")
    assert skipped.ids.tolist() == ["s0", "s2"] and skipped.pad is None
    assert padded.ids.tolist() == ["s0", "s1", "s2"]  # s3 cannot hold 3 real targets after a real input
    assert "dropped 2 of 4 series" in caplog.text and "dropped 1 of 4 series" in caplog.text
    np.testing.assert_array_equal(skipped.values[40:], panel.values[49:79])
    long_enough = random_panel([40, 30])
    assert pad_or_skip_short(long_enough, 6, 3, "skip") is long_enough  # nothing to do: no copy
    with pytest.raises(LstmLabError, match="short_series: 'trim'"):
        pad_or_skip_short(panel, 6, 3, "trim")


def test_forecast_origins_take_the_last_rows_and_given_future():
    panel = random_panel([40, 9, 30])
    future = np.random.default_rng(1).normal(size=(3, 4, U)).astype(np.float32)
    origins = ForecastOrigins(panel, 12, 4, future=future)
    batch = origins.__getitems__([0, 1, 2])
    np.testing.assert_array_equal(batch["x"][0].numpy(), panel.values[40 - 12 : 40, : C + P])
    np.testing.assert_array_equal(batch["x"][1, 3:].numpy(), panel.values[40:49, : C + P])
    assert batch["mask"][1].tolist() == [False] * 3 + [True] * 9 and not batch["x"][1, :3].any()
    np.testing.assert_array_equal(batch["future"].numpy(), future)
    with pytest.raises(LstmLabError, match=r"expected \(3, 4, 2\)"):
        ForecastOrigins(panel, 12, 4, future=future[:, :3])


def test_future_for_origins_from_a_long_frame():
    panel = Panel.from_long(long_frame(), "id", "ts", ["y"], ["p"], ["f"])
    last = {"b": 11, "a": 8, "c": 14, "gone": 0}
    rows = [{"id": i, "ts": pd.Timestamp("2021-03-01") + pd.Timedelta(hours=last[i] + 1 + h), "f": 10 * h}
            for i in ["c", "a", "b", "gone"] for h in range(3)]
    future = future_for_origins(pd.DataFrame(rows), panel, "id", "ts", 3)
    assert future.shape == (3, 3, 1) and future[:, :, 0].tolist() == [[0, 10, 20]] * 3
    with pytest.raises(LstmLabError, match=r"id 'b' has 2 row\(s\); expected 3"):
        future_for_origins(pd.DataFrame(rows[:-4]), panel, "id", "ts", 3)
    early = [dict(r, ts=r["ts"] - pd.Timedelta(hours=1)) if r["id"] == "a" else r for r in rows]
    with pytest.raises(LstmLabError, match=r"id 'a' starts at ts 2021-03-01 08:00:00, not after"):
        future_for_origins(pd.DataFrame(early), panel, "id", "ts", 3)


# --------------------------------------------------------------------------------------------------------------
# Long frames, splits, errors
# --------------------------------------------------------------------------------------------------------------
def test_from_long_sorts_per_id_and_keeps_first_appearance():
    frame = long_frame().sample(frac=1.0, random_state=3)
    panel = Panel.from_long(frame, "id", "ts", ["y"], ["p"], ["f"])
    first = list(dict.fromkeys(frame["id"]))
    assert panel.ids.tolist() == first
    for s, sid in enumerate(first):
        expected = long_frame().query("id == @sid")[["y", "p", "f"]].to_numpy(np.float32)
        np.testing.assert_array_equal(panel.values[panel.offsets[s] : panel.offsets[s + 1]], expected)
        assert (np.diff(panel.times[panel.offsets[s] : panel.offsets[s + 1]]) > np.timedelta64(0)).all()
    assert panel.columns == ("y", "p", "f") and (panel.n_targets, panel.n_inputs, panel.n_future) == (1, 2, 1)


def test_split_times_and_split_last():
    panel = Panel.from_long(long_frame(), "id", "ts", ["y"], ["p"], ["f"])  # lengths b 12, a 9, c 15
    bounds = split_times(panel.times, panel.offsets, "2021-03-01 06:00", "2021-03-01 08:00")
    assert bounds.tolist() == [[6, 8, 12], [6, 8, 9], [6, 8, 15]]
    bounds = split_times(panel.times, panel.offsets, "2021-03-01 06:00", "2021-03-01 08:00", "2021-03-01 10:00")
    assert bounds[:, 2].tolist() == [10, 9, 10]
    assert split_last(panel.lengths, 3, 2).tolist() == [[7, 10, 12], [4, 7, 9], [10, 13, 15]]
    assert split_last([4], 3, 2).tolist() == [[0, 2, 4]]  # too short: empty train, dropped later
    with pytest.raises(LstmLabError, match="must increase"):
        split_times(panel.times, panel.offsets, "2021-03-01 08:00", "2021-03-01 06:00")
    steps = np.tile(np.arange(10), 2)
    assert split_times(steps, np.array([0, 10, 20]), 6, 8).tolist() == [[6, 8, 10], [6, 8, 10]]


@pytest.mark.parametrize("change, message", [
    (lambda f: pd.concat([f, f.iloc[[3]]]), r"duplicate \(id, time\) pair: id 'b' at ts 2021-03-01 03:00:00"),
    (lambda f: f.assign(y=f["y"].where(f.index != 14, np.nan)),
     r"target 'y' is missing at id 'a', ts 2021-03-01 02:00"),
    (lambda f: f.assign(y=f["y"].where(f.index != 14, np.inf)), r"target 'y' is infinite .* at id 'a'"),
    (lambda f: f.assign(f=f["f"].where(f.index != 25, np.nan)),
     r"future covariate 'f' is missing at id 'c', ts 2021-03-01 04:00:00; future-known covariates must be given"),
    (lambda f: pd.concat([f, f.iloc[[0]].assign(id="lonely")]), r"id 'lonely' has a single row"),
    (lambda f: f.assign(p=f["p"].astype(object).where(f.index != 2, "x?")), r"column 'p' row 2: 'x\?' is not a number"),
    (lambda f: f.drop(columns="f"), r"column 'f' not found"),
])
def test_from_long_errors_name_id_time_and_column(change, message):
    with pytest.raises(LstmLabError, match=message) as info:
        Panel.from_long(change(long_frame()), "id", "ts", ["y"], ["p"], ["f"], source="shop.csv")
    assert str(info.value).startswith("shop.csv: ") and "\n" not in str(info.value)


def test_integer_steps_and_integer_ids():
    frame = pd.DataFrame({"id": [7, 7, 7, 3, 3], "t": [2, 0, 1, 5, 6], "y": [2.0, 0.0, 1.0, 5.0, 6.0]})
    panel = Panel.from_long(frame, "id", "t", ["y"])
    assert panel.ids.tolist() == [7, 3] and panel.values[:, 0].tolist() == [0, 1, 2, 5, 6]
    assert panel.times.dtype == np.int64
    floats = Panel.from_long(frame.assign(t=frame["t"].astype(float)), "id", "t", ["y"])
    assert floats.times.dtype == np.int64 and floats.times.tolist() == [0, 1, 2, 5, 6]
    with pytest.raises(LstmLabError, match=r"column 't' row 1: 0.5 is not a whole time step"):
        Panel.from_long(frame.assign(t=[2, 0.5, 1, 5, 6]), "id", "t", ["y"])
    with pytest.raises(LstmLabError, match=r"id 7 at t 1 appears more than once"):
        Panel.from_long(pd.concat([frame, frame.iloc[[2]]]), "id", "t", ["y"])


# --------------------------------------------------------------------------------------------------------------
# Scaling
# --------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["standard", "robust", "mase", "mean_abs"])
def test_scaler_uses_training_rows_only(method):
    panel = random_panel([40, 19, 30, 25], val=5, test=4)
    scaler = PanelScaler.fit(panel, method, covariates=["p"])
    for s in range(panel.n_series):
        train = panel.values[panel.offsets[s] : panel.offsets[s] + panel.bounds[s, 0], [0, 1, 2]].astype(np.float64)
        if method == "standard":
            center, spread = train.mean(0), train.std(0)
        elif method == "mase":  # the in-sample seasonal naive MAE (season 1 here), the MASE scale
            center, spread = train.mean(0), np.abs(np.diff(train, axis=0)).mean(0)
        elif method == "mean_abs":  # differences: not centred
            center, spread = np.zeros(3), np.abs(train).mean(0)
        else:
            q25, center, q75 = np.quantile(train, [0.25, 0.5, 0.75], axis=0)
            spread = q75 - q25
        np.testing.assert_allclose(scaler.center[s], center, rtol=1e-10)
        np.testing.assert_allclose(scaler.scale[s], spread, rtol=1e-10)
    changed = Panel.from_arrays(panel.values.copy(), panel.lengths, panel.ids, target_columns=panel.target_columns,
                                past_columns=panel.past_columns, future_columns=panel.future_columns)
    changed = changed.with_bounds(panel.bounds)
    for s in range(panel.n_series):  # val and test rows change wildly
        changed.values[panel.offsets[s] + panel.bounds[s, 0] : panel.offsets[s + 1]] *= 1000.0
    again = PanelScaler.fit(changed, method, covariates=["p"], max_rows=17)  # also: small blocks, same result
    np.testing.assert_allclose(again.center, scaler.center, rtol=1e-12)
    np.testing.assert_allclose(again.scale, scaler.scale, rtol=1e-12)


def test_scaler_transform_inverse_state_and_padding(tmp_path):
    panel = pad_or_skip_short(random_panel([40, 9, 30], val=2, test=2), 6, 3, "pad")
    constant = panel.values.copy()
    constant[panel.offsets[2] :, 0] = 5.0
    panel = Panel(constant, panel.offsets, panel.ids, panel.target_columns, panel.past_columns,
                  panel.future_columns, bounds=panel.bounds, pad=panel.pad)
    scaler = PanelScaler.fit(panel, "standard")
    assert scaler.scale[2, 0] == 1.0 and scaler.center[2, 0] == 5.0  # std 0 → 1
    scaled = scaler.transform(panel)
    assert scaled.values is not panel.values
    assert not scaled.values[panel.offsets[1] : panel.offsets[1] + 4].any()  # padding stays zero
    np.testing.assert_array_equal(scaled.values[:, C:], panel.values[:, C:])  # covariates untouched
    series = np.array([0, 1, 2])
    y = np.stack([scaled.values[panel.offsets[s + 1] - 3 : panel.offsets[s + 1], :C] for s in series])  # (3, 3, C)
    expected = np.stack([panel.values[panel.offsets[s + 1] - 3 : panel.offsets[s + 1], :C] for s in series])
    np.testing.assert_allclose(scaler.inverse(y, series), expected, rtol=1e-5, atol=1e-5)
    torch_back = scaler.inverse(torch.from_numpy(y), torch.from_numpy(series))
    np.testing.assert_allclose(torch_back.numpy(), expected, rtol=1e-5, atol=1e-5)
    restored = PanelScaler.from_dict(json.loads(json.dumps(scaler.as_dict())))
    np.testing.assert_array_equal(restored.center, scaler.center)
    assert restored.ids == ("s0", "s1", "s2") and restored.columns == ("y0", "y1")
    assert restored.align(["s2", "s0"]).center.tolist() == scaler.center[[2, 0]].tolist()
    with pytest.raises(LstmLabError, match="id 'nope' was not in the training panel"):
        restored.align(["nope"])
    # in place on a memmap opened for writing
    mm = np.memmap(tmp_path / "v.f32", dtype=np.float32, mode="w+", shape=panel.values.shape)
    mm[:] = panel.values
    on_disk = Panel(mm, panel.offsets, panel.ids, panel.target_columns, panel.past_columns, panel.future_columns,
                    bounds=panel.bounds, pad=panel.pad)
    assert scaler.transform(on_disk, inplace=True, max_rows=20).values is mm
    np.testing.assert_allclose(mm, scaled.values, rtol=1e-6, atol=1e-6)


def test_window_normalisation_and_restore():
    x = torch.tensor([[[1.0, 10.0], [2.0, 20.0], [6.0, 30.0]]])  # (1, 3, 2): one target, one covariate
    y = torch.tensor([[[7.0], [8.0]]])
    x_last, y_last, shift = window_normalise(x, y, "window_last", 1)
    assert shift.tolist() == [[[6.0]]] and x_last[0, :, 0].tolist() == [-5, -4, 0]
    assert y_last.flatten().tolist() == [1, 2]
    assert x_last[0, :, 1].tolist() == [10, 20, 30]
    mask = torch.tensor([[False, True, True]])
    x_mean, _, shift = window_normalise(x, y, "window_mean", 1, mask=mask)
    assert shift.item() == 4.0 and x_mean[0, :, 0].tolist() == [0, -2, 2]
    assert torch.equal(window_restore(y_last, window_normalise(x, y, "window_last", 1)[2]), y)
    with pytest.raises(LstmLabError, match="'window_max'"):
        window_normalise(x, y, "window_max", 1)


# --------------------------------------------------------------------------------------------------------------
# Calendar features
# --------------------------------------------------------------------------------------------------------------
def test_calendar_features_from_timestamps():
    times = pd.Series(pd.to_datetime(["2024-01-01 00:00", "2024-01-01 06:00", "2024-02-29 18:00", "2024-12-31 23:00"]))
    feats = calendar_features(times)
    assert list(feats.columns) == calendar_columns() and feats.dtypes.unique().tolist() == [np.float32]
    angle = np.arctan2(feats["hour_sin"], feats["hour_cos"]) % (2 * np.pi)
    np.testing.assert_allclose(angle * 24 / (2 * np.pi), [0, 6, 18, 23], atol=1e-4)
    dow = np.round(np.arctan2(feats["day_of_week_sin"], feats["day_of_week_cos"]) % (2 * np.pi) * 7 / (2 * np.pi))
    assert dow.tolist() == [0, 0, 3, 1]  # Monday, Monday, Thursday, Tuesday
    month = np.round(np.arctan2(feats["month_sin"], feats["month_cos"]) % (2 * np.pi) * 12 / (2 * np.pi)) % 12
    assert month.tolist() == [0, 0, 1, 11]
    dom = np.arctan2(feats["day_of_month_sin"], feats["day_of_month_cos"]) % (2 * np.pi) / (2 * np.pi)
    np.testing.assert_allclose(dom, [0, 0, 28 / 29, 30 / 31], atol=1e-5)
    # neighbours across the wrap stay neighbours: 23:00 is as close to 00:00 as 01:00 is
    wrap = calendar_features(pd.to_datetime(["2024-01-01 23:00", "2024-01-02 00:00", "2024-01-02 01:00"]), ["hour"])
    d = np.linalg.norm(np.diff(wrap.to_numpy(), axis=0), axis=1)
    assert abs(d[0] - d[1]) < 1e-6


def test_calendar_features_from_integer_steps():
    t = np.arange(24 * 9)
    hourly = calendar_features(t, ["hour", "day_of_week"], frequency="h", start="1970-01-01")
    np.testing.assert_array_equal(hourly["hour_sin"].to_numpy()[:24], hourly["hour_sin"].to_numpy()[24:48])
    np.testing.assert_allclose(hourly["hour_sin"], np.sin(2 * np.pi * (t % 24) / 24), atol=1e-6)
    np.testing.assert_allclose(hourly["day_of_week_sin"], np.sin(2 * np.pi * ((t // 24 + 3) % 7) / 7), atol=1e-6)
    stamps = pd.Timestamp("1970-01-01") + pd.to_timedelta(t, unit="h")
    pd.testing.assert_frame_equal(hourly, calendar_features(stamps, ["hour", "day_of_week"]))
    monthly = calendar_features(np.arange(30), ["month"], frequency="MS", start="2000-01-01")
    np.testing.assert_allclose(monthly["month_cos"], np.cos(2 * np.pi * (np.arange(30) % 12) / 12), atol=1e-6)
    for freq in ("h", "15min", "D", "W", "W-MON", "MS", "ME", "QS", "QE", "YS", "YE", "2MS"):
        expected = pd.date_range("2000-01-15 06:00", periods=30, freq=freq).to_numpy("datetime64[s]")
        np.testing.assert_array_equal(steps_to_times(np.arange(30), freq, "2000-01-15 06:00"), expected)
    far = datetime.datetime(1970, 1, 1) + datetime.timedelta(hours=10**7)  # past datetime64[ns]'s year 2262
    assert steps_to_times([10**7], "h")[0] == np.datetime64(far, "s")
    with pytest.raises(LstmLabError, match="need a frequency"):
        calendar_features(t, ["hour"])
    with pytest.raises(LstmLabError, match="unknown feature 'week'"):
        calendar_features(t, ["week"], frequency="h")
