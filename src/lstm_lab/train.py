"""``lstm-lab-train``: one rank of a multi-process training job, without Kedro.

Started by torchrun, once per device and node::

    torchrun --nproc-per-node=4 --nnodes=2 ... -m lstm_lab.train --task forecast \
        --config job/config.json --data job/data.npz --out job [--tracking-uri U --run-id R]

Every rank reads the same job files (``distributed.write_job`` writes them; the Kedro node does so when
``strategy: ddp``), trains through ``run_training`` with the world size torchrun gives, and rank 0 writes
``<out>/model.ckpt`` (the best checkpoint, loadable on its own), ``<out>/history.jsonl`` (one row per epoch)
and ``<out>/result.json``. With ``--tracking-uri``, rank 0 logs per-epoch metrics to run ``--run-id``, or to a
new run in ``--experiment`` when no run id is given.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from lstm_lab.errors import LstmLabError, one_line
from lstm_lab.training import distributed

log = logging.getLogger("lstm_lab.train")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="lstm-lab-train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="forecast", help="training task (default: forecast)")
    parser.add_argument("--config", required=True, type=Path, help="resolved parameters of the task, as JSON")
    parser.add_argument("--data", required=True, type=Path, help="prepared arrays (.npz from write_job)")
    parser.add_argument("--out", required=True, type=Path, help="job directory: checkpoints, history, result")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI; rank 0 logs per-epoch metrics there")
    parser.add_argument("--run-id", help="existing MLflow run to log to (else a new run in --experiment)")
    parser.add_argument("--experiment", help="MLflow experiment of a new run (default: the task name)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rank = distributed.global_rank()
    logging.basicConfig(level=logging.WARNING, format=f"%(asctime)s rank {rank} %(levelname)s %(name)s: %(message)s")
    logging.getLogger("lstm_lab").setLevel(logging.INFO)
    try:
        train(args)
    except LstmLabError as exc:
        print(f"Error: {one_line(exc)}", file=sys.stderr)  # one line: the parent reads the first "Error: " line
        return 1
    return 0


def train(args: argparse.Namespace) -> None:
    from lstm_lab.training.entry import TASKS, run_training

    if args.task not in TASKS:
        raise LstmLabError(f"--task: unknown task {args.task!r} (known: {', '.join(sorted(TASKS))})")
    config = json.loads(args.config.read_text())  # run_training validates the training section itself
    if distributed.started_by_torchrun():
        config = _fit_to_launcher(config)
    data = distributed.read_data(args.data)
    args.out.mkdir(parents=True, exist_ok=True)

    tracking, own_run = _tracking(args, config) if distributed.is_rank_zero() else (None, False)
    status = "FAILED"
    try:
        # Lightning's checkpoints in a folder of their own: the job files beside them are not its business.
        result = run_training(args.task, config, data, tracking=tracking, checkpoint_dir=args.out / "checkpoints")
        status = "FINISHED"
    finally:
        if own_run:
            _end_run(tracking, status, result.best_val_loss if status == "FINISHED" else None)
    if result.checkpoint is None:  # not rank 0: it reports for the job
        return
    import torch

    # Each through a temporary name, result.json last: a launcher that finds it finds the others complete.
    _atomic(args.out / distributed.CHECKPOINT_FILE, lambda p: torch.save(result.checkpoint, p))
    _atomic(args.out / distributed.HISTORY_FILE,
            lambda p: p.write_text("".join(json.dumps(row) + "\n" for row in result.history)))
    _atomic(args.out / distributed.RESULT_FILE, lambda p: p.write_text(json.dumps(
        {"best_val_loss": result.best_val_loss, "epochs": result.epochs,
         "checkpoint": str((args.out / distributed.CHECKPOINT_FILE).resolve())}, indent=2)))


def _fit_to_launcher(config: dict[str, Any]) -> dict[str, Any]:
    """Take devices and nodes from torchrun: the launcher, not the file, decides how many ranks there are."""
    from lstm_lab.training.config import TrainerSettings

    trainer = dict(config.get("training", {}).get("trainer", {}))
    current = TrainerSettings.model_validate(trainer)  # defaults filled in, to report real changes only
    per_node = int(os.environ["LOCAL_WORLD_SIZE"])
    wanted = {
        "devices": per_node,
        "num_nodes": distributed.world_size() // per_node,
        "strategy": current.strategy if current.strategy in distributed.LAUNCHED else "ddp",
    }
    changed = {k: v for k, v in wanted.items() if getattr(current, k) != v}
    if changed and distributed.is_rank_zero():
        log.info("trainer settings taken from torchrun: %s", changed)
    return {**config, "training": {**config.get("training", {}), "trainer": {**trainer, **wanted}}}


def _tracking(args: argparse.Namespace, config: dict[str, Any]):
    """(MlflowTarget or None, whether this process created the run and so must end it)."""
    from lstm_lab.training.callbacks import MlflowTarget

    if not args.tracking_uri:
        return None, False
    if args.run_id:
        return MlflowTarget(args.tracking_uri, args.run_id), False
    from mlflow import MlflowClient

    from lstm_lab.tracking import flatten

    client = MlflowClient(tracking_uri=args.tracking_uri)
    name = args.experiment or args.task
    found = client.get_experiment_by_name(name)
    experiment_id = found.experiment_id if found else client.create_experiment(name)
    run = client.create_run(experiment_id, tags={"launcher": "lstm-lab-train"})
    params = [(k, str(v)[:6000]) for k, v in flatten(config).items()]
    for start in range(0, len(params), 90):  # MLflow takes at most 100 params per batch
        from mlflow.entities import Param

        client.log_batch(run.info.run_id, params=[Param(k, v) for k, v in params[start : start + 90]])
    log.info("MLflow run %s in experiment %r at %s", run.info.run_id, name, args.tracking_uri)
    return MlflowTarget(args.tracking_uri, run.info.run_id), True


def _end_run(target, status: str, best_val_loss: float | None) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=target.tracking_uri)
    if best_val_loss is not None:
        client.log_metric(target.run_id, "best_val_loss", best_val_loss)
    client.set_terminated(target.run_id, status=status)


def _atomic(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)


if __name__ == "__main__":
    sys.exit(main())
