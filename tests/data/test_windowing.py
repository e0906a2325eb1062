"""Windowing against a plain reference loop, and the split rules: inputs may look back, targets never cross."""

import numpy as np
import pytest
import torch

from lstm_lab.data.windowing import WindowDataset, already_batched, gather, target_starts


def reference_windows(series, span, lookback, horizon, stride):
    """The obvious loop: every t in the split whose targets fit, inputs L rows before t."""
    a, b = span
    xs, ys, ts = [], [], []
    t = max(a, lookback)
    while t + horizon <= b:
        xs.append(series[t - lookback : t])
        ys.append(series[t : t + horizon])
        ts.append(t)
        t += stride
    return np.array(xs), np.array(ys), ts


@pytest.mark.parametrize("span", [(0, 60), (40, 80), (75, 100)])
@pytest.mark.parametrize("lookback,horizon,stride", [(5, 3, 1), (10, 1, 2), (1, 7, 3), (20, 5, 1)])
def test_windows_match_reference_loop(span, lookback, horizon, stride):
    rng = np.random.default_rng(0)
    series = rng.normal(size=(100, 3)).astype(np.float32)
    ref_x, ref_y, ref_t = reference_windows(series, span, lookback, horizon, stride)
    starts = target_starts(span, lookback, horizon, stride)
    assert starts.tolist() == ref_t
    ds = WindowDataset(series, series[:, :2], starts, lookback, horizon)
    assert len(ds) == len(ref_t)
    if not ref_t:
        return
    loader = torch.utils.data.DataLoader(ds, batch_size=7, collate_fn=already_batched)
    xs, ys = zip(*loader)
    np.testing.assert_array_equal(torch.cat(xs).numpy(), ref_x)
    np.testing.assert_array_equal(torch.cat(ys).numpy(), ref_y[:, :, :2])
    x0, y0 = ds[0]
    np.testing.assert_array_equal(x0.numpy(), ref_x[0])


def test_targets_never_cross_split_and_inputs_reach_back():
    lookback, horizon = 12, 4
    val = (50, 80)
    starts = target_starts(val, lookback, horizon)
    assert starts.min() == 50 and starts.max() + horizon == 80  # targets exactly fill [50, 80)
    assert (starts - lookback).min() == 38  # first val window's inputs come from train rows 38..49


def test_no_window_when_split_too_short():
    assert target_starts((0, 10), lookback=8, horizon=3).size == 0


def test_dataset_keeps_one_copy_of_the_series():
    series = np.arange(10_000, dtype=np.float32)[:, None]
    starts = target_starts((0, 10_000), 100, 10)
    ds = WindowDataset(series, series, starts, 100, 10)
    # Only the series and the start rows are held: no (n_windows, L) array is materialised.
    held = ds.inputs.numel() + ds.targets.numel() + ds.starts.size
    assert held < 3 * len(series)
    x, y = ds.__getitems__([0, 5])
    assert x.shape == (2, 100, 1) and y.shape == (2, 10, 1)


def test_gather_numpy_and_torch_agree():
    values = np.arange(30, dtype=np.float64).reshape(15, 2)
    rows = np.array([3, 7])
    np.testing.assert_array_equal(gather(values, rows, 4), gather(torch.from_numpy(values), rows, 4).numpy())
    assert gather(values, rows, 2, offset=-2)[1].tolist() == [[10, 11], [12, 13]]
