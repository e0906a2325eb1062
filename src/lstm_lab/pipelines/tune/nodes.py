"""The sweep node: prepared training data + the task's parameters + the sweep settings → Ray Tune sweep.

Outputs (all logged to the sweep's MLflow run, the parent of one child run per trial): the results table, the
best configuration in the shape of ``parameters_<pipeline>.yml`` (copy it to ``conf/local/`` to re-train), the
best checkpoint, a plot of val_loss against the most important parameters, and a summary of numbers. The best
model is also logged into the sweep's run and registered like a pipeline's (``<task>.serving``), scored by its
validation loss (``lstm_lab.serving.registry``: it becomes champion only over a champion scored the same way).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lstm_lab.schema import StrictModel
from lstm_lab.training.task import Task
from lstm_lab.tuning.config import TuneParams


def make_sweep(task: Task):
    """The sweep node of ``tune_<task>`` (a Kedro node needs a plain function of its inputs)."""

    def sweep(data: dict[str, Any], params: StrictModel, tuning: TuneParams):
        from lstm_lab.evaluation import plots
        from lstm_lab.tracking import active_target
        from lstm_lab.tuning.space import LAYERS
        from lstm_lab.serving.registry import Score, publish
        from lstm_lab.tuning.sweep import METRIC, MODE, run_sweep

        result = run_sweep(task, params, data, tuning,
                           storage_path=Path.cwd() / tuning.storage_path,  # kedro runs in the project root
                           tracking=active_target())
        swept = [key for key in tuning.space if key != LAYERS] + ([LAYERS] if LAYERS in tuning.space else [])
        table = result.table
        summary = {
            "best_val_loss": result.best_val_loss,
            "trials": len(table),
            "trials_failed": int((table["status"] == "ERROR").sum()),
            "trials_diverged": int(table["diverged"].sum()),
            "epochs_total": int(table["epochs"].sum()),
        }
        figure = plots.sweep_importance(table, [k for k in swept if k in table], METRIC)
        if result.best_checkpoint is not None:
            extras = {"tokenizer": data["tokenizer"]} if "tokenizer" in data else {}  # sentiment bundles it
            publish(task.name, params, result.best_checkpoint, score=Score(METRIC, result.best_val_loss, MODE),
                    **extras)
        return table, {task.name: result.best_params}, result.best_checkpoint, figure, summary

    sweep.__name__ = f"sweep_{task.name}"
    return sweep
