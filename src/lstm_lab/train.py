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
    from lstm_lab.schema import validate_section
    from lstm_lab.tracking.job_run import end_job_run, start_job_run
    from lstm_lab.training.entry import run_training
    from lstm_lab.training.task import find_task, task_names

    task = find_task(args.task)
    if task is None:
        raise LstmLabError(f"--task: unknown task {args.task!r} (known: {', '.join(task_names())})")
    # The job's one validation; devices are planned by run_training, with the world torchrun gives.
    params = validate_section(task.schema, task.name, json.loads(args.config.read_text()), where=str(args.config))
    if distributed.started_by_torchrun():
        params = _fit_to_launcher(params)
    data = distributed.read_data(args.data)
    args.out.mkdir(parents=True, exist_ok=True)

    tracking, own_run = (start_job_run(args.tracking_uri, args.run_id, args.experiment or task.name,
                                       params.model_dump(mode="json"))
                         if distributed.is_rank_zero() else (None, False))
    status = "FAILED"
    try:
        # Lightning's checkpoints in a folder of their own: the job files beside them are not its business.
        result = run_training(task, params, data, tracking=tracking, checkpoint_dir=args.out / "checkpoints")
        status = "FINISHED"
    finally:
        if own_run:
            end_job_run(tracking, status, result.best_val_loss if status == "FINISHED" else None)
    if result.checkpoint is None:  # not rank 0: it reports for the job
        return
    from lstm_lab.checkpoints import save_checkpoint
    from lstm_lab.io import write_text

    # Each through a temporary name, result.json last: a launcher that finds it finds the others complete.
    save_checkpoint(args.out / distributed.CHECKPOINT_FILE, result.checkpoint)
    write_text(args.out / distributed.HISTORY_FILE, "".join(json.dumps(row) + "\n" for row in result.history))
    write_text(args.out / distributed.RESULT_FILE, json.dumps(
        {"best_val_loss": result.best_val_loss, "epochs": result.epochs,
         "checkpoint": str((args.out / distributed.CHECKPOINT_FILE).resolve())}, indent=2))


def _fit_to_launcher(params):
    """Take devices and nodes from torchrun: the launcher, not the file, decides how many ranks there are."""
    current = params.training.trainer
    per_node = int(os.environ["LOCAL_WORLD_SIZE"])
    wanted = {
        "devices": per_node,
        "num_nodes": distributed.world_size() // per_node,
        "strategy": current.strategy if current.strategy in distributed.LAUNCHED else "ddp",
    }
    changed = {k: v for k, v in wanted.items() if getattr(current, k) != v}
    if changed and distributed.is_rank_zero():
        log.info("trainer settings taken from torchrun: %s", changed)
    training = params.training.model_copy(update={"trainer": current.model_copy(update=wanted)})
    return params.model_copy(update={"training": training})


if __name__ == "__main__":
    sys.exit(main())
