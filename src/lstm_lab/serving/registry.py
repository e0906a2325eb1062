"""Publishing a trained model: log it into the run, register it, and alias it ``champion`` or ``challenger``.

Every pipeline's "log and register" node and the sweeps call :func:`publish`. The rule (``<task>.serving``):
the new version becomes ``champion`` when its metric beats the current champion's in ``mode`` (min: lower is
better, max: higher), or when there is no champion; otherwise it becomes ``challenger`` (the alias moves to it;
the champion stays). Ties keep the champion; a NaN score never wins.

Each version carries its score as tags (``lstm_lab.metric``, ``lstm_lab.metric_value``, ``lstm_lab.metric_mode``)
so the next comparison reads the champion's version, not its run (which may be deleted). Scores are compared
only under the same metric: a sweep's model is scored by its validation loss (``val_loss``), a pipeline's by
the rule's test metric. A candidate scored by the rule's metric replaces a champion that was not (it has no
score under the rule); a candidate scored otherwise never displaces one that was.

The run gets the tags ``registered_model`` (``forecast/3``) and ``registered_model_alias``, so the run list
shows which runs produced the champion.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from lstm_lab.errors import LstmLabError
from lstm_lab.serving.config import CHAMPION, ServingParams

log = logging.getLogger(__name__)

CHALLENGER = "challenger"
TAG_METRIC, TAG_VALUE, TAG_MODE = "lstm_lab.metric", "lstm_lab.metric_value", "lstm_lab.metric_mode"


@dataclass(frozen=True)
class Score:
    metric: str
    value: float
    mode: str  # min | max

    def beats(self, other: Score) -> bool:
        if math.isnan(self.value):
            return False
        if math.isnan(other.value):
            return True
        return self.value < other.value if self.mode == "min" else self.value > other.value

    def tags(self) -> dict[str, str]:
        return {TAG_METRIC: self.metric, TAG_VALUE: repr(float(self.value)), TAG_MODE: self.mode}

    @classmethod
    def from_tags(cls, tags: Mapping[str, str]) -> Score | None:
        try:
            return cls(tags[TAG_METRIC], float(tags[TAG_VALUE]), tags[TAG_MODE])
        except (KeyError, ValueError):
            return None


def metric_value(metrics: Mapping[str, Any], key: str, where: str = "metrics") -> float:
    """``metrics[a][b]`` for ``key = "a.b"``, as a float; one error line naming what exists when absent."""
    value: Any = metrics
    for part in key.split("."):
        if not isinstance(value, Mapping) or part not in value:
            known = sorted(value) if isinstance(value, Mapping) else []
            raise LstmLabError(f"{where}: no metric {key!r} (found {', '.join(map(str, known))})")
        value = value[part]
    try:
        return float(value)
    except (TypeError, ValueError):
        raise LstmLabError(f"{where}: metric {key!r} is not a number ({value!r})") from None


@dataclass(frozen=True)
class Decision:
    alias: str  # champion | challenger
    reason: str
    previous_champion: str | None  # its version, when there was one


def decide(candidate: Score, champion: Score | None, champion_version: str | None, rule_metric: str) -> Decision:
    """The rule of the module docstring, on scores alone (no store): which alias a new version gets."""
    if champion_version is None:
        return (Decision(CHALLENGER, f"{candidate.metric} is NaN: never champion", None) if math.isnan(candidate.value)
                else Decision(CHAMPION, "no champion yet", None))
    if champion is not None and (champion.metric, champion.mode) == (candidate.metric, candidate.mode):
        versus = f"{candidate.metric} {candidate.value:.6g} vs {champion.value:.6g} (version {champion_version})"
        if candidate.beats(champion):
            return Decision(CHAMPION, f"better {versus}", champion_version)
        return Decision(CHALLENGER, f"not better {versus}", champion_version)
    if candidate.metric == rule_metric and not math.isnan(candidate.value):
        return Decision(CHAMPION, f"version {champion_version} has no {rule_metric} score", champion_version)
    theirs = champion.metric if champion is not None else "no score"
    return Decision(CHALLENGER, f"scored by {candidate.metric}, the champion (version {champion_version}) by {theirs}: "
                                "not compared", champion_version)


def register(model_uri: str, name: str, score: Score, rule_metric: str | None = None, client=None) -> dict[str, Any]:
    """A new version of registered model ``name`` from ``model_uri``, tagged with ``score`` and aliased by the
    rule. Returns what happened (version, alias, reason, previous champion)."""
    import mlflow

    client = client or mlflow.MlflowClient()
    # register_model prints "Registered model ... already exists. Creating a new version" and "Created version"
    # to stderr itself; the line logged below says the same and the decision.
    with contextlib.redirect_stderr(io.StringIO()):
        version = str(mlflow.register_model(model_uri, name, tags=score.tags()).version)
    aliases = client.get_registered_model(name).aliases  # {alias: version}
    champion_version = None if aliases.get(CHAMPION) is None else str(aliases[CHAMPION])
    champion = None
    if champion_version is not None:
        champion = Score.from_tags(client.get_model_version(name, champion_version).tags)
    decision = decide(score, champion, champion_version, rule_metric or score.metric)
    client.set_registered_model_alias(name, decision.alias, version)
    client.set_model_version_tag(name, version, "lstm_lab.alias_reason", decision.reason)
    log.info("registered %s version %s as %s: %s", name, version, decision.alias, decision.reason)
    return {"registered_model": name, "version": version, **asdict(decision), **asdict(score)}


# ----------------------------------------------------------------------------------------------------- publishing
def _log(task: str, name: str, checkpoint: Mapping[str, Any], params: Any, extras: Mapping[str, Any]):
    """Log ``task``'s pyfunc model; None for a task without one."""
    if task == "forecast" and checkpoint["hyper_parameters"].get("kind") == "panel":
        from lstm_lab.serving import panel_pyfunc

        return panel_pyfunc.log_model(name, checkpoint, history=extras.get("history"))
    if task == "forecast":
        from lstm_lab.serving import forecast_pyfunc

        return forecast_pyfunc.log_model(name, checkpoint, params.data.time_column, history=extras.get("history"),
                                         frequency=params.data.frequency)
    if task == "sentiment":
        from lstm_lab.serving import sentiment_pyfunc

        return sentiment_pyfunc.log_model(name, checkpoint, extras["tokenizer"], params.data.class_names,
                                          params.evaluation.threshold, params.evaluation.batch_size)
    if task == "textgen":
        from lstm_lab.serving import textgen_pyfunc

        return textgen_pyfunc.log_model(name, checkpoint)
    return None


def publish(task: str, params: Any, checkpoint: Mapping[str, Any], metrics: Mapping[str, Any] | None = None, *,
            score: Score | None = None, **extras: Any) -> dict[str, Any]:
    """Log ``task``'s model into the active run as ``params.serving.name`` and, with ``serving.register``,
    register it by the rule. The score is ``serving.metric`` read from ``metrics`` unless ``score`` is given
    (a sweep: its best validation loss). ``extras``: ``history`` (forecast), ``tokenizer`` (sentiment).
    Returns a JSON-able summary; nothing is logged without an active run or with ``serving.log_model: false``."""
    import mlflow

    serving: ServingParams | None = getattr(params, "serving", None)
    run = mlflow.active_run()
    reason = ("no serving settings" if serving is None else f"{task}.serving.log_model is false"
              if not serving.log_model else "no active MLflow run" if run is None else None)
    if reason is not None:
        log.info("%s model not logged: %s", task, reason)
        return {"logged": False, "reason": reason}
    if score is None and metrics is not None:  # read first: a misnamed metric fails before anything is logged
        score = Score(serving.metric, metric_value(metrics, serving.metric, f"{task} metrics"), serving.mode)
    info = _log(task, serving.name, checkpoint, params, extras)
    if info is None:
        log.info("%s model not logged: no pyfunc model for this task", task)
        return {"logged": False, "reason": f"no pyfunc model for task {task!r}"}
    uri = f"runs:/{run.info.run_id}/{serving.name}"
    out: dict[str, Any] = {"logged": True, "run_id": run.info.run_id, "model_uri": uri,
                           "logged_model_uri": info.model_uri, "name": serving.name}
    log.info("%s pyfunc model logged: %s (%s)", task, uri, info.model_uri)
    if serving.register_version and score is None:
        log.info("%s model not registered: no score to rank it by", task)
    elif serving.register_version:
        out.update(register(info.model_uri, serving.registered_model, score, serving.metric))
        mlflow.set_tags({"registered_model": f"{out['registered_model']}/{out['version']}",
                         "registered_model_alias": out["alias"]})
    return out
