"""Validation of each pipeline's parameters before anything runs.

``validate(pipeline, raw)`` turns pydantic's report into one line naming the parameter path, the file it comes
from and what was expected, e.g.::

    conf/base/parameters_forecast.yml: forecast.training.lerning_rate: unknown parameter (allowed: ...)
"""

from __future__ import annotations

import importlib
from typing import Any

from pydantic import BaseModel, ValidationError

from lstm_lab.errors import LstmLabError


def _schema_module(key: str) -> str:
    """Each pipeline package declares ``SCHEMA`` in its ``params`` module; sweeps share the tune package's."""
    package = "tune" if key.startswith("tune_") else key
    return f"lstm_lab.pipelines.{package}.params"


def params_key(pipeline: str) -> str:
    """The top-level parameters key of a registered pipeline: ``__default__`` runs forecast."""
    return "forecast" if pipeline == "__default__" else pipeline


def schema_for(pipeline: str) -> type[BaseModel] | None:
    """The parameter schema of a registered pipeline; None if it has none."""
    name = _schema_module(params_key(pipeline))
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and name.startswith(exc.name):  # no such package; a broken import still raises
            return None
        raise
    return getattr(module, "SCHEMA", None)


def validate(pipeline: str, raw: Any) -> BaseModel:
    schema = schema_for(pipeline)
    if schema is None:
        raise KeyError(pipeline)
    key = params_key(pipeline)
    where = f"conf/*/parameters_{key}.yml"
    if raw is None:
        raise LstmLabError(f"{where}: no '{key}:' section found")
    try:
        return schema.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        path = ".".join(str(p) for p in (key, *err["loc"]))
        if err["type"] == "extra_forbidden":
            allowed = _allowed_keys(schema, err["loc"][:-1])
            message = f"unknown parameter (allowed here: {', '.join(allowed)})"
        else:
            message = f"{err['msg']} (got {err.get('input')!r})"
        more = f" [+{len(exc.errors()) - 1} more]" if len(exc.errors()) > 1 else ""
        raise LstmLabError(f"{where}: {path}: {message}{more}") from None


def _allowed_keys(schema: type[BaseModel], loc) -> list[str]:
    model = schema
    for part in loc:
        field = model.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return sorted(model.model_fields)
