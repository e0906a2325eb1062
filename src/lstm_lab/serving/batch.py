"""Batch scoring (the ``predict_<task>`` pipelines): load a logged or registered model through MLflow, as any
user would, and record in the run which model version scored.

``models:/`` and ``runs:/`` URIs resolve against the tracking store: inside ``kedro run`` that is the project's
(``sqlite:///<project>/mlflow.db``, or ``MLFLOW_TRACKING_URI``), set by the run's hooks.
"""

from __future__ import annotations

import logging
import re

from lstm_lab.errors import LstmLabError, one_line
from lstm_lab.serving.config import PredictParams

log = logging.getLogger(__name__)

_ALIAS_URI = re.compile(r"^models:/(?P<name>[^/@]+)@(?P<alias>[^/]+)$")


def load_model(p: PredictParams, key: str):
    """The pyfunc model ``p`` names, or one error line saying how to get one."""
    import mlflow
    from mlflow.exceptions import MlflowException

    uri = p.uri()
    try:
        model = mlflow.pyfunc.load_model(uri)
    except (MlflowException, OSError) as exc:
        task = key.removeprefix("predict_")
        raise LstmLabError(
            f"{key}: cannot load {uri} from {mlflow.get_tracking_uri()} ({one_line(exc)[:300]}); train and register "
            f"one first (kedro run --pipelines={task}) or set {key}.model_uri"
        ) from None
    tags = {"scored_model_uri": uri}
    match = _ALIAS_URI.match(uri)
    if match:  # record the version the alias pointed at: the alias moves, the run's record must not
        version = mlflow.MlflowClient().get_model_version_by_alias(match["name"], match["alias"])
        tags["scored_model_version"] = f"{version.name}/{version.version}"
    if mlflow.active_run() is not None:
        mlflow.set_tags(tags)
    log.info("scoring with %s", ", ".join(tags.values()))
    return model
