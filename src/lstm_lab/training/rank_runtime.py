"""The runtime policy (``training/runtime.py``) inside each rank that ``ddp_spawn`` / ``ddp_fork`` start.

A module of its own because it needs Lightning at import time (a callback class, which a spawned rank receives
by pickle, so it must live at a module's top level), while ``runtime`` stays cheap for the Kedro hook.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl

from lstm_lab.training.runtime import apply_runtime


class RankRuntime(pl.Callback):
    """Applies ``training.num_threads`` (null: one thread per rank when a node runs several) and
    ``training.flush_denormal`` in the rank's process, before the model is wrapped or any batch runs.

    A spawned rank is a fresh interpreter: without this it would keep torch's defaults (Lightning sets
    cpus // ranks threads, subnormal floats kept). A forked rank inherits the parent's flag but not a per-rank
    thread count.
    """

    def __init__(self, cfg: Any):
        self.cfg = cfg

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        apply_runtime(self.cfg, cpus=1 if trainer.num_devices > 1 else None)
