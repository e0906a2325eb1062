"""Does the process that left something behind still run? One answer for every kind of leftover.

Three things outlive a process killed with ``kill -9``: staged output files (``staging``), MLflow runs left
RUNNING (``tracking.stale``) and scratch checkpoint folders (``training.resume``). Each records its owner's pid
*and start time*, because pids are reused: after a reboot, or on a busy machine, a new process may hold the
dead one's pid, and only its later start time tells them apart. When a process cannot be inspected (another
user's), it counts as running: nothing that may still be in use is ever deleted.

psutil is imported lazily (Kedro datasets import ``staging``, which must stay cheap to import).
"""

from __future__ import annotations

import os

# Start times are recorded rounded (to the second in folder names, 1/100 s in run tags): within this many
# seconds of the recorded value, it is the same process.
SAME_START_S = 1.0


def start_time(pid: int | None = None) -> float | None:
    """When process ``pid`` (default: this one) started, in seconds since the epoch; None if it is gone."""
    import psutil

    try:
        return psutil.Process(pid or os.getpid()).create_time()
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return None
    except psutil.AccessDenied:  # pragma: no cover - exists, but is not ours to inspect
        return None


def is_running(pid: int, started: float | None = None) -> bool:
    """Whether ``pid`` still runs and, when ``started`` is given, is the process that started then."""
    import psutil

    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False  # ended; only its exit status waits to be collected
        return started is None or abs(process.create_time() - float(started)) <= SAME_START_S
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:  # pragma: no cover - exists, but may not be inspected: treat as running
        return True
