"""How a training process uses the CPU: how many intra-op threads torch runs, and whether subnormal floats are
flushed to zero.

Threads (``training.num_threads``): a number is used as given. Null means the CPUs this process may use —
its CPU affinity, capped by the cgroup's CPU quota (a container limited to 2 CPUs on a 64-core host gets 2
threads, not 64 that the kernel would throttle) — unless the process is one of several training side by side:
a Ray Tune trial gets its ``resources_per_trial.cpu`` (1 by default) and a DDP rank with siblings on its machine
gets 1, so that N processes do not each start a thread per core.

Subnormal floats (``training.flush_denormal``): an LSTM trained on noisy targets drifts into values below
~1e-38, which many x86 CPUs compute on a slow path (issue 18 measured LSTM training ~12x slower); TensorFlow
flushes them by default, torch does not.
The flag is per thread and a new thread copies its creator's, so torch's intra-op pool only gets it if it is
set before the pool starts — before the first parallel op. Hence the Kedro hook sets it as soon as torch is
imported (:func:`flush_denormal_on_import`), a Ray trial and a DDP rank before they build anything, and
``fit`` once more for callers without either.

torch is imported by the functions that need it: the Kedro hook imports this module at start-up.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CGROUP_ROOT = Path("/sys/fs/cgroup")

# The CPUs of this process when a launcher gave it a share (a Ray trial, a DDP rank); None = it trains alone.
# Kept for the process: the fits a trial runs call apply_runtime again without knowing they are in a trial.
_share_cpus: int | None = None
_logged: tuple[int, bool] | None = None  # the last choice logged: one INFO line per process, not one per fit


def cgroup_cpu_limit(root: Path = CGROUP_ROOT) -> float | None:
    """CPUs the cgroup's quota allows (quota / period), or None when there is no quota or no cgroup to read.

    cgroup v2: ``cpu.max`` holds ``max 100000`` (no quota) or ``<quota> <period>``; cgroup v1:
    ``cpu/cpu.cfs_quota_us`` (-1 = no quota) and ``cpu/cpu.cfs_period_us``.
    """
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    for folder in (root / "cpu", root / "cpu,cpuacct", root):
        try:
            quota_us = int((folder / "cpu.cfs_quota_us").read_text())
            period_us = int((folder / "cpu.cfs_period_us").read_text())
        except (OSError, ValueError):
            continue
        return quota_us / period_us if quota_us > 0 and period_us > 0 else None
    return None


def available_cpus(root: Path = CGROUP_ROOT) -> int:
    """The CPUs this process may use: its affinity, capped by the cgroup quota (rounded down), at least 1."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows: no affinity API
        cpus = os.cpu_count() or 1
    limit = cgroup_cpu_limit(root)
    if limit is not None:
        # Rounded down: a thread beyond the quota is throttled mid-op, and every op waits for its slowest thread.
        cpus = min(cpus, int(limit))
    return max(1, cpus)


def _local_ranks() -> int:
    """Processes of a torchrun job on this machine (1 outside torchrun)."""
    try:
        return max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        return 1


def choose_threads(num_threads: int | None, *, cpus: int | None = None) -> int:
    """``num_threads`` when set; else ``cpus`` (this process's share), else 1 in a torchrun rank with siblings,
    else :func:`available_cpus`."""
    if num_threads:
        return int(num_threads)
    share = cpus if cpus is not None else _share_cpus
    if share is None and _local_ranks() > 1:
        share = 1
    return max(1, int(share)) if share is not None else available_cpus()


def set_flush_denormal(enabled: bool) -> bool:
    """Flush subnormal floats to zero (or stop) in this thread and the intra-op threads started after it.
    Returns whether the CPU supports it (x86 with SSE3, AArch64)."""
    import torch

    return bool(torch.set_flush_denormal(enabled))


def apply_runtime(cfg: Any, *, cpus: int | None = None) -> int:
    """Apply ``cfg``'s (a ``TrainingConfig``) subnormal policy and thread count to this process; returns the
    threads. ``cpus``: this process's share of the machine when it is one of several (a Ray trial's
    ``resources_per_trial.cpu``, 1 for a DDP rank); it holds for the rest of the process."""
    global _share_cpus, _logged
    import torch

    if cpus is not None:
        _share_cpus = max(1, int(cpus))
    flush = bool(getattr(cfg, "flush_denormal", True))
    # The flag first: threads the pool starts for set_num_threads copy it from this one. Set either way, so
    # that flush_denormal: false also undoes an earlier run's flag in this thread.
    flushing = set_flush_denormal(flush) and flush
    num_threads = getattr(cfg, "num_threads", None)
    threads = choose_threads(num_threads)
    torch.set_num_threads(threads)
    if _logged != (threads, flushing):
        _logged = (threads, flushing)
        why = ("training.num_threads" if num_threads else
               "this process's share of the CPUs" if _share_cpus is not None or _local_ranks() > 1 else
               "the CPUs available to this process")
        log.info("torch: %d intra-op thread(s) (%s); subnormal floats %s", threads, why,
                 "flushed to zero" if flushing else "kept" if not flush else "kept (this CPU cannot flush them)")
    return threads


def runtime_for_fit(cfg: Any, callbacks: Iterable[Any]) -> list[Any]:
    """Apply ``cfg``'s runtime here and return ``callbacks`` plus, for ``ddp_spawn`` / ``ddp_fork``, the one that
    applies it in each rank those strategies start (one thread each unless ``num_threads`` is set)."""
    apply_runtime(cfg)
    callbacks = list(callbacks)
    if cfg.trainer.strategy in ("ddp_spawn", "ddp_fork"):
        from lstm_lab.training.rank_runtime import RankRuntime

        callbacks.append(RankRuntime(cfg))
    return callbacks


# --------------------------------------------------------------------------------------------------------------
# The Kedro process: flush from the moment torch is imported, without importing it at start-up
# --------------------------------------------------------------------------------------------------------------
class _FlushWhenTorchLoads:
    """A one-shot import hook: once ``import torch`` has run torch's ``__init__``, flush subnormal floats in the
    importing thread — before any torch op can run, wherever (a node, a dataset) the import happens.

    Once in ``sys.meta_path`` it stays there, disarmed when done: another thread may be iterating that list at
    that moment (MLflow's imports in the hooks' background start), and taking out an entry ahead of its position
    shifts the rest, so its iteration skips one. When the skipped one was the PathFinder, an import of a module
    that exists failed with ModuleNotFoundError (seen in CI). Putting it in (at the front) shifts the other way:
    that thread asks the finder it has just asked once more, which answers None again."""

    armed = False

    def find_spec(self, name: str, path: Any = None, target: Any = None):
        if name != "torch" or not self.armed:
            return None
        self.armed = False  # first: the find_spec below asks this hook again
        spec = importlib.util.find_spec("torch")
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        run_init = spec.loader.exec_module

        def exec_module(module):
            run_init(module)
            module.set_flush_denormal(True)

        spec.loader.exec_module = exec_module  # this spec's own loader instance: nothing else is patched
        return spec


_FLUSH_HOOK = _FlushWhenTorchLoads()


def flush_denormal_on_import() -> None:
    """Flush subnormal floats in this thread now if torch is loaded, else as soon as it is imported."""
    if "torch" in sys.modules:
        set_flush_denormal(True)
        return
    _FLUSH_HOOK.armed = True
    if not any(finder is _FLUSH_HOOK for finder in sys.meta_path):
        sys.meta_path.insert(0, _FLUSH_HOOK)


def uninstall_flush_on_import() -> None:
    """Disarm the pending import hook (a run that ends before importing torch leaves nothing armed); it stays in
    ``sys.meta_path``, answering None (see :class:`_FlushWhenTorchLoads`)."""
    _FLUSH_HOOK.armed = False
