"""Search spaces written in YAML, checked against the pipeline's own parameter schema, sampled by Ray Tune.

A space maps a dotted path into ``parameters_<pipeline>.yml`` to a distribution::

    space:
      model.hidden_sizes: {type: qrandint, low: 32, high: 512, q: 32}   # the seeds' units 32..512 step 32
      model.num_layers: {type: choice, values: [1, 2]}                 # with a number above: [units] * layers
      training.optimizer: {type: choice, values: [adam, rmsprop]}
      training.learning_rate: {type: loguniform, low: 1.0e-4, high: 1.0e-2}

``grid`` (values) tries every value (crossed with the other grids) once per ``num_samples``; random search
only. ``model.num_layers`` is the one path that is not a parameter itself: it repeats a sampled layer width. Bounds
are inclusive for every integer type. ``choice`` values may be anything YAML holds: scalars are sampled as
themselves; lists and mappings by their index (Optuna takes only scalar categories), and results are reported
with the value.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, ValidationError, model_validator

from lstm_lab.errors import LstmLabError
from lstm_lab.schema import StrictModel

LAYERS = "model.num_layers"
WIDTHS = "model.hidden_sizes"


class Choice(StrictModel):
    type: Literal["choice"]
    values: list[Any] = Field(min_length=1)

    @property
    def by_index(self) -> bool:
        """Lists (and mappings) are sampled by their index: Optuna takes only scalar categories. Scalars are
        sampled as themselves, so Ray's trial table shows ``rmsprop``, not ``1``."""
        return not all(v is None or isinstance(v, str | int | float | bool) for v in self.values)

    def _domain(self) -> list[Any]:
        return list(range(len(self.values))) if self.by_index else list(self.values)

    def to_tune(self):
        from ray import tune

        return tune.choice(self._domain())

    def decode(self, sampled: Any) -> Any:
        return copy.deepcopy(self.values[int(sampled)]) if self.by_index else sampled

    def corners(self) -> list[Any]:
        return list(self.values)


class Grid(Choice):
    """Every value, once per ``num_samples`` (crossed with the other grids): an exhaustive sweep."""

    type: Literal["grid"]

    def to_tune(self):
        from ray import tune

        return tune.grid_search(self._domain())


class _Range(StrictModel):
    low: float
    high: float

    @model_validator(mode="after")
    def _ordered(self):
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        return self

    def decode(self, sampled: Any) -> Any:
        return sampled

    def corners(self) -> list[Any]:
        return [self.low, self.high]


class Uniform(_Range):
    type: Literal["uniform"]

    def to_tune(self):
        from ray import tune

        return tune.uniform(self.low, self.high)


class LogUniform(_Range):
    type: Literal["loguniform"]
    low: float = Field(gt=0)

    def to_tune(self):
        from ray import tune

        return tune.loguniform(self.low, self.high)


class QUniform(_Range):
    type: Literal["quniform"]
    q: float = Field(gt=0)

    def to_tune(self):
        from ray import tune

        return tune.quniform(self.low, self.high, self.q)


class RandInt(_Range):
    type: Literal["randint"]
    low: int
    high: int

    def to_tune(self):
        from ray import tune

        return tune.randint(self.low, self.high + 1)  # Ray's upper bound is exclusive; ours is not

    def decode(self, sampled: Any) -> Any:
        return int(sampled)


class QRandInt(RandInt):
    type: Literal["qrandint"]
    q: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _on_grid(self):
        if (self.high - self.low) % self.q:
            raise ValueError(f"high - low ({self.high - self.low}) must be a multiple of q ({self.q})")
        return self

    def to_tune(self):
        from ray import tune

        return tune.qrandint(self.low, self.high, self.q)  # inclusive, rounded to multiples of q


Distribution = Annotated[
    Choice | Grid | Uniform | LogUniform | QUniform | RandInt | QRandInt, Field(discriminator="type")
]


class SearchSpace(BaseModel):
    """The ``space:`` mapping; see the module docstring."""

    model_config = {"extra": "forbid", "frozen": True}
    dims: dict[str, Distribution] = Field(min_length=1)

    def to_tune(self) -> dict[str, Any]:
        return {key: dist.to_tune() for key, dist in self.dims.items()}

    def decode(self, sampled: Mapping[str, Any]) -> dict[str, Any]:
        """Ray's sample (choice indices) → the parameter values it stands for, keyed by dotted path."""
        return {key: dist.decode(sampled[key]) for key, dist in self.dims.items() if key in sampled}

    def corners(self) -> list[dict[str, Any]]:
        """Each distribution's extremes (or every choice) one at a time: what validation must accept."""
        first = {key: dist.corners()[0] for key, dist in self.dims.items()}
        out = [first]
        for key, dist in self.dims.items():
            out.extend({**first, key: value} for value in dist.corners()[1:])
        return out


def apply(base: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` (a pipeline's parameters as a dict) with the dotted ``values`` written in; base is not changed."""
    params = copy.deepcopy(dict(base))
    values = dict(values)
    layers = values.pop(LAYERS, None)
    if layers is not None or isinstance(values.get(WIDTHS), int | float):
        width = values.pop(WIDTHS, None)
        if width is None:  # layers sampled, width fixed: repeat the base's first width
            width = params.get("model", {}).get("hidden_sizes", [64])[0]
        if isinstance(width, list):
            raise LstmLabError(f"{LAYERS} needs a single width in {WIDTHS} (got the list {width})")
        values[WIDTHS] = [int(width)] * int(layers if layers is not None else 1)
    for key, value in values.items():
        *parents, leaf = key.split(".")
        node = params
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise LstmLabError(f"space.{key}: '{part}' is not a section of the parameters")
        node[leaf] = value
    return params


def resolved(base: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """The sampled ``values`` as the parameters they set (``model.num_layers`` 2 with ``model.hidden_sizes`` 64 →
    ``model.hidden_sizes`` [64, 64]), keyed by dotted path: what a pipeline run of them would log."""
    params = apply(base, values)
    out = {}
    for key in values:
        key = WIDTHS if key == LAYERS else key
        node: Any = params
        for part in key.split("."):
            node = node[part]
        out[key] = node
    return out


def check_space(space: SearchSpace, base: Mapping[str, Any], schema: type[BaseModel], where: str) -> None:
    """Every path names a real parameter and every extreme of the space gives valid parameters."""
    for key in space.dims:
        if key == LAYERS:
            continue
        model: type[BaseModel] | None = schema
        for part in key.split("."):
            field = model.model_fields.get(part) if model is not None else None
            if field is None:
                known = sorted(model.model_fields) if model is not None else []
                raise LstmLabError(f"{where}.space.{key}: no parameter '{part}' here (known: {', '.join(known)})")
            annotation = field.annotation
            model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    for corner in itertools.islice(space.corners(), 200):
        try:
            schema.model_validate(apply(base, corner))
        except ValidationError as exc:
            err = exc.errors()[0]
            path = ".".join(str(p) for p in err["loc"])
            raise LstmLabError(
                f"{where}.space: the value {corner} gives invalid parameters at {path}: {err['msg']}"
            ) from None
