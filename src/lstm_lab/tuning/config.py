"""Sweep settings: the ``tune_<pipeline>:`` section of conf/base/parameters_tune_<pipeline>.yml (one schema for all)."""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import Field, field_validator, model_validator

from lstm_lab.schema import StrictModel
from lstm_lab.tuning.space import Distribution, SearchSpace

# The keys each distribution type takes, e.g. "uniform" → {type, low, high}.
_FIELDS = {
    model.model_fields["type"].annotation.__args__[0]: set(model.model_fields)
    for model in get_args(get_args(Distribution)[0])
}


def _slash_paths_merged(space: dict[str, Any]) -> dict[str, Any]:
    """``model/hidden_sizes`` is another spelling of ``model.hidden_sizes``, for the command line: Kedro splits
    ``--params`` keys on dots, so ``--params=tune_forecast.space.model/hidden_sizes.high=64`` arrives as the
    entry ``model/hidden_sizes: {high: 64}``, merged here into the YAML's ``model.hidden_sizes`` entry."""
    out: dict[str, Any] = {}
    for key, entry in sorted(space.items(), key=lambda item: "/" in item[0]):  # dotted (YAML) entries first
        dotted = key.replace("/", ".")
        if isinstance(entry, dict) and isinstance(out.get(dotted), dict):
            out[dotted] = {**out[dotted], **entry}
        else:
            out[dotted] = entry
    return out


class SchedulerParams(StrictModel):
    type: Literal["asha", "fifo"] = "asha"
    grace_period: int = Field(1, ge=1)  # epochs every trial gets before ASHA may stop it
    reduction_factor: float = Field(3.0, gt=1)  # ASHA keeps the best 1/reduction_factor at each rung


class SearchParams(StrictModel):
    algorithm: Literal["random", "optuna"] = "random"  # optuna = TPE
    seed: int | None = 0  # None: a different sequence of configurations each sweep


class ResourcesParams(StrictModel):
    cpu: float = Field(1, gt=0)
    gpu: float = Field(0, ge=0)


class RayParams(StrictModel):
    """How to reach Ray. With $RAY_ADDRESS set, the sweep joins that cluster and ``num_cpus`` is ignored."""

    num_cpus: int | None = Field(None, ge=1)  # local Ray only; None = every core of this machine
    log_to_driver: bool = False  # stream the trials' own stdout/stderr into this terminal


class TuneParams(StrictModel):
    num_samples: int = Field(10, ge=1)  # configurations tried (the seeds' max_trials)
    executions_per_trial: int = Field(1, ge=1)  # fits per configuration with seeds seed, seed+1, ...; averaged
    max_concurrent_trials: int | None = Field(None, ge=1)
    max_epochs: int | None = Field(None, ge=1)  # per fit; None = the pipeline's training.max_epochs
    scheduler: SchedulerParams = Field(default_factory=SchedulerParams)
    search: SearchParams = Field(default_factory=SearchParams)
    resources_per_trial: ResourcesParams = Field(default_factory=ResourcesParams)
    ray: RayParams = Field(default_factory=RayParams)
    storage_path: str = "ray_results"  # relative to the project; never a DVC output
    resume: bool = True  # an interrupted sweep with the same settings continues where it stopped
    space: dict[str, Distribution] = Field(min_length=1)  # dotted parameter path → distribution

    @field_validator("space", mode="before")
    @classmethod
    def _merged_entries(cls, space: Any) -> Any:
        """Undo what Kedro's key-by-key merge of environments does to a distribution.

        ``conf/local`` giving ``{type: choice, values: [...]}`` for a path that conf/base gives as
        ``{type: qrandint, low, high, q}`` arrives as one dict with all five keys: keep the keys of the type
        it names when every other key belongs to some other distribution type. ``null`` removes a base entry.
        """
        if not isinstance(space, dict):
            return space
        space = _slash_paths_merged(space)
        out = {}
        for key, entry in space.items():
            if entry is None:
                continue
            if isinstance(entry, dict) and entry.get("type") in _FIELDS:
                own = _FIELDS[entry["type"]]
                extra = set(entry) - own
                if extra and extra <= set().union(*_FIELDS.values()):
                    entry = {k: v for k, v in entry.items() if k in own}
            out[key] = entry
        return out

    @model_validator(mode="after")
    def _grid_needs_random_search(self) -> TuneParams:
        grids = [key for key, dist in self.space.items() if dist.type == "grid"]
        if grids and self.search.algorithm != "random":
            raise ValueError(f"grid entries {grids} need search.algorithm: random (Optuna samples, it does not "
                             "enumerate)")
        return self

    def describe(self, key: str) -> str:
        """The sweep's part of its MLflow run name: ``tune_forecast asha random x10``."""
        return f"{key} {self.scheduler.type} {self.search.algorithm} x{self.num_samples}"

    @property
    def search_space(self) -> SearchSpace:
        return SearchSpace(dims=self.space)

