"""Training on several devices: which processes to start, checked before any of them starts.

Three ways to run ``fit``, chosen from ``training.trainer`` by :func:`plan_training`:

- ``none``: this process trains (one device; or this process *is* a rank that torchrun already started).
- ``in_node``: ``ddp_spawn`` / ``ddp_fork`` — Lightning starts the ranks as children of this process and hands
  the results back, so a Kedro pipeline around ``fit`` runs once.
- ``torchrun``: ``ddp`` / ``fsdp`` — Lightning would re-execute the launching command in every rank (the whole
  ``kedro run``, or the pytest session), so instead the caller writes the job to files and starts
  ``torchrun ... -m lstm_lab.train`` (:func:`launch_torchrun`), then reads rank 0's checkpoint and history.

:func:`plan_training` is pure (settings + a :class:`Platform` description in, a :class:`Plan` or an
``LstmLabError`` out), so every bad combination is caught — and unit-tested — without starting a process.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import shlex
import subprocess
import sys
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from lstm_lab.errors import LstmLabError
from lstm_lab.tracking.store import MlflowTarget
from lstm_lab.training.config import TrainerSettings

log = logging.getLogger(__name__)

IN_NODE = ("ddp_spawn", "ddp_fork")  # ranks are children of this process
LAUNCHED = ("ddp", "fsdp")  # ranks are started by torchrun, never by re-executing our command line

# Files of a torchrun job, in its job directory (the ``--out`` of lstm_lab.train).
CONFIG_FILE, DATA_FILE, RESULT_FILE = "config.json", "data.npz", "result.json"
CHECKPOINT_FILE, HISTORY_FILE = "model.ckpt", "history.jsonl"  # rank 0's best checkpoint, its epoch rows
JOB_DIR_ENV = "LSTM_LAB_JOB_DIR"  # a directory every node can read: required for num_nodes > 1


# --------------------------------------------------------------------------------------------------------------
# Rank helpers: read the launcher's environment, valid before any process group exists
# --------------------------------------------------------------------------------------------------------------
def global_rank(env: Mapping[str, str] = os.environ) -> int:
    """This process's rank among all ranks (torchrun: ``RANK``; SLURM: ``SLURM_PROCID``); 0 when alone."""
    return int(env.get("RANK", env.get("SLURM_PROCID", 0)))


def local_rank(env: Mapping[str, str] = os.environ) -> int:
    return int(env.get("LOCAL_RANK", env.get("SLURM_LOCALID", 0)))


def world_size(env: Mapping[str, str] = os.environ) -> int:
    return int(env.get("WORLD_SIZE", env.get("SLURM_NTASKS", 1)))


def is_rank_zero(env: Mapping[str, str] = os.environ) -> bool:
    return global_rank(env) == 0


def started_by_torchrun(env: Mapping[str, str] = os.environ) -> bool:
    """True in a rank that torchrun (torch elastic) started: it must train itself, not launch again."""
    return "TORCHELASTIC_RUN_ID" in env or all(k in env for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE"))


# --------------------------------------------------------------------------------------------------------------
# The machine, as plain facts, so that the checks below are a pure function
# --------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Platform:
    cuda_devices: int = 0
    cuda_initialized: bool = False  # a CUDA context exists in this process: forked children cannot use CUDA
    cuda_bf16: bool | None = None  # None = not probed (probing would initialise CUDA before a fork)
    mps_available: bool = False
    cpu_bf16: bool = True  # oneDNN has bfloat16 kernels (without them torch's CPU LSTM fails under bf16 autocast)
    fork_available: bool = True
    fork_disabled: bool = False  # PL_DISABLE_FORK=1, which Ray sets in its trial processes
    in_torchrun: bool = False

    @classmethod
    def detect(cls, settings: TrainerSettings | None = None) -> Platform:
        """This machine's facts; for ``settings`` that train on CPU without bfloat16, only those needing no torch
        (validation runs at start-up, before the first node: importing torch there costs seconds)."""
        no_device_facts = settings is not None and settings.accelerator == "cpu" and settings.precision != "bf16-mixed"
        if no_device_facts:  # plan_training reads no CUDA, MPS or bfloat16 fact for these: leave them unprobed
            return cls(fork_available="fork" in multiprocessing.get_all_start_methods(),
                       fork_disabled=os.environ.get("PL_DISABLE_FORK", "0") not in ("", "0"),
                       in_torchrun=started_by_torchrun())
        # What importing lightning.fabric does (seconds cheaper): counting GPUs through NVML keeps a later fork safe.
        os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] = "1"
        import torch

        cuda_devices = torch.cuda.device_count()
        cuda_bf16 = None
        wants_cuda_bf16 = settings is not None and settings.precision == "bf16-mixed" and settings.accelerator != "cpu"
        # Asking for the compute capability initialises CUDA, which would break a later fork: only probe when
        # no fork follows (or CUDA is initialised anyway).
        if cuda_devices and wants_cuda_bf16 and (settings.strategy != "ddp_fork" or torch.cuda.is_initialized()):
            cuda_bf16 = bool(torch.cuda.is_bf16_supported(including_emulation=False))
        try:
            cpu_bf16 = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):  # pragma: no cover - builds without oneDNN
            cpu_bf16 = False
        mps = getattr(torch.backends, "mps", None)
        return cls(
            cuda_devices=cuda_devices,
            cuda_initialized=torch.cuda.is_initialized(),
            cuda_bf16=cuda_bf16,
            mps_available=bool(mps and mps.is_available()),
            cpu_bf16=cpu_bf16,
            fork_available="fork" in multiprocessing.get_all_start_methods(),
            fork_disabled=os.environ.get("PL_DISABLE_FORK", "0") not in ("", "0"),
            in_torchrun=started_by_torchrun(),
        )


@dataclass(frozen=True)
class Plan:
    accelerator: Literal["cpu", "cuda", "mps"]
    devices: int  # processes (devices) per node
    num_nodes: int
    strategy: str  # what Lightning gets; "auto" only when one process trains
    launcher: Literal["none", "in_node", "torchrun"]

    @property
    def world_size(self) -> int:
        return self.devices * self.num_nodes


def plan_training(settings: TrainerSettings, platform: Platform, where: str = "training.trainer") -> Plan:
    """Check ``settings`` against ``platform``; raise ``LstmLabError`` naming ``where.<field>`` if they clash."""

    def fail(field: str, message: str) -> LstmLabError:
        return LstmLabError(f"{where}.{field}: {message}")

    accelerator = _resolve_accelerator(settings.accelerator, platform, fail)
    devices = _device_count(settings.devices, accelerator, platform, fail)
    nodes, strategy = settings.num_nodes, settings.strategy
    world = devices * nodes

    if strategy == "fsdp" and accelerator != "cuda":
        raise fail("strategy", f"fsdp needs CUDA GPUs (accelerator is {accelerator}); use ddp_spawn, ddp_fork or ddp")
    if strategy == "auto" and world > 1:
        if accelerator == "cpu":
            raise fail(
                "devices",
                f"{devices} device(s) x {nodes} node(s) with strategy 'auto' on CPU is ambiguous: set "
                f"{where}.strategy to ddp_spawn or ddp_fork (processes started by this run) or ddp (torchrun)",
            )
        strategy = "ddp"  # Lightning's own choice here, but launched by torchrun instead of re-executing us
    if strategy in IN_NODE and nodes > 1:
        raise fail("num_nodes", f"{nodes} nodes need strategy ddp (torchrun on every node); {strategy} runs on one machine")
    if strategy == "ddp_fork":
        if not platform.fork_available:
            raise fail("strategy", "ddp_fork needs the 'fork' start method, which this platform lacks; use ddp_spawn")
        if platform.fork_disabled:
            raise fail("strategy", "ddp_fork: forking is disabled here (PL_DISABLE_FORK=1, as in Ray trials); use ddp_spawn")
        if accelerator == "cuda" and platform.cuda_initialized:
            raise fail("strategy", "ddp_fork: CUDA is already initialised in this process, so forked ranks cannot use "
                                   "it; use ddp_spawn or ddp")
    _check_precision(settings.precision, accelerator, platform, fail)

    if strategy in IN_NODE:
        launcher = "in_node"
    elif strategy in LAUNCHED and not platform.in_torchrun:
        launcher = "torchrun"
    else:
        launcher = "none"
    return Plan(accelerator=accelerator, devices=devices, num_nodes=nodes, strategy=strategy, launcher=launcher)


def _resolve_accelerator(name: str, platform: Platform, fail) -> str:
    if name == "cpu":
        return "cpu"
    if name == "auto":  # Lightning's order of preference
        return "cuda" if platform.cuda_devices else "mps" if platform.mps_available else "cpu"
    if name == "mps" or (name == "gpu" and not platform.cuda_devices and platform.mps_available):
        if not platform.mps_available:
            raise fail("accelerator", "mps is not available on this machine; use cpu")
        return "mps"
    if not platform.cuda_devices:  # gpu / cuda
        raise fail("accelerator", f"{name} asks for CUDA GPUs but none is visible on this machine; use cpu")
    return "cuda"


def _device_count(devices: int | str, accelerator: str, platform: Platform, fail) -> int:
    """Devices per node, read the way Lightning reads ``Trainer(devices=...)``."""
    available = {"cuda": platform.cuda_devices, "mps": 1}.get(accelerator)  # None: CPU, any number of processes
    text = str(devices).strip()
    bad_value = fail("devices", f"expected a positive number, 'auto' or GPU indices like '0,1' (got {devices!r})")
    if text == "auto":
        return available or 1  # on CPU, "auto" is one process
    if text == "-1" and available:
        return available
    if "," in text and available:  # GPU indices, e.g. "0,1"
        try:
            indices = [int(i) for i in text.split(",") if i.strip()]
        except ValueError:
            raise bad_value from None
        for i in indices:
            if not 0 <= i < available:
                raise fail("devices", f"GPU index {i} does not exist; this machine has {available} ({accelerator})")
        return len(indices)
    try:
        count = int(text)
    except ValueError:
        raise bad_value from None
    if count < 1:
        raise bad_value
    if available is not None and count > available:
        raise fail("devices", f"asks for {count} {accelerator} device(s) but this machine has {available}")
    return count


def _check_precision(precision: str, accelerator: str, platform: Platform, fail) -> None:
    if precision == "16-mixed" and accelerator == "cpu":
        # Lightning would silently switch to bf16-mixed; say so instead.
        raise fail("precision", "16-mixed is not supported on CPU; use 32-true (or bf16-mixed where the CPU has bfloat16)")
    if precision == "bf16-mixed" and accelerator == "cpu" and not platform.cpu_bf16:
        raise fail("precision", "bf16-mixed: this CPU has no bfloat16 support (oneDNN) for the LSTM kernels; use 32-true")
    if precision == "bf16-mixed" and accelerator == "cuda" and platform.cuda_bf16 is False:
        raise fail("precision", "bf16-mixed needs a GPU of compute capability 8.0 or newer (Ampere+); use 16-mixed or 32-true")


# --------------------------------------------------------------------------------------------------------------
# Job files: what a torchrun rank needs, written by the launching process, read by lstm_lab.train
# --------------------------------------------------------------------------------------------------------------
def write_job(job_dir: Path, config: Mapping[str, Any], data: Mapping[str, Any]) -> tuple[Path, Path]:
    """``config.json`` (the resolved parameters) and ``data.npz`` (arrays; other values as JSON)."""
    job_dir.mkdir(parents=True, exist_ok=True)
    config_path, data_path = job_dir / CONFIG_FILE, job_dir / DATA_FILE
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True))
    arrays = {k: np.asarray(v) for k, v in data.items() if isinstance(v, np.ndarray)}
    others = {k: v for k, v in data.items() if k not in arrays}
    # A 0-d unicode array loads without pickle, so the file stays safe to open with allow_pickle=False.
    np.savez(data_path, **arrays, __json__=np.array(json.dumps(others)))
    return config_path, data_path


def read_data(path: str | Path) -> dict[str, Any]:
    with np.load(path, allow_pickle=False) as f:
        data = {k: f[k] for k in f.files if k != "__json__"}
        if "__json__" in f.files:
            data.update(json.loads(str(f["__json__"])))
    return data


# --------------------------------------------------------------------------------------------------------------
# torchrun launcher
# --------------------------------------------------------------------------------------------------------------
def torchrun_command(
    plan: Plan, task: str, job_dir: Path, tracking: MlflowTarget | None = None, python: str = sys.executable
) -> list[str]:
    """``torchrun ... -m lstm_lab.train ...`` for this node (``python -m torch.distributed.run`` is torchrun)."""
    cmd = [python, "-m", "torch.distributed.run", f"--nproc-per-node={plan.devices}", f"--nnodes={plan.num_nodes}"]
    if plan.num_nodes == 1:
        cmd.append("--standalone")  # rendezvous on a free local port: concurrent jobs never collide
    # num_nodes > 1: the rendezvous comes from torchrun's own environment variables (PET_RDZV_ENDPOINT,
    # PET_RDZV_BACKEND, PET_NODE_RANK, PET_MASTER_ADDR, ...), set by the user or the cluster's job script.
    cmd += ["-m", "lstm_lab.train", "--task", task, "--config", str(job_dir / CONFIG_FILE),
            "--data", str(job_dir / DATA_FILE), "--out", str(job_dir)]
    if tracking is not None:
        cmd += ["--tracking-uri", tracking.tracking_uri, "--run-id", tracking.run_id]
    return cmd


def launch_torchrun(plan: Plan, task: str, job_dir: Path, tracking: MlflowTarget | None = None,
                    where: str = "training.trainer") -> dict[str, Any]:
    """Run the job in ``job_dir`` under torchrun and return rank 0's ``result.json``.

    The ranks' output is passed on line by line to this module's logger; the last lines are kept for the
    error message if torchrun fails.
    """
    if plan.num_nodes > 1 and not os.environ.get(JOB_DIR_ENV):
        raise LstmLabError(f"{where}.num_nodes: {plan.num_nodes} nodes need a job directory every node can read; "
                           f"set {JOB_DIR_ENV} to a shared path")
    cmd = torchrun_command(plan, task, job_dir, tracking)
    log.info("launching %d rank(s) on this node: %s", plan.devices, shlex.join(cmd))
    if plan.num_nodes > 1:
        log.info("start the same command on the %d other node(s), with their own PET_NODE_RANK", plan.num_nodes - 1)
    tail: deque[str] = deque(maxlen=40)
    user_error = None  # lstm_lab.train prints bad input as one "Error: ..." line: passed on as such
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip()
            tail.append(line)
            user_error = user_error or (line[len("Error: "):] if line.startswith("Error: ") else None)
            log.info("[torchrun] %s", line)
    result_path = job_dir / RESULT_FILE
    if proc.returncode != 0 or not result_path.is_file():
        if user_error:
            raise LstmLabError(user_error)
        raise RuntimeError(f"torchrun exited with code {proc.returncode}; last output:\n" + "\n".join(tail))
    return json.loads(result_path.read_text())
