"""Tags that say what a run started from: the git commit and the DVC lock of its pipeline."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path


def git_commit(path: str | Path) -> str:
    """HEAD's commit, with ``-dirty`` when tracked files differ; ``unknown`` outside git."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=path, capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit}-dirty" if dirty else commit


def dvc_lock_file(project_path: str | Path, pipeline: str) -> Path:
    """The dvc.lock holding ``pipeline``'s stages: the root one for forecast, ``stages/<pipeline>/`` else."""
    root = Path(project_path)
    own = root / "stages" / pipeline / "dvc.lock"
    return own if (root / "stages" / pipeline / "dvc.yaml").is_file() else root / "dvc.lock"


def dvc_lock_digest(project_path: str | Path, pipeline: str) -> str:
    """SHA-256 (first 16 hex) of that dvc.lock as the run starts: the locked data and parameters it began
    from (under ``dvc repro`` the earlier stages of the same repro are already in it); ``none`` without one."""
    lock = dvc_lock_file(project_path, pipeline)
    if not lock.is_file():
        return "none"
    return hashlib.sha256(lock.read_bytes()).hexdigest()[:16]
