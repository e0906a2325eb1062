"""The one training entry point.

``run_training(task, params, data)`` takes the task's typed parameters (validated once, before the run) and
the prepared arrays, builds the task's LightningModule and DataModule (``Task.build``), trains with early
stopping on ``training.monitor`` (``val_loss`` unless set: a validation metric the task logs, ``Task.logged_metrics``,
such as the sentiment task's ``val_acc``; minimised or maximised as ``config.MONITOR_MODES`` says) and returns
the weights of the best epoch by that metric. ``training.max_minutes`` caps a fit's wall time (Lightning's
``max_time``); the best checkpoint so far is kept when it runs out. A Kedro node, a Ray Tune trial and a DDP rank
all call this same function; they differ only in the ``callbacks`` they add (MLflow metrics, Tune reports) and
where ``tracking`` points.

Several devices (``training.trainer``, checked first by ``distributed.plan_training``, before any process
starts): ``ddp_spawn`` / ``ddp_fork`` train in child processes of this one, and the best checkpoint, its score
and the epoch history come back through files in the checkpoint directory; ``ddp`` / ``fsdp`` run
``torchrun -m lstm_lab.train`` as a subprocess and read rank 0's files the same way. Either way the caller gets
one ``FitResult`` in this process, and whatever surrounds the call (a Kedro pipeline) runs once.

Resuming (``training.resume: auto``, ``training/resume.py``): in this process and under ``ddp_spawn`` /
``ddp_fork``, when ``run_training`` chooses the checkpoint directory itself, the fit keeps its checkpoints in
``<resume_root>/<task>-<digest>/`` and a rerun of the same configuration on the same data continues from the
last finished epoch, bit-identically on CPU. torchrun jobs (``ddp`` / ``fsdp``) and callers that pass
``checkpoint_dir`` train from scratch, as with ``never``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

from lstm_lab.errors import LstmLabError
from lstm_lab.schema import StrictModel
from lstm_lab.training import distributed, resume
from lstm_lab.tracking.store import MlflowTarget
from lstm_lab.training.callbacks import (EpochHistory, InitialValidation, InterruptCheck, compact_progress_bar,
                                         read_history)
from lstm_lab.training.config import TrainingConfig, check_monitor
from lstm_lab.training.module import route_lightning_logs
from lstm_lab.training.task import Task, get_task

log = logging.getLogger(__name__)
route_lightning_logs()  # Lightning's own handlers off: each of its lines once, through conf/logging.yml


@dataclass
class FitResult:
    module: pl.LightningModule  # best weights loaded
    # The best Lightning checkpoint (what ModelCheckpoint wrote), in memory. None only in a torchrun rank other
    # than 0: rank 0 reports for the job (lstm_lab.train).
    checkpoint: dict[str, Any] | None
    best_val_loss: float  # val_loss of the epoch kept (the one best by `monitor`; with monitor val_loss, its best)
    history: list[dict[str, float]] = field(default_factory=list)
    monitor: str = "val_loss"  # training.monitor: the metric that chose the epoch kept
    best_score: float = math.nan  # its value at that epoch (== best_val_loss when monitor is val_loss)

    @property
    def epochs(self) -> int:
        """Epochs trained (the history's epoch-0 row, the untrained model's validation, is not one)."""
        return sum(1 for row in self.history if row.get("epoch", 1) > 0)


def run_training(
    task: str | Task,
    params: StrictModel,
    data: Mapping[str, Any],
    *,
    tracking: MlflowTarget | None = None,
    callbacks: Iterable[pl.Callback] = (),
    checkpoint_dir: str | Path | None = None,
    resume_root: str | Path | None = None,
) -> FitResult:
    """Train ``task`` with its typed ``params`` (validated once, by the caller) on prepared ``data``.

    ``resume_root``: where ``training.resume: auto`` keeps each configuration's folder (default
    ``./checkpoints``, the Kedro project's when a node calls this).
    """
    task = get_task(task) if isinstance(task, str) else task
    cfg: TrainingConfig = params.training
    check_monitor(cfg, task.name, task.logged_metrics(params))
    where = f"{task.name}.training.trainer"
    plan = distributed.plan_training(cfg.trainer, distributed.Platform.detect(cfg.trainer), where=where)
    if plan.launcher == "torchrun":
        if list(callbacks):
            raise LstmLabError(f"{where}.strategy: {plan.strategy} trains in torchrun processes, which cannot run "
                               "the caller's callbacks; use ddp_spawn or ddp_fork")
        return _run_with_torchrun(task, params, data, plan, tracking=tracking, checkpoint_dir=checkpoint_dir)
    # plan.strategy differs from the setting only for 'auto' on several GPUs inside a torchrun rank ('ddp').
    cfg = cfg.model_copy(update={"trainer": cfg.trainer.model_copy(update={"strategy": plan.strategy})})
    resume_dir = None
    if cfg.resume == "auto" and checkpoint_dir is None and not distributed.started_by_torchrun():
        try:
            resume_dir = resume.resume_folder(resume_root or Path.cwd() / "checkpoints", task.name,
                                              params.model_dump(mode="json"), data)
        except TypeError as exc:  # data the digest cannot read: train, just not resumably
            log.warning("%s: training.resume is off for this run: %s", task.name, exc)
    pl.seed_everything(cfg.seed, workers=True)  # before the model is built: weight init is seeded too
    module, datamodule = task.build(params, data)
    return fit(module, datamodule, cfg, tracking=tracking, callbacks=callbacks, checkpoint_dir=checkpoint_dir,
               resume_dir=resume_dir)


def _run_with_torchrun(task: Task, params: StrictModel, data, plan, *, tracking, checkpoint_dir) -> FitResult:
    """Write the job, run it under torchrun, and rebuild rank 0's result in this process."""
    with _job_directory(checkpoint_dir) as job_dir:
        for stale in (distributed.RESULT_FILE, distributed.HISTORY_FILE, distributed.CHECKPOINT_FILE):
            (job_dir / stale).unlink(missing_ok=True)  # a failed job must not pass for an earlier one
        distributed.write_job(job_dir, params.model_dump(mode="json"), data)
        result = distributed.launch_torchrun(plan, task.name, job_dir, tracking, where=f"{task.name}.training.trainer")
        checkpoint, _ = load_checkpoint(job_dir / distributed.CHECKPOINT_FILE)
        history = read_history(job_dir / distributed.HISTORY_FILE)
    module, _ = task.build(params, data)  # an empty shell of the right shape for rank 0's best weights
    module.load_state_dict(checkpoint["state_dict"])
    best_val = float(result["best_val_loss"])
    monitor = params.training.monitor
    score = result.get("best_score")  # rank 0's FitResult.best_score, when lstm_lab.train writes it
    if score is None and monitor == "val_loss":
        score = best_val
    elif score is None:  # the kept epoch's row: 0 when the untrained weights were kept (no optimiser step)
        row = _row_of(history, 0 if checkpoint.get("global_step") == 0 else int(checkpoint.get("epoch", -1)) + 1)
        score = row.get(monitor, math.nan) if row else math.nan
    score = float(score)
    log.info("best val_loss %.6f after %d epoch(s) on %d torchrun rank(s)", best_val, len(history), plan.world_size)
    return FitResult(module=module, checkpoint=checkpoint, best_val_loss=best_val, history=history,
                     monitor=monitor, best_score=score)


@contextlib.contextmanager
def _job_directory(checkpoint_dir: str | Path | None) -> Iterator[Path]:
    """$LSTM_LAB_JOB_DIR (one path every node can read), else the checkpoint directory, else a scratch one."""
    chosen = os.environ.get(distributed.JOB_DIR_ENV) or checkpoint_dir
    if chosen:
        path = Path(chosen).resolve()
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix=resume.scratch_prefix("lstm_lab_job_")) as scratch:
        yield Path(scratch)


def load_checkpoint(path: str | Path) -> tuple[dict[str, Any], float | None]:
    """A checkpoint file as a dict without callback state, and the best score ModelCheckpoint kept in it.

    Callback state holds the checkpoint directory's (often random) path: it is dropped, so that identical
    training gives byte-identical checkpoints (stable DVC hashes). Weights, optimiser and loop state stay.
    """
    from lstm_lab.checkpoints import load_checkpoint_file

    checkpoint = load_checkpoint_file(path)  # weights_only: a file with code in it is refused, never run
    score = None
    for key, state in (checkpoint.pop("callbacks", None) or {}).items():
        if key.startswith("ModelCheckpoint") and state.get("best_model_score") is not None:
            score = float(state["best_model_score"])
    return checkpoint, score


# --------------------------------------------------------------------------------------------------------------
# Trainer factory and fit
# --------------------------------------------------------------------------------------------------------------
def build_trainer(cfg: TrainingConfig, callbacks: list[pl.Callback], root_dir: str | Path,
                  plugins: list[Any] | None = None) -> pl.Trainer:
    t = cfg.trainer
    precision = "32-true" if t.precision == "32" else t.precision
    return pl.Trainer(
        max_epochs=cfg.max_epochs,
        accelerator=t.accelerator,
        devices=t.devices,
        num_nodes=t.num_nodes,
        strategy=t.strategy,
        precision=precision,
        accumulate_grad_batches=t.accumulate_grad_batches,
        gradient_clip_val=t.gradient_clip_val,
        limit_train_batches=t.limit_train_batches,
        limit_val_batches=t.limit_val_batches,
        deterministic=cfg.deterministic,
        callbacks=[*callbacks, compact_progress_bar()] if sys.stderr.isatty() else callbacks,
        logger=False,  # metrics go to MLflow through MlflowEpochMetrics, with an explicit run id
        default_root_dir=str(root_dir),
        enable_progress_bar=sys.stderr.isatty(),
        enable_model_summary=False,
        num_sanity_val_steps=0,
        plugins=plugins or None,
        # Lightning's Timer callback: checked after every training batch; its elapsed time is part of the
        # checkpoint's callback state, so a resumed fit counts the time already spent.
        max_time=timedelta(minutes=cfg.max_minutes) if cfg.max_minutes is not None else None,
    )


def fit(
    module: pl.LightningModule,
    datamodule: pl.LightningDataModule,
    cfg: TrainingConfig,
    *,
    tracking: MlflowTarget | None = None,
    callbacks: Iterable[pl.Callback] = (),
    checkpoint_dir: str | Path | None = None,
    resume_dir: str | Path | None = None,
) -> FitResult:
    """Train ``module`` on ``datamodule``; return the best weights by ``cfg.monitor``, their val_loss and score,
    and the epoch history.

    ``resume_dir``: this configuration's resume folder (``run_training`` names it): the fit continues from its
    ``last.ckpt`` if there is one, writes one after every epoch, and deletes the folder once training completes.
    None: checkpoints go to ``checkpoint_dir`` or a scratch folder named after this process.
    """
    from lstm_lab.training.runtime import runtime_for_fit  # threads, subnormal floats: here and in every rank
    callbacks = runtime_for_fit(cfg, callbacks)
    resume.remove_orphan_scratch()  # folders of fits that were killed: their `with` never cleaned up
    with contextlib.ExitStack() as stack:
        folder = Path(resume_dir) if resume_dir is not None else None
        if folder is not None and not stack.enter_context(resume.claimed(folder)):
            log.warning("%s is in use by another run of the same configuration: training without resuming", folder)
            folder = None
        if folder is not None:
            ckpt_dir = folder
        elif checkpoint_dir:
            ckpt_dir = Path(checkpoint_dir)
        else:
            ckpt_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=resume.scratch_prefix())))
        start = resume.resumable(folder, module) if folder is not None else None
        if start is not None:
            log.info("resuming %s from epoch %d of %s", folder.name.rsplit("-", 1)[0], start[1], folder)
        # Rank 0 also writes the rows to a file: under ddp_spawn/ddp_fork it runs in a child process, and
        # this process's copy of the callback stays empty.
        history = EpochHistory(ckpt_dir / distributed.HISTORY_FILE)
        monitor, mode = cfg.monitor, cfg.monitor_mode
        best = ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor=monitor, mode=mode, save_top_k=1)
        all_callbacks: list[pl.Callback] = [history, best, InterruptCheck(), *callbacks]
        untrained = None
        if getattr(module, "initial_validation", False):
            all_callbacks.insert(0, InitialValidation())  # first: the others read its value
            untrained = {k: v.detach().clone() for k, v in module.state_dict().items()}
        if cfg.early_stopping_patience:
            all_callbacks.append(
                EarlyStopping(
                    monitor=monitor,
                    mode=mode,
                    patience=cfg.early_stopping_patience,
                    min_delta=cfg.early_stopping_min_delta,
                    check_finite=True,  # a NaN loss stops the run instead of wasting the remaining epochs
                )
            )
        if tracking is not None:
            from lstm_lab.tracking.epoch_metrics import MlflowEpochMetrics

            all_callbacks.append(MlflowEpochMetrics(tracking))
        plugins = None
        if folder is not None:
            all_callbacks.append(resume.ResumeState(folder))
            plugins = [resume.AtomicCheckpointIO()]  # a kill while writing must not leave a truncated file
        trainer = build_trainer(cfg, all_callbacks, ckpt_dir, plugins)
        trainer.fit(module, datamodule=datamodule, ckpt_path=start[0] if start else None)
        if not trainer.is_global_zero:  # a torchrun rank other than 0: the file may live on another node
            return FitResult(module=module, checkpoint=None, best_val_loss=math.nan, history=[], monitor=monitor)
        if not best.best_model_path:
            raise RuntimeError(f"training produced no checkpoint: {monitor} was never finite")
        if _out_of_time(trainer):
            log.info("training.max_minutes (%g) reached after %d epoch(s): keeping the best checkpoint so far",
                     cfg.max_minutes, trainer.current_epoch)
        # Lightning hands best_model_path back from spawned/forked ranks but not best_model_score, so the score
        # comes from the checkpoint's own ModelCheckpoint state.
        checkpoint, score = load_checkpoint(best.best_model_path)
        rows = history.collect()
        if folder is not None:
            resume.remove_folder(folder)  # completed: a later identical run trains from scratch
    best_score = score if score is not None else float(best.best_model_score)
    kept_row = _row_of(rows, int(checkpoint.get("epoch", -1)) + 1)  # the checkpoint's epoch counts from 0
    initial_row = _row_of(rows, 0)
    initial = float(initial_row.get(monitor, math.nan)) if initial_row else math.nan
    not_beaten = not initial > best_score if mode == "min" else not initial < best_score
    if untrained is not None and math.isfinite(initial) and not_beaten:
        # No epoch beat the untrained model (for the forecaster: the naive forecast): keep it.
        log.info("%s %.6f of the untrained model is not beaten by any epoch (best %.6f): keeping it", monitor,
                 initial, best_score)
        checkpoint = {**checkpoint, "state_dict": untrained, "epoch": 0, "global_step": 0}
        best_score, kept_row = initial, initial_row
    if monitor == "val_loss":
        best_val = best_score
    else:  # the val_loss of the epoch the monitored metric chose
        best_val = float(kept_row.get("val_loss", math.nan)) if kept_row else math.nan
    module.load_state_dict(checkpoint["state_dict"])
    trained = sum(1 for row in rows if row.get("epoch", 1) > 0)
    if monitor == "val_loss":
        log.info("best val_loss %.6f after %d epoch(s)", best_val, trained)
    else:
        log.info("best %s %.6f (val_loss %.6f) after %d epoch(s)", monitor, best_score, best_val, trained)
    return FitResult(module=module, checkpoint=checkpoint, best_val_loss=best_val, history=rows, monitor=monitor,
                     best_score=best_score)


def _row_of(rows: list[dict[str, float]], epoch: int) -> dict[str, float] | None:
    """The history row of ``epoch`` (0: the untrained model's validation), the last one if it repeats."""
    found = [row for row in rows if row.get("epoch") == epoch]
    return found[-1] if found else None


def _out_of_time(trainer: pl.Trainer) -> bool:
    """Whether the fit stopped because ``training.max_minutes`` ran out (Lightning's Timer)."""
    from lightning.pytorch.callbacks import Timer

    for callback in trainer.callbacks:
        if isinstance(callback, Timer):
            remaining = callback.time_remaining()
            return remaining is not None and remaining <= 0
    return False
