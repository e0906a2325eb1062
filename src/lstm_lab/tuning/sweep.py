"""Run a Ray Tune sweep over one pipeline's parameters through the shared training entry point.

One trial = one configuration from the search space = ``executions_per_trial`` fits of
``run_training(task, params, data)`` with seeds ``seed, seed+1, ...``. The fits run one after another; the last
one reports to Tune after every validation (``TuneReportCheckpointCallback``) the mean, over all executions so
far, of the val_loss at that epoch. ASHA therefore ranks trials on averaged curves, but it can stop a trial only
during its last execution: with several executions the saving is smaller, and the default is one.

The prepared data travel to the trials once, through Ray's object store (``tune.with_parameters``). MLflow: the
caller's run (the Kedro run) is the parent; after the sweep every trial gets a child run
(``mlflow.parentRunId``) with its sampled parameters (same dotted names as a pipeline run) and its per-epoch
``val_loss``. Logging from this process, after the fact, keeps the trials free of database writes (SQLite has
one writer), works unchanged on a remote Ray cluster and covers trials finished before a resume.

Ray: ``tuning.ray_cluster`` (a local cluster on 127.0.0.1 only, or the cluster ``$RAY_ADDRESS`` names).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from ray.tune.integration.pytorch_lightning import TuneReportCheckpointCallback

from lstm_lab.errors import LstmLabError
from lstm_lab.params import sweep_name
from lstm_lab.schema import StrictModel
from lstm_lab.tracking.child_runs import log_trials
from lstm_lab.tracking.store import MlflowTarget
from lstm_lab.training.task import Task
from lstm_lab.tuning.config import TuneParams
from lstm_lab.tuning.ray_cluster import connect_ray
from lstm_lab.tuning.space import SearchSpace, apply, check_space, resolved

log = logging.getLogger(__name__)

METRIC, MODE = "val_loss", "min"
CHECKPOINT_FILE = "checkpoint"


@dataclass
class SweepResult:
    table: pd.DataFrame  # one row per trial, best first
    best_values: dict[str, Any]  # the winning sample, dotted path → value
    best_params: dict[str, Any]  # the pipeline's full parameters with the winning sample written in
    best_val_loss: float
    best_checkpoint: dict[str, Any] | None  # Lightning checkpoint of the best trial's best epoch
    experiment_path: Path


# --------------------------------------------------------------------------------------------------------------
# Inside a trial (a Ray worker process)
# --------------------------------------------------------------------------------------------------------------
class _AveragedReport(TuneReportCheckpointCallback):
    """Reports the mean val_loss over this and the earlier executions at the same epoch, plus a checkpoint.

    An earlier execution that stopped before this epoch contributes its best value. A non-finite loss is
    reported as +inf, so schedulers rank the trial last instead of failing on NaN.
    """

    def __init__(self, earlier: list[list[float]]):
        super().__init__(metrics=[METRIC], filename=CHECKPOINT_FILE, save_checkpoints=True, on="validation_end")
        self.earlier = earlier

    def _get_report_dict(self, trainer, pl_module):
        report = super()._get_report_dict(trainer, pl_module)
        if not report:
            return report
        epoch = trainer.current_epoch
        own = float(report[METRIC])
        values = [own] + [curve[epoch] if epoch < len(curve) else min(curve) for curve in self.earlier if curve]
        mean = float(np.mean(values)) if all(math.isfinite(v) for v in values) else math.inf
        return {METRIC: mean, "val_loss_last_execution": own if math.isfinite(own) else math.inf,
                "epoch": epoch + 1}


def _trial(sampled: dict[str, Any], *, task: Task, params: StrictModel, data: Mapping[str, Any],
           space: SearchSpace, executions: int, max_epochs: int | None, threads: int) -> None:
    from lstm_lab.training.entry import run_training
    from lstm_lab.training.runtime import apply_runtime

    # Before anything runs: the trial's CPUs (training.num_threads if set) and the subnormal flag, which the
    # intra-op threads copy when they start; the fits below keep this share.
    apply_runtime(params.training, cpus=threads)
    values = {**space.decode(sampled), "training.resume": "never"}  # Ray Tune restarts a failed trial itself
    if max_epochs is not None:
        values["training.max_epochs"] = max_epochs
    curves: list[list[float]] = []
    for execution in range(executions):
        # This configuration's one validation (check_space already proved every corner of the space valid).
        config = task.with_values(params, {**values, "training.seed": params.training.seed + execution})
        last = execution == executions - 1
        callbacks = [_AveragedReport(curves)] if last else []
        result = run_training(task, config, data, callbacks=callbacks)
        curves.append([float(row.get(METRIC, math.nan)) for row in result.history])


# --------------------------------------------------------------------------------------------------------------
# The sweep (this process)
# --------------------------------------------------------------------------------------------------------------
def run_sweep(
    task: Task,
    params: StrictModel,
    data: Mapping[str, Any],
    settings: TuneParams,
    *,
    storage_path: str | Path,
    tracking: MlflowTarget | None = None,
) -> SweepResult:
    """Sweep ``settings.space`` around the task's typed parameters ``params`` on ``data``."""
    from ray import tune
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    where = sweep_name(task.name)
    space = settings.search_space
    base = params.model_dump(mode="json")  # plain values: what trials receive and the fingerprint hashes
    check_space(space, base, task.schema, where)
    name = f"{where}-{_fingerprint(task.name, base, settings)}"  # same settings → same folder → resumable
    storage = Path(storage_path).resolve()
    experiment = storage / name
    started_ray = connect_ray(settings)
    try:
        trainable = tune.with_parameters(
            _trial, task=task, params=params, data=dict(data), space=space,
            executions=settings.executions_per_trial, max_epochs=settings.max_epochs,
            threads=max(1, int(settings.resources_per_trial.cpu)),
        )
        trainable = tune.with_resources(trainable, settings.resources_per_trial.model_dump())
        if settings.resume and experiment.exists() and tune.Tuner.can_restore(str(experiment)):
            log.info("resuming the sweep in %s", experiment)
            tuner = tune.Tuner.restore(str(experiment), trainable, resume_unfinished=True, resume_errored=False)
        else:
            if experiment.exists():
                shutil.rmtree(experiment)  # resume: false, or a folder Tune cannot read: start over
            tuner = tune.Tuner(
                trainable,
                param_space=space.to_tune(),
                tune_config=tune.TuneConfig(
                    metric=METRIC, mode=MODE, num_samples=settings.num_samples,
                    # the random generator limits concurrency itself (Tune ignores the setting for it)
                    max_concurrent_trials=settings.max_concurrent_trials if settings.search.algorithm != "random"
                    else None,
                    scheduler=_scheduler(settings, base), search_alg=_searcher(settings),
                    reuse_actors=True,  # one worker process runs trial after trial: torch is imported once
                    trial_name_creator=lambda trial: f"{task.name}_{trial.trial_id}",
                    trial_dirname_creator=lambda trial: f"{task.name}_{trial.trial_id}",
                ),
                run_config=tune.RunConfig(
                    name=name,
                    storage_path=str(storage),
                    failure_config=tune.FailureConfig(max_failures=0, fail_fast=False),  # a bad trial ≠ a bad sweep
                    checkpoint_config=tune.CheckpointConfig(
                        num_to_keep=1, checkpoint_score_attribute=METRIC, checkpoint_score_order=MODE
                    ),
                    verbose=1 if sys.stdout.isatty() else 0,  # Ray's live trial table; the log says the rest
                    # The per-trial files _collect reads (progress.csv, result.json); no TensorBoard files: the
                    # sweep's MLflow runs are its dashboard (ray_cluster turns Tune's automatic loggers off).
                    callbacks=[CSVLoggerCallback(), JsonLoggerCallback()],
                ),
            )
        began = time.monotonic()
        grid = tuner.fit()
        log.info("sweep %s: %d trial(s) in %.1f s", name, len(grid), time.monotonic() - began)
    finally:
        if started_ray:
            import ray

            ray.shutdown()
    return _collect(grid, space, base, settings, experiment, tracking)


def _fingerprint(task: str, base: Mapping[str, Any], settings: TuneParams) -> str:
    fixed = settings.model_dump(mode="json", exclude={"resume", "ray", "storage_path"})
    text = json.dumps({"task": task, "base": base, "sweep": fixed}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def _scheduler(settings: TuneParams, base: Mapping[str, Any]):
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    s = settings.scheduler
    if s.type == "fifo":
        return FIFOScheduler()
    max_t = settings.max_epochs or int(base.get("training", {}).get("max_epochs", 100))
    return ASHAScheduler(time_attr="training_iteration", max_t=max_t, grace_period=min(s.grace_period, max_t),
                         reduction_factor=s.reduction_factor)


def _searcher(settings: TuneParams):
    s = settings.search
    if s.algorithm == "optuna":
        from ray.tune.search.optuna import OptunaSearch

        return OptunaSearch(metric=METRIC, mode=MODE, seed=s.seed)
    from ray.tune.search.basic_variant import BasicVariantGenerator

    return BasicVariantGenerator(random_state=s.seed, max_concurrent=settings.max_concurrent_trials or 0)


# --------------------------------------------------------------------------------------------------------------
# Results: table, best configuration and checkpoint, MLflow child runs
# --------------------------------------------------------------------------------------------------------------
def _collect(grid, space: SearchSpace, base: dict[str, Any], settings: TuneParams, experiment: Path,
             tracking: MlflowTarget | None) -> SweepResult:
    from lstm_lab.training.entry import load_checkpoint

    unfinished = len(grid) - grid.num_terminated - grid.num_errors
    if unfinished:  # Ctrl+C: Tune saved its state and returned early; these trials never completed
        import signal

        from lstm_lab.interrupts import RunInterrupted

        raise RunInterrupted(signal.SIGINT, (
            f"the sweep stopped with {unfinished} of {len(grid)} trial(s) unfinished; run the same command again "
            f"to resume it: finished trials are kept in {experiment}"))
    rows, best = [], None
    for result in grid:
        history = result.metrics_dataframe
        curve = history[METRIC].astype(float).tolist() if history is not None and METRIC in history else []
        finite = [v for v in curve if math.isfinite(v)]
        values = space.decode(result.config or _saved_config(result.path))
        row = {
            "trial_id": (result.metrics or {}).get("trial_id") or Path(result.path).name,
            "status": "ERROR" if result.error else "TERMINATED",
            METRIC: min(finite) if finite else math.nan,
            "epochs": len(curve),
            "diverged": bool(curve) and len(finite) < len(curve),
            "time_s": round(float((result.metrics or {}).get("time_total_s", math.nan)), 2),
            "node_ip": (result.metrics or {}).get("node_ip", ""),
            **{key: _cell(value) for key, value in values.items()},
            "error": _error_line(result.error),
        }
        if result.error:
            log.warning("trial %s failed: %s", row["trial_id"], row["error"])
        elif row["diverged"]:
            log.warning("trial %s diverged (non-finite val_loss)", row["trial_id"])
        rows.append((row, result, values, curve))
        if finite and (best is None or row[METRIC] < best[0][METRIC]):
            best = (row, result, values)
    if best is None:
        errors = "; ".join(f"{r['trial_id']}: {r['error'] or 'no finite val_loss'}" for r, *_ in rows[:3])
        raise LstmLabError(f"tune: no trial finished with a finite val_loss ({errors})")
    best_row, best_result, best_values = best

    checkpoint = None
    ckpt = best_result.get_best_checkpoint(METRIC, MODE)
    if ckpt is not None:
        with ckpt.as_directory() as folder:
            checkpoint, _ = load_checkpoint(Path(folder) / CHECKPOINT_FILE)

    best_params = apply(base, best_values)
    if settings.max_epochs is not None:  # re-training the best configuration trains as the trial did
        best_params.setdefault("training", {})["max_epochs"] = settings.max_epochs

    # Child runs log each sampled parameter as the pipeline run would (model.num_layers folded into the
    # resolved model.hidden_sizes list), so trial and pipeline runs line up column by column in MLflow.
    trials = [(row, result.metrics_dataframe, resolved(base, values), curve) for row, result, values, curve in rows]
    run_ids = log_trials(tracking, trials, METRIC) if tracking is not None else {}
    table = pd.DataFrame([{**row, "mlflow_run_id": run_ids.get(row["trial_id"], "")} for row, *_ in rows])
    table["best"] = table["trial_id"] == best_row["trial_id"]
    table = table.sort_values(METRIC, na_position="last", kind="stable").reset_index(drop=True)
    log.info("best trial %s: val_loss %.6f with %s", best_row["trial_id"], best_row[METRIC], best_values)
    return SweepResult(table=table, best_values=best_values, best_params=best_params,
                       best_val_loss=float(best_row[METRIC]), best_checkpoint=checkpoint,
                       experiment_path=experiment)


def _saved_config(trial_path: str | None) -> dict[str, Any]:
    """A trial's sample from its folder: Tune hands back no config for a trial that errored before a resume."""
    params = Path(trial_path or "") / "params.json"
    return json.loads(params.read_text()) if trial_path and params.is_file() else {}


def _cell(value: Any) -> Any:
    """Lists (hidden sizes) as their YAML-like text, so one CSV column holds one parameter."""
    return json.dumps(value) if isinstance(value, list | dict) else value


def _error_line(error: BaseException | None) -> str:
    if error is None:
        return ""
    cause = error
    while getattr(cause, "cause", None) is not None:  # RayTaskError wraps the trial's own exception
        cause = cause.cause
    text = f"{type(cause).__name__}: {cause}".strip()
    return text.splitlines()[-1][:500] if "\n" in text else text[:500]
