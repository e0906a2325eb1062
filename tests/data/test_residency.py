"""Pages of a memory-mapped panel handed back after reading: data kept, process memory O(batch)."""

from __future__ import annotations


import numpy as np
import pytest

from lstm_lab.data.panel import Panel, split_last
from lstm_lab.data.panel_scaling import PanelScaler
from lstm_lab.data.panel_windows import ForecastOrigins, PanelWindows
from lstm_lab.data.residency import mapped_bytes, read_windows, release
from lstm_lab.training.resume import data_digest
from tests.conftest import run_python

MiB = 1 << 20


def _file(tmp_path, rows: int, cols: int = 2) -> np.ndarray:
    path = tmp_path / "values.f32"
    out = np.memmap(path, dtype=np.float32, mode="w+", shape=(rows, cols))
    out[:] = np.arange(rows * cols, dtype=np.float32).reshape(rows, cols) % 1000
    out.flush()
    del out
    return np.memmap(path, dtype=np.float32, mode="r+", shape=(rows, cols))


def test_release_unmaps_read_and_written_pages_and_keeps_their_data(tmp_path):
    values = _file(tmp_path, 4_000_000)  # 30.5 MiB
    if mapped_bytes(values) is None:
        pytest.skip("no /proc/self/smaps on this platform")
    values[1_000_000:1_000_010] = -1.0  # written through the shared map
    before = np.array(values)  # reads every page: all of them mapped into this process
    assert mapped_bytes(values) > 25 * MiB
    assert release(values)
    assert mapped_bytes(values) < MiB
    np.testing.assert_array_equal(values, before)  # read again from the page cache: the same data
    assert values[1_000_005].tolist() == [-1.0, -1.0]  # the write survived the release
    reopened = np.memmap(values.filename, dtype=np.float32, mode="r", shape=values.shape)
    assert reopened[1_000_005].tolist() == [-1.0, -1.0] and reopened[3].tolist() == [6.0, 7.0]  # and is in the file
    # a row range: only its pages go
    release(values)
    values[:].sum()
    assert release(values, 0, 2_000_000)
    assert 13 * MiB < mapped_bytes(values) < 17 * MiB  # the second half stays mapped


def test_in_memory_and_copy_on_write_arrays_are_never_touched(tmp_path):
    memory = np.arange(10, dtype=np.float32).reshape(5, 2)
    assert not release(memory) and memory.sum() == 45
    values = _file(tmp_path, 1000)
    private = np.memmap(values.filename, dtype=np.float32, mode="c", shape=values.shape)
    private[0] = 99.0  # a private change, which MADV_DONTNEED would discard
    assert not release(private) and private[0].tolist() == [99.0, 99.0]
    assert values[0].tolist() == [0.0, 1.0]  # never reached the file


def test_a_view_releases_its_own_rows(tmp_path):
    values = _file(tmp_path, 4_000_000)
    if mapped_bytes(values) is None:
        pytest.skip("no /proc/self/smaps on this platform")
    values.sum()
    view = values[2_000_000:]
    assert release(view, 0, 1_000_000)  # rows 2,000,000..3,000,000 of the file
    assert 21 * MiB < mapped_bytes(values) < 24 * MiB
    assert view[0].tolist() == values[2_000_000].tolist()


def test_windows_are_read_from_the_file_without_mapping_it(tmp_path):
    """A batch of random windows: equal to fancy indexing, for the whole map, a view of it and a map that
    starts at a byte offset into its file; nothing mapped afterwards; writes through the map are seen."""
    values = _file(tmp_path, 4_000_000, cols=3)
    if mapped_bytes(values) is None:
        pytest.skip("no /proc/self/smaps on this platform")
    values[123_456] = [-5.0, -6.0, -7.0]  # through the map, not yet flushed
    rng = np.random.default_rng(0)
    starts = np.concatenate([[123_400, 0, len(values) - 96], rng.integers(0, len(values) - 96, 509)])
    expected = np.asarray(values)[starts[:, None] + np.arange(96)]  # (512, 96, 3)
    release(values)
    got = read_windows(values, starts, 96)
    assert got.shape == (512, 96, 3) and type(got) is np.ndarray
    np.testing.assert_array_equal(got, expected)
    assert got[0, 56].tolist() == [-5.0, -6.0, -7.0]
    assert mapped_bytes(values) < 64 << 10  # a mapped read of these windows maps ~100 MiB on kernel 6.18
    view = values[1_000_000:]
    np.testing.assert_array_equal(read_windows(view, starts[3:] // 2, 96),
                                  np.asarray(values)[1_000_000 + starts[3:, None] // 2 + np.arange(96)])
    header = 1000 * 12  # a map that starts 1,000 rows into the file: not a multiple of the page size
    shifted = np.memmap(values.filename, dtype=np.float32, mode="r", offset=header, shape=(3_000_000, 3))
    np.testing.assert_array_equal(read_windows(shifted, starts[3:] // 2, 96),
                                  np.asarray(values)[1000 + starts[3:, None] // 2 + np.arange(96)])
    with pytest.raises(IndexError, match="outside 0..3000000"):
        read_windows(shifted, [2_999_950], 96)
    in_memory = np.array(values[:1000])
    np.testing.assert_array_equal(read_windows(in_memory, [0, 10], 5), in_memory[[[0, 1, 2, 3, 4], range(10, 15)]])


def _panel(values: np.ndarray, length: int) -> Panel:
    n = len(values) // length
    panel = Panel.from_arrays(values, np.full(n, length), target_columns=["y", "p"])
    return panel.with_bounds(split_last(panel.lengths, 24, 24))


def test_scaling_windows_and_the_resume_digest_leave_a_memmapped_panel_unmapped(tmp_path):
    """The three full passes over a panel (scaler fit, in-place scaling, the resume digest) and the batches
    drawn in training end with almost nothing of the file mapped; results equal those on an in-memory copy."""
    values = _file(tmp_path, 2_000_000)  # 15 MiB, 4,000 series of 500 rows
    if mapped_bytes(values) is None:
        pytest.skip("no /proc/self/smaps on this platform")
    memory = np.array(values)
    release(values)
    on_disk, in_memory = _panel(values, 500), _panel(memory, 500)

    scaler = PanelScaler.fit(on_disk, "standard", max_rows=100_000)
    assert mapped_bytes(values) < MiB
    np.testing.assert_array_equal(scaler.center, PanelScaler.fit(in_memory, "standard", max_rows=100_000).center)
    scaled = scaler.transform(on_disk, inplace=True, max_rows=100_000)
    assert scaled.values is values and mapped_bytes(values) < MiB
    reference = scaler.transform(in_memory, max_rows=100_000)
    np.testing.assert_array_equal(np.asarray(values), reference.values)
    release(values)

    digest = data_digest({"panel": scaled})
    assert mapped_bytes(values) < MiB
    assert digest == data_digest({"panel": reference})  # block by block: the same sha256 as in one piece

    windows, reference_windows = PanelWindows(scaled, "train", 72, 24), PanelWindows(reference, "train", 72, 24)
    rng = np.random.default_rng(0)
    for _ in range(5):
        idx = rng.integers(0, len(windows), 256)
        batch, expected = windows.__getitems__(idx), reference_windows.__getitems__(idx)
        assert mapped_bytes(values) < MiB
        for key in expected:
            np.testing.assert_array_equal(batch[key].numpy(), expected[key].numpy())
    origins = ForecastOrigins(scaled, 72, 24).__getitems__(np.arange(100))
    assert mapped_bytes(values) < MiB
    np.testing.assert_array_equal(origins["x"].numpy(),
                                  ForecastOrigins(reference, 72, 24).__getitems__(np.arange(100))["x"].numpy())


def test_the_array_path_of_panels_does_not_import_pandas():
    """Building, scaling, windowing and training a panel from arrays leaves pandas out of the process (~60 MiB;
    benchmarks/results/panel_scale.md): it is imported by the functions that read tables."""
    code = (
        "import sys, numpy as np\n"
        "from lstm_lab.data.panel import Panel, split_last\n"
        "from lstm_lab.data.panel_scaling import PanelScaler\n"
        "from lstm_lab.data.panel_windows import ForecastOrigins, PanelWindows\n"
        "from lstm_lab.training.panel_module import PanelDataModule, PanelModule\n"
        "values = np.random.default_rng(0).normal(size=(600, 1)).astype(np.float32)\n"
        "panel = Panel.from_arrays(values, [300, 300], target_columns=['y'])\n"
        "panel = panel.with_bounds(split_last(panel.lengths, 10, 10))\n"
        "scaler = PanelScaler.fit(panel, 'robust')\n"
        "panel = scaler.transform(panel)\n"
        "PanelWindows(panel, 'train', 24, 10).__getitems__([0, 5]); ForecastOrigins(panel, 24, 10)[1]\n"
        "print('pandas' in sys.modules)\n"
    )
    done = run_python(code)
    assert done.stdout.strip() == "False"
