"""Which schema validates which ``<key>:`` section of the parameters, and the validation itself.

A key is either a task (``forecast``, ``sentiment``, ... — validated by that task, devices checked too), a
sweep over one (``tune_<task>``, validated by the sweep settings' schema) or the batch scoring of one
(``predict_<task>``, validated by ``lstm_lab.serving.config``). This module is the only place that knows the
``tune_`` and ``predict_`` prefixes; ``swept_task`` reads them.

``validate(key, raw)`` runs once per ``kedro run``, when Kedro builds the run's parameters (the project
context, ``lstm_lab.context``), before any hook or node: nodes, Ray trials and training receive the typed
object it returns.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from lstm_lab.schema import validate_section

SWEEP_PREFIX = "tune_"
PREDICT_PREFIX = "predict_"


def params_key(pipeline: str) -> str:
    """The top-level parameters key of a registered pipeline: ``__default__`` runs forecast."""
    return "forecast" if pipeline == "__default__" else pipeline


def sweep_name(task: str) -> str:
    """The pipeline and parameters key of the sweep over ``task``: ``tune_forecast``."""
    return f"{SWEEP_PREFIX}{task}"


def swept_task(key: str) -> str | None:
    """``tune_forecast`` → ``forecast``; None for a key that is not a sweep."""
    return key[len(SWEEP_PREFIX):] if key.startswith(SWEEP_PREFIX) else None


def derived_task(key: str) -> str | None:
    """The task a derived section works on: ``tune_forecast`` (a sweep over it) and ``predict_forecast`` (batch
    scoring with its registered model) → ``forecast``; None for a task's own key. A derived section's schema
    names its runs itself (``describe``)."""
    for prefix in (SWEEP_PREFIX, PREDICT_PREFIX):
        if key.startswith(prefix):
            return key[len(prefix):]
    return None


def _derived_schema(key: str) -> type[BaseModel] | None:
    """The schema of a ``tune_`` / ``predict_`` section over an existing task; None otherwise."""
    from lstm_lab.training.task import find_task

    base = derived_task(key)
    if base is None or find_task(base) is None:
        return None
    if key.startswith(PREDICT_PREFIX):
        from lstm_lab.serving.config import predict_schema

        return predict_schema(base)
    from lstm_lab.tuning.config import TuneParams

    return TuneParams


def schema_for(key: str) -> type[BaseModel] | None:
    """The parameter schema of ``key``; None if no task or sweep has that name."""
    from lstm_lab.training.task import find_task

    if derived_task(key) is not None:
        return _derived_schema(key)
    task = find_task(key)
    return task.schema if task is not None else None


def parameter_keys(pipelines: list[str]) -> list[str]:
    """The parameters sections a run of ``pipelines`` uses, in order: a sweep also runs its task's data nodes
    (batch scoring does not: the model it loads carries what it needs)."""
    out: list[str] = []
    for key in (params_key(n) for n in pipelines):
        base = swept_task(key)
        for k in ([base] if base else []) + [key]:
            if k not in out and schema_for(k) is not None:
                out.append(k)
    return out


def validate(key: str, raw: Any, where: str | None = None, overrides: Mapping[str, Any] | None = None) -> BaseModel:
    """The typed parameters of ``key`` (one ``LstmLabError`` line naming file and path if they are wrong;
    ``--params`` when the wrong value came from ``overrides``, the command line's)."""
    from lstm_lab.training.task import find_task

    key = params_key(key)
    if derived_task(key) is not None:
        schema = schema_for(key)
        if schema is None:
            raise KeyError(key)
        return validate_section(schema, key, raw, where, overrides)
    task = find_task(key)
    if task is None:
        raise KeyError(key)
    return task.validate(raw, where, overrides)
