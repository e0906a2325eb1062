"""Files the project did not write itself: checkpoints that carry code, garbage, half-written outputs, and
downloads (scheme, total time, files already on disk). None of these may run code, hang a run, or leave a
broken file where a good one was; each problem is one ``LstmLabError`` line. No test touches the network.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import random
import time
import urllib.request
import zipfile

import pandas as pd
import pytest
import torch
from kedro.io import DatasetError

from lstm_lab import io as lio
from lstm_lab.checkpoints import load_checkpoint_file, save_checkpoint
from lstm_lab.data import download
from lstm_lab.datasets import AtomicParquetDataset, TorchCheckpointDataset
from lstm_lab.errors import LstmLabError
from tests.conftest import run_python


def one_line_error(info: pytest.ExceptionInfo) -> str:
    message = str(info.value)
    assert isinstance(info.value, LstmLabError) and message and "\n" not in message, repr(message)
    return message


def leftovers(folder: pathlib.Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


# ------------------------------------------------------------------------------------------------ checkpoints
class _TouchOnLoad:
    """Unpickling this calls ``Path.touch(marker)``: a stand-in for any code a hostile checkpoint could run."""

    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (self.marker,)


@pytest.fixture
def hostile_checkpoint(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "model.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(2)}, "hyper_parameters": _TouchOnLoad(marker)}, path)
    return path, marker


def test_a_checkpoint_carrying_code_is_refused_and_never_run(hostile_checkpoint):
    path, marker = hostile_checkpoint
    with pytest.raises(LstmLabError) as info:
        load_checkpoint_file(path)
    message = one_line_error(info)
    assert message.startswith(f"{path}: not a plain model checkpoint") and "refusing to load it" in message
    assert not marker.exists()
    with pytest.raises(LstmLabError) as info:  # the catalog's dataset: the same line, not wrapped by Kedro
        TorchCheckpointDataset(filepath=str(path)).load()
    assert one_line_error(info) == message and isinstance(info.value, DatasetError)
    assert not marker.exists()
    # The payload is real: an unrestricted load runs it. (Only a marker file in tmp_path.)
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_garbage_empty_truncated_and_missing_files_are_one_line_errors(tmp_path):
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(random.Random(0).randbytes(4096))
    empty = tmp_path / "empty.ckpt"
    empty.write_bytes(b"")
    whole = tmp_path / "whole.ckpt"
    save_checkpoint(whole, {"state_dict": torch.nn.Linear(3, 2).state_dict()})
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    for path in (garbage, empty, truncated):
        with pytest.raises(LstmLabError) as info:
            load_checkpoint_file(path)
        assert one_line_error(info).startswith(f"{path}: not a plain model checkpoint")
    with pytest.raises(LstmLabError, match=r"absent\.ckpt: checkpoint file not found$"):
        load_checkpoint_file(tmp_path / "absent.ckpt")
    with pytest.raises(LstmLabError, match=r"absent\.ckpt: checkpoint file not found$"):
        TorchCheckpointDataset(filepath=str(tmp_path / "absent.ckpt")).load()


def test_a_plain_checkpoint_round_trips_with_name_independent_bytes(tmp_path):
    torch.manual_seed(0)
    layer = torch.nn.Linear(3, 2)
    checkpoint = {"state_dict": layer.state_dict(), "epoch": 3,
                  "hyper_parameters": {"hidden_sizes": [8, 4], "lr": 1e-3, "name": "lstm", "extra": None}}
    save_checkpoint(tmp_path / "a.ckpt", checkpoint)
    TorchCheckpointDataset(filepath=str(tmp_path / "sub" / "other_name.ckpt")).save(checkpoint)
    assert (tmp_path / "a.ckpt").read_bytes() == (tmp_path / "sub" / "other_name.ckpt").read_bytes()
    for loaded in (load_checkpoint_file(tmp_path / "a.ckpt"),
                   TorchCheckpointDataset(filepath=str(tmp_path / "sub" / "other_name.ckpt")).load()):
        assert loaded["hyper_parameters"] == checkpoint["hyper_parameters"] and loaded["epoch"] == 3
        assert all(torch.equal(loaded["state_dict"][k], v) for k, v in layer.state_dict().items())
    assert leftovers(tmp_path) == [] and leftovers(tmp_path / "sub") == []


# ------------------------------------------------------------------------------------------------ atomic writes
def test_a_write_that_fails_half_way_keeps_the_previous_file(tmp_path):
    target = tmp_path / "report.json"
    lio.write_json(target, {"good": 1})
    before = target.read_bytes()
    with pytest.raises(RuntimeError, match="disk died"):
        with lio.atomic_path(target) as tmp:
            tmp.write_bytes(b'{"half": ')
            raise RuntimeError("disk died")
    assert target.read_bytes() == before and leftovers(tmp_path) == []
    with pytest.raises(TypeError):
        lio.write_json(target, {"not json": object()})
    assert target.read_bytes() == before and leftovers(tmp_path) == []


def test_a_checkpoint_save_that_fails_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "model.ckpt"
    save_checkpoint(path, {"epoch": 1})
    before = path.read_bytes()

    def half_then_fail(self, data):  # the writer dies after half of the bytes
        with open(self, "wb") as out:
            out.write(data[: len(data) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pathlib.Path, "write_bytes", half_then_fail)
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint(path, {"epoch": 2, "state_dict": {"w": torch.ones(1000)}})
    monkeypatch.undo()
    assert path.read_bytes() == before and load_checkpoint_file(path) == {"epoch": 1}
    assert leftovers(tmp_path) == []


def test_parquet_output_is_atomic_and_byte_identical_to_pandas(tmp_path, monkeypatch):
    frame = pd.DataFrame({"date": pd.date_range("2000-01-01", periods=50, freq="W"), "co2": range(50)})
    dataset = AtomicParquetDataset(filepath=str(tmp_path / "clean.parquet"))
    dataset.save(frame)
    frame.to_parquet(tmp_path / "by_pandas.parquet")  # what kedro-datasets' pandas.ParquetDataset writes
    assert (tmp_path / "clean.parquet").read_bytes() == (tmp_path / "by_pandas.parquet").read_bytes()
    pd.testing.assert_frame_equal(dataset.load(), frame)

    def half_then_fail(self, path, **kwargs):
        pathlib.Path(path).write_bytes(b"PAR1 half a file")
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", half_then_fail)
    with pytest.raises(DatasetError, match="Input/output error"):
        dataset.save(frame.head(3))
    monkeypatch.undo()
    pd.testing.assert_frame_equal(dataset.load(), frame)
    assert leftovers(tmp_path) == []


def test_the_temporary_file_is_fsynced_before_it_replaces_the_target(tmp_path, monkeypatch):
    calls = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        calls.append(("fsync", os.fstat(fd).st_ino))
        real_fsync(fd)

    def replace(src, dst):
        calls.append(("replace", os.stat(src).st_ino))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    lio.write_text(tmp_path / "out.txt", "x")
    assert calls[:2] == [("fsync", calls[1][1]), ("replace", calls[1][1])]  # the same (temporary) file

    def failing_fsync(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing_fsync)  # the bytes never reached the disk: the target is kept
    with pytest.raises(OSError, match="Input/output error"):
        lio.write_bytes(tmp_path / "out.txt", b"y")
    assert (tmp_path / "out.txt").read_text() == "x" and leftovers(tmp_path) == []


def test_written_files_get_ordinary_permissions(tmp_path):
    umask = os.umask(0)
    os.umask(umask)
    lio.write_text(tmp_path / "new.json", "{}")
    assert (tmp_path / "new.json").stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's private 0600
    (tmp_path / "kept.json").write_text("{}")
    (tmp_path / "kept.json").chmod(0o640)
    lio.write_text(tmp_path / "kept.json", "[]")
    assert (tmp_path / "kept.json").stat().st_mode & 0o777 == 0o640  # a replaced file keeps its mode


# ------------------------------------------------------------------------------------------------ downloads
@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the test tried to open a connection")

    monkeypatch.setattr(download, "_open", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("url", ["http://example.com/SST-2.zip", "ftp://example.com/SST-2.zip",
                                 "data/01_raw/SST-2.zip", "HTTP://localhost/SST-2.zip"])
def test_only_https_or_file_urls_are_fetched(tmp_path, no_network, url):
    with pytest.raises(LstmLabError) as info:
        download.fetch(url, "0" * 64, tmp_path / "SST-2.zip")
    assert one_line_error(info) == f"{url}: not an https:// URL; downloads are fetched over https:// only " \
                                   "(file:// for a local file)"
    with pytest.raises(LstmLabError, match="not an https:// URL"):  # a catalog entry fails when it is read
        download.Source.from_dict({"url": url, "checksum": "0" * 64, "to": str(tmp_path / "x")})
    assert not (tmp_path / "SST-2.zip").exists()
    for fine in ("https://example.com/a.zip", (tmp_path / "a.zip").as_uri(), "http://127.0.0.1:8000/a.zip"):
        assert download.check_url(fine) == fine


def test_a_redirect_to_plain_http_is_not_followed():
    request = urllib.request.Request("https://example.com/SST-2.zip")
    with pytest.raises(LstmLabError, match=r"^https://example\.com/SST-2\.zip: redirects to http://evil\.example/x, "
                                           r"which is not an https:// URL; refusing to follow it$"):
        download._CheckedRedirects().redirect_request(request, None, 302, "Found", {}, "http://evil.example/x")


def test_a_download_that_takes_too_long_stops_and_saves_nothing(tmp_path, monkeypatch):
    class Trickle:  # a server that sends a few bytes now and then, forever
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def read1(self, size):
            time.sleep(0.02)
            return b"x" * 10

    opened = []
    monkeypatch.setattr(download, "_open", lambda url, timeout: opened.append(timeout) or Trickle())
    dest = tmp_path / "raw" / "big.zip"
    url = "https://example.com/big.zip"
    start = time.monotonic()
    with pytest.raises(download.DownloadError) as info:
        download.fetch(url, "0" * 64, dest, timeout=60, time_limit=0.3)
    assert time.monotonic() - start < 5
    message = one_line_error(info)
    assert message.startswith(f"{url}: download took longer than 0.3 s") and str(dest) in message
    assert opened == [0.3]  # no single read may wait longer than the whole limit either
    assert not dest.exists() and leftovers(dest.parent) == []


def test_a_file_url_is_fetched_within_the_time_limit(tmp_path):
    upstream = tmp_path / "upstream.txt"
    upstream.write_bytes(b"hello\n" * 1000)
    dest = tmp_path / "raw" / "input.txt"
    assert download.fetch(upstream.as_uri(), sha256(upstream.read_bytes()), dest, time_limit=30) == dest
    assert dest.read_bytes() == upstream.read_bytes() and leftovers(dest.parent) == []


def test_a_file_already_there_is_checked_against_the_declared_checksum(tmp_path, no_network):
    good = b"sentence\tlabel\nfine\t1\n"
    cached = tmp_path / "train.tsv"
    cached.write_bytes(good)
    source = download.Source("https://example.com/train.tsv", sha256(good), cached)
    assert source.ensure() == [cached]  # matches: no request
    cached.write_bytes(good.replace(b"1", b"0"))  # tampered with, or a different file of the same name
    with pytest.raises(LstmLabError) as info:
        download.ensure([source])
    assert one_line_error(info).startswith(f"{cached}: exists but its sha256 is not {sha256(good)}")


def test_extracted_files_are_compared_with_the_checked_archive(tmp_path, no_network):
    archive = tmp_path / "SST-2.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("SST-2/train.tsv", "sentence\tlabel\ngood\t1\n")
    target = tmp_path / "SST-2" / "train.tsv"
    source = download.Source("https://example.com/SST-2.zip", sha256(archive.read_bytes()), archive,
                             {"SST-2/train.tsv": target})
    assert source.ensure() == [target]  # cached archive checked, member extracted, no request
    assert target.read_text() == "sentence\tlabel\ngood\t1\n"
    assert source.ensure() == [target]  # again: the extracted file matches the member
    target.write_text("sentence\tlabel\nbad\t0\n")
    with pytest.raises(LstmLabError) as info:
        source.ensure()
    assert one_line_error(info).startswith(f"{target}: exists but differs from SST-2/train.tsv in {archive}")
    archive.unlink()  # extracted by hand, no archive: nothing declared to check them against, used as they are
    assert source.ensure() == [target]


# ------------------------------------------------------------------------------------------------ imports
def test_the_data_helpers_do_not_import_kedro_torch_or_pandas():
    code = ("import sys, lstm_lab.io, lstm_lab.checkpoints, lstm_lab.data.download, lstm_lab.data.text, "
            "lstm_lab.data.chars; "
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('kedro', 'torch', 'pandas')); "
            "assert not heavy, heavy")
    done = run_python(code)
