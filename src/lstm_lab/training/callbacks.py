"""Per-epoch history of a fit, wherever its rank 0 runs (MLflow's per-epoch metrics: ``tracking.epoch_metrics``)."""

from __future__ import annotations

import json
from pathlib import Path

import lightning.pytorch as pl


def epoch_metrics(trainer: pl.Trainer) -> dict[str, float]:
    """The epoch's logged metrics, plus ``lr``: the optimiser's learning rate when the epoch's training ends
    (per-step schedules have moved it during the epoch; a plateau schedule moves it after validation)."""
    out = {}
    for key, value in trainer.callback_metrics.items():
        try:
            out[key] = float(value)
        except (TypeError, ValueError):
            continue
    if trainer.optimizers:
        out["lr"] = float(trainer.optimizers[0].param_groups[0]["lr"])
    return out


class EpochHistory(pl.Callback):
    """Collects one row per epoch: epoch, train_loss, val_loss (and any other epoch-level metric).

    With ``path``, global rank 0 also appends each row to that JSON-lines file as the epoch ends. That is how
    the rows get back from ranks that are not this process (ddp_spawn/ddp_fork children, torchrun ranks),
    whose copies of this callback the caller never sees: read them with :meth:`collect` after ``fit``.
    """

    def __init__(self, path: str | Path | None = None):
        self.rows: list[dict[str, float]] = []
        self.path = Path(path) if path is not None else None

    def on_fit_start(self, trainer, pl_module):
        if self.path is not None and trainer.is_global_zero:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text("")  # a reused directory must not carry rows of an earlier fit

    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.sanity_checking:
            return
        row = {"epoch": trainer.current_epoch, **epoch_metrics(trainer)}
        self.rows.append(row)
        if self.path is not None and trainer.is_global_zero:
            with self.path.open("a") as f:
                f.write(json.dumps(row) + "\n")

    def collect(self) -> list[dict[str, float]]:
        """The rows of the fit that just ran, wherever rank 0 ran."""
        if self.path is None or not self.path.is_file():
            return list(self.rows)
        return read_history(self.path)


def read_history(path: str | Path) -> list[dict[str, float]]:
    """Rows written by :class:`EpochHistory` (one JSON object per line); [] if the file does not exist."""
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
