"""Sweep settings: the ``tune_<pipeline>:`` section of conf/base/parameters_tune_<pipeline>.yml (one schema for all)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from lstm_lab.models.spec import StrictModel
from lstm_lab.tuning.space import Distribution, SearchSpace


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

    @property
    def search_space(self) -> SearchSpace:
        return SearchSpace(dims=self.space)

