"""Resuming an interrupted fit (``training.resume: auto``), and removing the scratch folders of dead fits.

**Where.** ``<root>/<task>-<digest>/``, root ``./checkpoints`` (the Kedro project's, git-ignored, never a DVC
output). The 16-hex digest covers the task, its parameters except those that cannot change the result
(``training.resume``, ``training.num_threads``, ``training.flush_denormal``, the ``serving`` section) and the
training data (sha256 of the arrays' bytes, the other values as JSON), so only the same configuration on the
same data finds the folder again. It holds
``last.ckpt`` (the state after the last finished epoch), ``best.ckpt`` (ModelCheckpoint's) and the epoch
history; ``fit`` deletes it when training completes, a crash or a kill leaves it for the next run.

**Bit-identical.** Lightning's ``fit(ckpt_path=...)`` restores weights, optimiser, LR schedulers, loop counters
and callback states (ModelCheckpoint, EarlyStopping, EpochHistory). :class:`ResumeState` adds what Lightning
leaves out: the global RNGs (torch, CUDA, numpy, ``random``) and the DataModule's shuffling generators (its
``generators`` dict, created once per DataModule), so epoch k+1 of a resumed run draws the same batch order and
dropout masks as epoch k+1 of an uninterrupted one. Nothing here draws random numbers.

**When last.ckpt is written.** When epoch k+1 starts, holding the state at the end of epoch k: that is the
first hook after everything epoch k does (Lightning steps epoch-level LR schedulers, ReduceLROnPlateau
included, after ``on_train_epoch_end``), and it comes before epoch k+1 draws its shuffling order. A kill
during epoch k+1 loses that epoch only. Writes are atomic (``AtomicCheckpointIO``): a kill while writing leaves
the previous file.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import os
import random
import re
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch.callbacks import Checkpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

from lstm_lab.data.residency import release
from lstm_lab.errors import LstmLabError
from lstm_lab.processes import is_running, start_time

log = logging.getLogger(__name__)

# ModelCheckpoint warns when its folder already holds files. A resume folder does by design (its lock, the
# checkpoints it resumes from), and the file names are fixed: nothing gets versioned or lost.
warnings.filterwarnings("ignore", message=r"Checkpoint directory .*-[0-9a-f]{16} exists and is not empty")

LAST = "last.ckpt"
# Settings that change how fast a fit runs or whether it resumes, never what it computes (flush_denormal zeroes
# only values below ~1e-38: the forecast task's best val_loss came out identical with and without it); and whole
# sections that act only after training (serving: how the model is logged and registered).
NOT_IN_DIGEST = {"training": ("resume", "num_threads", "flush_denormal")}
SECTIONS_NOT_IN_DIGEST = ("serving",)
SCRATCH_PREFIXES = ("lstm_lab_ckpt_", "lstm_lab_job_")  # fit's and the torchrun job's scratch folders


# --------------------------------------------------------------------------------------------------------------
# The folder of one configuration
# --------------------------------------------------------------------------------------------------------------
def data_digest(data: Mapping[str, Any]) -> str:
    """sha256 of the prepared data: each array's name, dtype, shape and bytes, then the other values as JSON."""
    h = hashlib.sha256()
    others = {}
    data = dict(data)
    for key in [k for k in data if hasattr(data[k], "digest_parts")]:  # a Panel: its arrays and names
        data.update({f"{key}.{part}": v for part, v in data.pop(key).digest_parts().items()})
    for key in sorted(data):
        value = data[key]
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().numpy()
        if isinstance(value, np.ndarray) and not value.dtype.hasobject:  # object arrays hold pointers: JSON
            h.update(f"{key}|{value.dtype.str}|{value.shape}|".encode())
            _hash_bytes(h, value)
        else:
            others[key] = value
    h.update(json.dumps(others, sort_keys=True, default=_plain).encode())
    return h.hexdigest()


def _hash_bytes(h, value: np.ndarray, block_bytes: int = 8 << 20) -> None:
    """``value``'s bytes in C order into ``h``. A memory-mapped panel is read block by block, each block's pages
    handed back to the page cache once hashed (data/residency.py): the digest never holds the whole file."""
    if isinstance(value, np.memmap) and value.ndim and value.flags.c_contiguous:
        rows = max(1, block_bytes // max(1, value.strides[0]))
        for r0 in range(0, len(value), rows):
            h.update(memoryview(np.asarray(value[r0:r0 + rows])).cast("B"))
            release(value)  # (all rows: see residency.release)
        return
    array = np.ascontiguousarray(value)
    h.update(array.data if array.size else b"")


def _plain(value: Any) -> Any:
    if isinstance(value, (np.ndarray, np.generic, torch.Tensor)):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not plain data")  # caught by run_training: no resume then


def configuration_digest(task_name: str, params_json: Mapping[str, Any], data: Mapping[str, Any]) -> str:
    """16 hex digits naming one configuration (``params.model_dump(mode="json")``) on one data set."""
    params = {section: dict(values) if isinstance(values, Mapping) else values
              for section, values in params_json.items()}
    for section, keys in NOT_IN_DIGEST.items():
        for key in keys:
            params.get(section, {}).pop(key, None)
    for section in SECTIONS_NOT_IN_DIGEST:
        params.pop(section, None)
    blob = json.dumps({"task": task_name, "params": params, "data": data_digest(data)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def resume_folder(root: str | Path, task_name: str, params_json: Mapping[str, Any], data: Mapping[str, Any]) -> Path:
    return Path(root).resolve() / f"{task_name}-{configuration_digest(task_name, params_json, data)}"


@contextlib.contextmanager
def claimed(folder: Path) -> Iterator[bool]:
    """Hold ``folder`` for this fit: yields False when another live process is training the same
    configuration into it (that fit then trains without resuming rather than overwrite the other's files).
    The lock goes with the process, however it ends."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no advisory locks, trust that runs do not overlap
        folder.mkdir(parents=True, exist_ok=True)
        yield True
        return
    lock = folder / ".lock"
    for _ in range(10):
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            yield False
            return
        with contextlib.suppress(FileNotFoundError):
            if os.stat(lock).st_ino == os.fstat(fd).st_ino:
                break
        os.close(fd)  # a run that completed deleted the folder between our open and our lock: again
    else:  # pragma: no cover - ten such races in a row
        raise LstmLabError(f"{folder}: cannot lock the resume folder")
    try:
        yield True
    finally:
        os.close(fd)  # releases the lock


def resumable(folder: Path, module: torch.nn.Module) -> tuple[Path, int] | None:
    """``(last.ckpt, epochs it completed)`` when ``folder`` holds one that ``module`` can load; otherwise None,
    and whatever an earlier attempt left there (a best.ckpt of an epoch never saved as last) is removed."""
    last = folder / LAST
    if last.is_file():
        from lstm_lab.checkpoints import load_checkpoint_file

        try:
            checkpoint = load_checkpoint_file(last)
            theirs = {k: tuple(v.shape) for k, v in checkpoint["state_dict"].items()}
            if theirs != {k: tuple(v.shape) for k, v in module.state_dict().items()}:
                raise ValueError("its weights do not fit this model: the code changed since")
            return last, int(checkpoint["epoch"])
        except (LstmLabError, AttributeError, KeyError, TypeError, ValueError) as exc:
            log.warning("%s: cannot resume from it (%s); training from scratch", last, exc)
    for entry in folder.iterdir():
        if entry.name != ".lock":
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    return None


def remove_folder(folder: Path) -> None:
    """Delete a completed fit's folder, and the root above it once empty (never a DVC output, nothing to keep)."""
    shutil.rmtree(folder, ignore_errors=True)
    with contextlib.suppress(OSError):  # another configuration's folder is still there
        folder.parent.rmdir()


# --------------------------------------------------------------------------------------------------------------
# What Lightning does not restore
# --------------------------------------------------------------------------------------------------------------
def _generators(datamodule: Any) -> dict[str, torch.Generator]:
    return dict(getattr(datamodule, "generators", None) or {})


class ResumeState(Checkpoint):
    """Writes ``last.ckpt`` between epochs and carries the RNG and generator states in it.

    A ``Checkpoint`` so that Lightning runs its ``on_train_epoch_end`` after EarlyStopping and ModelCheckpoint
    have taken the epoch into account. The file is written when the next epoch starts (after Lightning's
    epoch-level LR scheduler step, which follows ``on_train_epoch_end``), with the loop counters as they were at
    the end of the epoch: the point Lightning knows how to restart from (the next epoch runs whole, nothing of
    the finished one runs again).
    """

    def __init__(self, folder: str | Path):
        self.path = Path(folder) / LAST
        self._generators: dict[str, torch.Generator] = {}
        self._loops: dict[str, Any] | None = None  # the loop counters at the end of the epoch just finished
        self._saving = False

    def setup(self, trainer, pl_module, stage):
        self._generators = _generators(trainer.datamodule)  # before a checkpoint is restored into them

    def state_dict(self) -> dict[str, Any]:
        kind, keys, pos, has_gauss, cached = np.random.get_state()
        state = {
            "torch": torch.get_rng_state(),
            # Plain values only: checkpoints are read with torch.load(weights_only=True).
            "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
            "python": random.getstate(),
            "generators": {name: g.get_state() for name, g in self._generators.items()},
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # Called while Lightning restores the checkpoint, before it builds the training DataLoader's iterator
        # (which draws from these): the resumed epoch draws exactly what it drew in the first run.
        torch.set_rng_state(state["torch"])
        kind, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])
        if set(state["generators"]) != set(self._generators):
            raise LstmLabError(f"{self.path}: the checkpoint's data generators {sorted(state['generators'])} are not "
                               f"the data module's {sorted(self._generators)}; delete the folder to start over")
        for name, generator_state in state["generators"].items():
            self._generators[name].set_state(generator_state)  # in place: the train DataLoader holds this object

    def on_train_epoch_end(self, trainer, pl_module):
        self._loops = copy.deepcopy({name: getattr(trainer, name).state_dict()
                                     for name in ("fit_loop", "validate_loop", "test_loop", "predict_loop")})

    def on_train_epoch_start(self, trainer, pl_module):
        if self._loops is None:  # the first epoch, or the one this run resumed at (its file is already there)
            return
        self._saving = True
        try:
            trainer.save_checkpoint(self.path)
        finally:
            self._saving, self._loops = False, None

    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        if self._saving:
            checkpoint["loops"] = self._loops


class AtomicCheckpointIO(TorchCheckpointIO):
    """Every checkpoint (best and last) written to a temporary file beside it and renamed over it."""

    def save_checkpoint(self, checkpoint, path, storage_options=None):
        from lstm_lab.checkpoints import save_checkpoint

        save_checkpoint(path, checkpoint)


# --------------------------------------------------------------------------------------------------------------
# Scratch folders of processes that died
# --------------------------------------------------------------------------------------------------------------
_SCRATCH = re.compile(r"^(?:%s)(\d+)_(?:(\d+)_)?" % "|".join(SCRATCH_PREFIXES))


def scratch_prefix(kind: str = SCRATCH_PREFIXES[0]) -> str:
    """``lstm_lab_ckpt_<pid>_<start time>_``: the owner, told apart from a later process given the same pid."""
    return f"{kind}{os.getpid()}_{int(start_time() or 0)}_"


def remove_orphan_scratch(where: str | Path | None = None) -> list[Path]:
    """Remove scratch folders in the temp dir whose owning process is gone (killed: its ``with`` never ended)."""
    removed = []
    base = Path(where or tempfile.gettempdir())
    with contextlib.suppress(OSError):
        for entry in base.iterdir():
            match = _SCRATCH.match(entry.name)
            if match and entry.is_dir() and not is_running(int(match[1]), match[2] and int(match[2])):
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry)
    if removed:
        log.info("removed %d scratch folder(s) of training processes that no longer run", len(removed))
    return removed
