"""Resident memory of a memory-mapped panel: windows read from the file, pages a pass touched handed back.

A panel whose ``values`` is a ``np.memmap`` of a file is read page by page, and every page a read touches is
mapped into the process, counted in its resident memory (RSS), until the map is closed. On current kernels a
fault maps the page cache's whole folio (up to 2 MiB) around it: 512 random windows of 384 bytes mapped ~160 MiB
here. Two remedies, both only for a *shared* file mapping (np.memmap modes 'r', 'r+', 'w+'):

- ``read_windows`` reads a batch of windows from the file with ``pread`` into one new array, without touching
  the map: nothing is mapped at all. Writes through the map are in the same page cache, so it reads what they
  wrote. It costs one system call per window, about as much as the faults of a mapped read (~1.5 ms per 512).
- ``release`` hands back the pages of rows a sequential pass has read or written (a scaler block, a digest block)
  with ``madvise(MADV_DONTNEED)``. For a shared map that only unmaps them from this process: the data stays in
  the kernel's page cache and in the file (writes included: a shared map's pages are the page cache's own), and
  the next read maps it again from the cache (a disk read only if the kernel evicted it meanwhile, as it may
  under pressure).

The process then holds O(batch) of a panel of any size. Anything else is read as an array and never released:
in-memory arrays and copy-on-write ('c') maps, where MADV_DONTNEED would throw data away, and platforms without
``madvise`` / ``pread``.
"""

from __future__ import annotations

import mmap
import os

import numpy as np

from lstm_lab.data.windowing import gather

SHARED_MODES = frozenset({"r", "r+", "w+"})  # np.memmap's normalised modes of a MAP_SHARED mapping


def _shared_map(values: np.ndarray) -> mmap.mmap | None:
    """The shared file mapping under ``values``, or None when dropping its pages could lose data."""
    if not isinstance(values, np.memmap) or getattr(values, "mode", None) not in SHARED_MODES:
        return None
    mm = getattr(values, "_mmap", None)  # np.memmap's map object, shared by its views
    if not isinstance(mm, mmap.mmap) or mm.closed or not hasattr(mm, "madvise"):
        return None
    return mm if hasattr(mmap, "MADV_DONTNEED") else None


def _file_position(values: np.ndarray) -> tuple[str, int] | None:
    """(file, byte offset of ``values[0]`` in it) of a shared map of C-ordered rows, else None."""
    mm = _shared_map(values)
    filename = getattr(values, "filename", None)
    row = values.itemsize * (values.shape[1] if values.ndim == 2 else 1)
    if mm is None or filename is None or not hasattr(os, "preadv") or values.strides[0] != row or (
            values.ndim == 2 and values.strides[1] != values.itemsize):
        return None
    # The map starts at np.memmap's ``offset`` rounded down to the allocation granularity; views keep the
    # ``offset`` of the array they come from, so the position is counted from the map's first byte.
    map_start = values.offset - values.offset % mmap.ALLOCATIONGRANULARITY
    base = np.frombuffer(mm, dtype=np.uint8).ctypes.data
    return filename, map_start + values.ctypes.data - base


def read_windows(values: np.ndarray, starts: np.ndarray, length: int) -> np.ndarray:
    """``out[i] = values[starts[i] : starts[i] + length]`` for every i: a new (B, length, F) array. A shared
    memmap is read from its file (``pread``, nothing mapped); any other array by ``windowing.gather``."""
    starts = np.asarray(starts, dtype=np.int64)
    where = _file_position(values)
    if where is None:
        return np.asarray(gather(values, starts, length))
    if starts.size and (starts.min() < 0 or starts.max() + length > len(values)):
        raise IndexError(f"windows of {length} rows from {starts.min()}..{starts.max()}: outside 0..{len(values)}")
    filename, position = where
    out = np.empty((len(starts), length, *values.shape[1:]), dtype=values.dtype)  # (B, length, F)
    row = values.strides[0]
    fd = os.open(filename, os.O_RDONLY)
    try:
        for i, start in enumerate(starts.tolist()):
            buffer = memoryview(out[i]).cast("B")
            if os.preadv(fd, [buffer], position + start * row) != len(buffer):
                raise OSError(f"{filename}: short read at row {start}; was the file truncated?")
    finally:
        os.close(fd)
    return out


def release(values: np.ndarray, start_row: int = 0, stop_row: int | None = None) -> bool:
    """Drop the pages of rows ``[start_row, stop_row)`` of ``values`` (all rows by default) from this process's
    resident memory, keeping their data (see the module docstring). True when pages were handed back.

    A read maps the page cache's whole folio around the page it needs, which may reach into the rows before
    ``start_row``: a sequential pass hands back *all* rows after each block (cheap: ~10 µs when little is
    mapped), or its blocks would leave those edges behind (13 MiB after a scaler pass over 191 MiB)."""
    mm = _shared_map(values)
    if mm is None or values.size == 0:
        return False
    stop_row = len(values) if stop_row is None else stop_row
    if stop_row <= start_row:
        return False
    base = np.frombuffer(mm, dtype=np.uint8).ctypes.data  # where the map starts in memory
    first = values.ctypes.data - base  # byte of values[0] inside the map
    row = values.strides[0]
    start = first + start_row * row
    stop = first + stop_row * row
    start -= start % mmap.PAGESIZE  # whole pages; those shared with neighbouring rows are refetched if read
    stop = min(len(mm), -(-stop // mmap.PAGESIZE) * mmap.PAGESIZE)
    if stop <= start:
        return False
    mm.madvise(mmap.MADV_DONTNEED, start, stop - start)
    return True


def mapped_bytes(values: np.ndarray) -> int | None:
    """Resident bytes of ``values``' file mapping in this process (the ``Rss`` of its entry in
    /proc/self/smaps), for tests and benchmarks; None when ``values`` is not a shared file mapping or the
    platform has no smaps."""
    mm = _shared_map(values)
    if mm is None:
        return None
    address = np.frombuffer(mm, dtype=np.uint8).ctypes.data
    try:
        with open("/proc/self/smaps") as smaps:
            inside = False
            for line in smaps:
                head = line.split()[0]
                if "-" in head and ":" not in head:  # a mapping's first line: "start-end perms ..."
                    lo, hi = (int(x, 16) for x in head.split("-"))
                    inside = lo <= address < hi
                elif inside and head == "Rss:":
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None
