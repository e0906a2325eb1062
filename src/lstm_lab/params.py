"""Which schema validates which ``<key>:`` section of the parameters, and the validation itself.

A key is either a task (``forecast``, ``sentiment``, ... — validated by that task, devices checked too) or a
sweep over one (``tune_<task>``, validated by the sweep settings' schema). This module is the only place that
knows the ``tune_`` prefix; ``swept_task`` reads it.

``validate(key, raw)`` runs once per ``kedro run``, when Kedro builds the run's parameters (the project
context, ``lstm_lab.context``), before any hook or node: nodes, Ray trials and training receive the typed
object it returns.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from lstm_lab.schema import validate_section

SWEEP_PREFIX = "tune_"


def params_key(pipeline: str) -> str:
    """The top-level parameters key of a registered pipeline: ``__default__`` runs forecast."""
    return "forecast" if pipeline == "__default__" else pipeline


def sweep_name(task: str) -> str:
    """The pipeline and parameters key of the sweep over ``task``: ``tune_forecast``."""
    return f"{SWEEP_PREFIX}{task}"


def swept_task(key: str) -> str | None:
    """``tune_forecast`` → ``forecast``; None for a key that is not a sweep."""
    return key[len(SWEEP_PREFIX):] if key.startswith(SWEEP_PREFIX) else None


def schema_for(key: str) -> type[BaseModel] | None:
    """The parameter schema of ``key``; None if no task or sweep has that name."""
    from lstm_lab.training.task import find_task

    base = swept_task(key)
    if base is not None:
        from lstm_lab.tuning.config import TuneParams

        return TuneParams if find_task(base) is not None else None
    task = find_task(key)
    return task.schema if task is not None else None


def parameter_keys(pipelines: list[str]) -> list[str]:
    """The parameters sections a run of ``pipelines`` uses, in order: a sweep also runs its task's data nodes."""
    out: list[str] = []
    for key in (params_key(n) for n in pipelines):
        base = swept_task(key)
        for k in ([base] if base else []) + [key]:
            if k not in out and schema_for(k) is not None:
                out.append(k)
    return out


def validate(key: str, raw: Any, where: str | None = None) -> BaseModel:
    """The typed parameters of ``key`` (one ``LstmLabError`` line naming file and path if they are wrong)."""
    from lstm_lab.training.task import find_task

    key = params_key(key)
    if swept_task(key) is not None:
        schema = schema_for(key)
        if schema is None:
            raise KeyError(key)
        return validate_section(schema, key, raw, where)
    task = find_task(key)
    if task is None:
        raise KeyError(key)
    return task.validate(raw, where)
