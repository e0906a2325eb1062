"""The base of every parameter schema, and the one place that turns pydantic's report into one line.

Pure pydantic: the model spec (``models/``), the training settings (``training/``), the sweep settings
(``tuning/``) and every task's parameters derive from :class:`StrictModel`, and ``validate_section`` is how a
``<key>:`` section of ``conf/*/parameters_<key>.yml`` becomes a typed object, once per run::

    conf/*/parameters_forecast.yml: forecast.training.lerning_rate: unknown parameter (allowed here: ...)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, get_args

from pydantic import BaseModel, ConfigDict, ValidationError

from lstm_lab.errors import LstmLabError

Schema = TypeVar("Schema", bound=BaseModel)


class StrictModel(BaseModel):
    """Unknown keys are errors (a misspelt parameter must not be silently ignored); values are frozen, so a
    validated object can be handed to every node of a run without anyone changing it underneath the others."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def validate_section(schema: type[Schema], key: str, raw: Any, where: str | None = None,
                     overrides: Mapping[str, Any] | None = None) -> Schema:
    """``raw`` (the ``key:`` section of the parameters) as a ``schema`` object, or one ``LstmLabError`` line
    naming the file, the dotted parameter path and what was expected. ``overrides``: the values given on the
    command line (``kedro run --params``); an error at a path they set is blamed on ``--params``."""
    where = where or f"conf/*/parameters_{key}.yml"
    if isinstance(raw, schema):
        return raw
    if raw is None:
        raise LstmLabError(f"{where}: no '{key}:' section found")
    try:
        return schema.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        path = ".".join(str(p) for p in (key, *err["loc"]))
        if overrides and _given(overrides, (key, *err["loc"])):
            where = "--params"
        if err["type"] == "extra_forbidden":
            allowed = allowed_keys(schema, err["loc"][:-1])
            message = f"unknown parameter (allowed here: {', '.join(allowed)})"
        else:
            message = f"{err['msg']} (got {err.get('input')!r})"
        more = f" [+{len(exc.errors()) - 1} more]" if len(exc.errors()) > 1 else ""
        raise LstmLabError(f"{where}: {path}: {message}{more}") from None


def _given(overrides: Mapping[str, Any], path: tuple) -> bool:
    """Whether ``overrides`` (nested, as Kedro parses ``--params a.b=1``) sets ``path`` or a part of it."""
    node: Any = overrides
    for part in path:
        if not isinstance(node, Mapping) or str(part) not in node:
            return False
        node = node[str(part)]
    return True


def allowed_keys(schema: type[BaseModel], loc) -> list[str]:
    """The keys a (nested) section of ``schema`` accepts, for the 'unknown parameter' message."""
    model = schema
    for part in loc:
        field = model.model_fields.get(str(part))
        annotation = _section_model(getattr(field, "annotation", None))
        if annotation is None:
            return []
        model = annotation
    return sorted(model.model_fields)


def _section_model(annotation) -> type[BaseModel] | None:
    """The schema of a nested section: the annotation itself, or the one model of an optional section
    (``SubwordParams | None``, off when null)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    models = [a for a in get_args(annotation) if isinstance(a, type) and issubclass(a, BaseModel)]
    return models[0] if len(models) == 1 else None
