"""Resident memory of a memory-mapped panel: the pages a read touched are handed back.

A panel whose ``values`` is a ``np.memmap`` of a file is read page by page, and every page a window, a scaler
block or a digest touches stays mapped into the process, counted in its resident memory (RSS), until the map is
closed: after one pass over the panel, the whole file. ``release`` hands such pages back with
``madvise(MADV_DONTNEED)``. For a *shared* file mapping (np.memmap modes 'r', 'r+', 'w+') that only unmaps them
from this process: the data stays in the kernel's page cache and in the file (writes through an 'r+' map
included, since a shared map's pages are the page cache's own), and the next read maps the page again from
the cache (a minor fault; a disk read only if the kernel evicted it meanwhile, as it may under pressure). The
process then holds O(batch) of a panel of any size.

Anything else is left alone and ``release`` returns False: in-memory arrays and copy-on-write ('c') maps, where
the same call would throw data away, and platforms without ``madvise``.
"""

from __future__ import annotations

import mmap

import numpy as np

SHARED_MODES = frozenset({"r", "r+", "w+"})  # np.memmap's normalised modes of a MAP_SHARED mapping


def _shared_map(values: np.ndarray) -> mmap.mmap | None:
    """The shared file mapping under ``values``, or None when dropping its pages could lose data."""
    if not isinstance(values, np.memmap) or getattr(values, "mode", None) not in SHARED_MODES:
        return None
    mm = getattr(values, "_mmap", None)  # np.memmap's map object, shared by its views
    if not isinstance(mm, mmap.mmap) or mm.closed or not hasattr(mm, "madvise"):
        return None
    return mm if hasattr(mmap, "MADV_DONTNEED") else None


def release(values: np.ndarray, start_row: int = 0, stop_row: int | None = None) -> bool:
    """Drop the pages of rows ``[start_row, stop_row)`` of ``values`` (all rows by default) from this process's
    resident memory, keeping their data (see the module docstring). True when pages were handed back."""
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
