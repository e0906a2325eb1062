"""The outputs of one ``kedro run`` become visible together, or not at all.

While a run is staged, every catalog file the project's datasets save is written (atomically) beside its
target under a staged name, ``.<name>.<token>.staged``, and read back from there by the later nodes of the same
run; the targets keep the previous run's files. When the pipeline finishes, ``commit`` renames every staged file
of the run over its target; when it fails or is interrupted, ``discard`` deletes them. So a run that fails after
its first node (a series too short to split, a corpus of NUL bytes) leaves the earlier, consistent set of files
in place instead of a mix of new and old ones.

The run's token (``<pid>-<start time>-<random hex>``) lives in the environment (``LSTM_LAB_RUN_STAGE``), so processes the run
starts (Kedro's ParallelRunner, ddp_spawn ranks) stage into the same run; ``commit`` and ``discard`` find the
staged files by scanning the output folders, not from an in-memory list. Files a killed run left behind (its
process is gone, or its pid now belongs to a later process) are removed by ``clean_stale`` when the next run
starts.

Standard library only, apart from ``lstm_lab.processes`` (psutil, imported when a stale file is checked).
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterable
from pathlib import Path

ENV = "LSTM_LAB_RUN_STAGE"
_STAGED = re.compile(r"^\.(?P<name>.+)\.(?P<token>(?P<pid>\d+)-(?P<started>\d+)-(?P<hex>[0-9a-f]+))\.staged$")


def begin() -> str:
    """Start staging the outputs of this process's run; returns its token."""
    from lstm_lab.processes import start_time

    token = f"{os.getpid()}-{int(start_time() or 0)}-{secrets.token_hex(4)}"
    os.environ[ENV] = token
    return token


def active() -> str | None:
    return os.environ.get(ENV) or None


def staged_path(target: str | Path, token: str) -> Path:
    target = Path(target)
    return target.parent / f".{target.name}.{token}.staged"


def output_path(target: str | Path) -> Path:
    """Where a dataset writes ``target`` now: its staged name during a staged run, else the target itself."""
    token = active()
    return staged_path(target, token) if token else Path(target)


def readable_path(target: str | Path) -> Path:
    """Where ``target``'s current content is: this run's staged file if it wrote one, else the target."""
    token = active()
    if token:
        staged = staged_path(target, token)
        if staged.is_file():
            return staged
    return Path(target)


def _staged_files(folders: Iterable[Path]) -> Iterable[tuple[Path, re.Match]]:
    seen = set()
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in folder.rglob(".*.staged"):
            match = _STAGED.match(path.name)
            if match and path not in seen:
                seen.add(path)
                yield path, match


def commit(folders: Iterable[Path]) -> list[Path]:
    """Move this run's staged files over their targets; returns the targets. Ends staging."""
    token, done = active(), []
    if token:
        for path, match in _staged_files(folders):
            if match["token"] == token:
                target = path.with_name(match["name"])
                os.replace(path, target)
                done.append(target)
    end()
    return done


def discard(folders: Iterable[Path]) -> list[Path]:
    """Delete this run's staged files (the targets keep their previous content); returns them. Ends staging."""
    token, removed = active(), []
    if token:
        for path, match in _staged_files(folders):
            if match["token"] == token:
                path.unlink(missing_ok=True)
                removed.append(path)
    end()
    return removed


def clean_stale(folders: Iterable[Path]) -> list[Path]:
    """Delete staged files of runs whose process no longer exists (a ``kill -9``, a power cut)."""
    from lstm_lab.processes import is_running

    removed = []
    for path, match in _staged_files(folders):
        if not is_running(int(match["pid"]), int(match["started"]) or None):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def end() -> None:
    os.environ.pop(ENV, None)


