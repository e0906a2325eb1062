"""Atomic file writes and one-line-error JSON reads, in plain standard library.

Everything the project keeps on disk (checkpoints, vocabularies, reports, downloaded corpora) goes through
``atomic_path``: the bytes are written to a temporary file beside the target, flushed to disk with ``fsync``,
and only then moved over the target with ``os.replace``. A run that dies half-way (a crash, a full disk, a
killed job, a power cut) never leaves a truncated file where a complete one is expected, and the previous good
file stays in place until the new one is complete.

This module imports nothing but the standard library (no Kedro, pandas or torch) so that ``lstm_lab.data``
and the serving code can use it without pulling Kedro in, and ``lstm_lab.datasets`` (the Kedro adapters) can
import it without an import cycle.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lstm_lab.errors import LstmLabError

__all__ = ["atomic_path", "read_json", "write_bytes", "write_json", "write_text"]


def _fsync_file(path: str | Path) -> None:
    """Force ``path``'s bytes to disk: without it a rename can reach the disk before the data it names."""
    fd = os.open(path, os.O_RDWR)  # Windows refuses to fsync a read-only descriptor
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_directory(path: Path) -> None:
    """Make a rename in ``path`` durable; best effort (not every platform can open a directory)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; move it over ``target`` only if the block succeeds.

    The block writes the temporary file and closes it; it is then fsynced and renamed over ``target``. On any
    error the temporary file is removed and ``target`` keeps its previous content (or stays absent).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _create_temporary(target)
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, target)
        _fsync_directory(target.parent)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _create_temporary(target: Path) -> Path:
    """A new empty file beside ``target`` with the permissions a plain ``open(target, "w")`` would leave.

    Same folder: ``os.replace`` is atomic only within one file system. Not ``tempfile.mkstemp``: its files are
    private (0600), and the rename would hand that mode to a model or report that other users, a serving
    container or a DVC remote must read. A new file gets 0666 less the umask; a replaced one keeps its mode.
    """
    for _ in range(100):
        tmp = target.parent / f".{target.name}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        try:
            if target.is_file():
                os.chmod(tmp, stat.S_IMODE(target.stat().st_mode))
        except BaseException:
            tmp.unlink()
            raise
        return tmp
    raise FileExistsError(f"{target.parent}: no free temporary name for {target.name}")


def write_bytes(path: str | Path, data: bytes) -> None:
    """``data`` as the whole content of ``path``, written atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | Path, text: str, encoding: str = "utf-8") -> None:
    """``text`` as the whole content of ``path``, written atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding=encoding)


def write_json(path: str | Path, data: Any) -> None:
    """``data`` as UTF-8 JSON (non-ASCII kept, one-space indent, trailing newline), written atomically."""
    write_text(path, json.dumps(data, ensure_ascii=False, indent=1) + "\n")


def read_json(path: str | Path, what: str = "JSON") -> Any:
    """The JSON in ``path``; a missing file or text that is not JSON is one ``LstmLabError`` line naming it."""
    path = Path(path)
    if not path.is_file():
        raise LstmLabError(f"{path}: {what} file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise LstmLabError(f"{path}: not valid JSON ({exc})") from None
