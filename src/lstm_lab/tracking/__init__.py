"""MLflow for the whole project: every run is started, fed and ended from this package.

- ``store``: where runs go (``sqlite:///<project>/mlflow.db`` unless ``MLFLOW_TRACKING_URI``), experiments,
  the run active in this process, parameters flattened and logged in batches.
- ``provenance``: git commit and DVC lock digest tags.
- ``pipeline_run``: one run per ``kedro run`` (started and ended by the project hooks), artifacts and metrics
  of the catalog entries that ask for it.
- ``epoch_metrics``: the Lightning callback that appends per-epoch metrics to a run given by id (any process).
- ``job_run``: the run of a torchrun job started without Kedro (``lstm-lab-train``).
- ``child_runs``: one child run per Ray Tune trial under the sweep's run.

Importing the package is cheap: MLflow and Lightning are imported by the functions that use them.
"""

from lstm_lab.tracking.provenance import dvc_lock_digest, dvc_lock_file, git_commit
from lstm_lab.tracking.store import (
    MlflowTarget,
    active_target,
    ensure_experiment,
    flatten,
    log_params,
    tracking_uri,
)

__all__ = [
    "MlflowTarget",
    "active_target",
    "dvc_lock_digest",
    "dvc_lock_file",
    "ensure_experiment",
    "flatten",
    "git_commit",
    "log_params",
    "tracking_uri",
]
