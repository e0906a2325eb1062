"""Per-epoch history of a fit, wherever its rank 0 runs (MLflow's per-epoch metrics: ``tracking.epoch_metrics``)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import lightning.pytorch as pl
import torch

from lstm_lab.interrupts import raise_if_swallowed


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


INITIAL_VAL_LOSS = "initial_val_loss"  # attribute of the LightningModule that InitialValidation sets
INITIAL_VAL_METRICS = "initial_val_metrics"  # the same validation's every metric: {"val_loss": ..., "val_acc": ...}


def validation_metrics(trainer: pl.Trainer, module: pl.LightningModule) -> dict[str, float]:
    """The module's mean validation loss and other metrics (``val_<name>``) over the whole validation loader,
    with the same weighting as the epoch metrics (each batch's mean times the number of items it averages),
    without touching Lightning's loops.

    Every rank reads the whole loader (no distributed sampler here), so every rank gets the same numbers.
    """
    loader = trainer.datamodule.val_dataloader()
    was_training = module.training
    module.eval()
    totals: dict[str, float] = {}
    count = 0
    try:
        with torch.no_grad(), trainer.precision_plugin.forward_context():
            for batch in loader:
                loss, n, extras = module.loss(trainer.strategy.batch_to_device(batch), "val")
                for name, value in {"loss": loss, **extras}.items():
                    totals[f"val_{name}"] = totals.get(f"val_{name}", 0.0) + float(value) * n
                count += n
    finally:
        module.train(was_training)
    if not count:
        return {"val_loss": math.nan}
    return {name: total / count for name, total in totals.items()}


def validation_loss(trainer: pl.Trainer, module: pl.LightningModule) -> float:
    """The module's mean validation loss (:func:`validation_metrics`' ``val_loss``)."""
    return validation_metrics(trainer, module)["val_loss"]


class InitialValidation(pl.Callback):
    """Validates the untrained model before the first epoch: the history's epoch 0 and MLflow's step 0.

    For a model that starts as a baseline (the forecaster's residual head is zero, so it starts as the naive
    forecast) this is the score training must beat: early stopping counts patience from it (from its value of
    the monitored metric, ``training.monitor``), and ``fit`` keeps the untrained weights when no epoch beats them.
    Put it first: the callbacks after it read the values from the module (``initial_val_loss``,
    ``initial_val_metrics``) in their own ``on_train_start``. Skipped when a fit resumes mid-way.
    """

    def on_train_start(self, trainer, pl_module):
        if trainer.current_epoch != 0:
            return
        values = validation_metrics(trainer, pl_module)
        setattr(pl_module, INITIAL_VAL_LOSS, values["val_loss"])
        setattr(pl_module, INITIAL_VAL_METRICS, values)
        from lightning.pytorch.callbacks import EarlyStopping

        for callback in trainer.callbacks:
            if isinstance(callback, EarlyStopping) and math.isfinite(values.get(callback.monitor, math.nan)):
                callback.best_score = torch.tensor(values[callback.monitor])  # patience counts from the untrained score


class EpochHistory(pl.Callback):
    """Collects one row per epoch: epoch (1 = after the first), train_loss, val_loss (and any other epoch-level
    metric); with :class:`InitialValidation` before it, a first row ``{epoch: 0, val_loss}`` (and the other
    validation metrics the task logs, e.g. ``val_acc``) for the untrained model.

    With ``path``, global rank 0 also appends each row to that JSON-lines file as the epoch ends. That is how
    the rows get back from ranks that are not this process (ddp_spawn/ddp_fork children, torchrun ranks),
    whose copies of this callback the caller never sees: read them with :meth:`collect` after ``fit``.

    The rows are part of the checkpoint's callback state: a fit resumed from a checkpoint (``training.resume``)
    starts with the rows of the epochs it does not train again.
    """

    def __init__(self, path: str | Path | None = None):
        self.rows: list[dict[str, float]] = []
        self.path = Path(path) if path is not None else None

    def state_dict(self) -> dict:
        return {"rows": [dict(row) for row in self.rows]}

    def load_state_dict(self, state_dict: dict) -> None:
        self.rows = [dict(row) for row in state_dict.get("rows", [])]

    def on_fit_start(self, trainer, pl_module):
        # After a checkpoint's state is loaded: the file starts with the restored rows, never those of an earlier
        # fit that reused the directory.
        if self.path is not None and trainer.is_global_zero:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text("".join(json.dumps(row) + "\n" for row in self.rows))

    def on_train_start(self, trainer, pl_module):
        values = getattr(pl_module, INITIAL_VAL_METRICS, None)
        if values is None and getattr(pl_module, INITIAL_VAL_LOSS, None) is not None:
            values = {"val_loss": getattr(pl_module, INITIAL_VAL_LOSS)}
        if values is not None and trainer.current_epoch == 0 and not self.rows:
            self._add({"epoch": 0, "val_loss": values["val_loss"], **values}, trainer)

    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.sanity_checking:
            return
        self._add({"epoch": trainer.current_epoch + 1, **epoch_metrics(trainer)}, trainer)

    def _add(self, row: dict[str, float], trainer) -> None:
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


# Short names for the progress bar: the postfix must fit an 80-column terminal beside the bar.
_BAR_NAMES = {"train_loss": "loss", "val_loss": "val", "train_acc": "acc", "val_acc": "val_acc",
              "val_bits_per_char": "bpc"}


def compact_progress_bar() -> pl.Callback:
    """Lightning's tqdm bar without the version number and rate, metrics shortened to 4 significant digits:
    ``Epoch 7: 100%|████| 25/25 [00:01, loss=0.00316, val=0.00298]`` fits 80 columns (Lightning's own wraps)."""
    from lightning.pytorch.callbacks import TQDMProgressBar

    class CompactProgressBar(TQDMProgressBar):
        BAR_FORMAT = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]"

        def get_metrics(self, trainer, pl_module):
            out = {}
            for key, value in super().get_metrics(trainer, pl_module).items():
                if key in _BAR_NAMES:
                    out[_BAR_NAMES[key]] = f"{float(value):.4g}" if isinstance(value, int | float) else value
            return out

    return CompactProgressBar()


class InterruptCheck(pl.Callback):
    """Stops the fit at the next batch for a Ctrl+C / SIGTERM whose exception Python swallowed (it landed in a
    finaliser; ``lstm_lab.interrupts``): the run then ends interrupted instead of training on."""

    def on_train_batch_end(self, *args, **kwargs) -> None:
        raise_if_swallowed()

    def on_validation_batch_end(self, *args, **kwargs) -> None:
        raise_if_swallowed()
