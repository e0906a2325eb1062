"""Schemas of the serving settings: how a training run publishes its model (``<task>.serving``), and the batch
scoring pipelines' own sections (``predict_<task>:`` in conf/base/parameters_predict_<task>.yml).

Pure pydantic, like every schema of the project: the tasks' parameter schemas derive their ``serving:``
section from :class:`ServingParams` (with their own defaults), and ``lstm_lab.params`` validates the
``predict_<task>`` keys with :func:`predict_schema`.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import ConfigDict, Field, model_validator

from lstm_lab.schema import StrictModel

CHAMPION = "champion"


class ServingParams(StrictModel):
    """Log the trained model into the run, register it, and alias it by a metric rule: the new version becomes
    ``champion`` when its metric beats the current champion's (or there is none), otherwise ``challenger``."""

    # `register` would shadow pydantic's BaseModel.register: the YAML key is the alias, read and written as such.
    model_config = ConfigDict(extra="forbid", frozen=True, validate_by_name=True, validate_by_alias=True,
                              serialize_by_alias=True)

    log_model: bool = True  # log the pyfunc model into the run: runs:/<run id>/<name>
    name: str = Field("model", min_length=1)  # its artifact name in the run
    # also a new version of `registered_model` in the Model Registry (needs log_model)
    register_version: bool = Field(True, alias="register")
    registered_model: str = Field("model", min_length=1)  # models:/<registered_model>@champion
    metric: str = Field("", min_length=1)  # a key of the pipeline's metrics (dotted: lstm.mse)
    mode: Literal["min", "max"] = "min"  # min: lower is better; max: higher is better

    metrics: ClassVar[tuple[str, ...]] = ()  # what the task's evaluation reports: checked before training

    @model_validator(mode="after")
    def _known_metric(self) -> ServingParams:
        if self.metrics and self.metric not in self.metrics:
            raise ValueError(f"metric {self.metric!r} is not reported by this pipeline (choose from "
                             f"{', '.join(self.metrics)})")
        return self


# ------------------------------------------------------------------------------------------------ predict_<task>
class PredictParams(StrictModel):
    """Which model a batch scoring run loads: ``model_uri`` when given, else ``models:/<registered_model>@<alias>``."""

    model_uri: str | None = None  # runs:/<run id>/<name>, models:/<name>/<version>, models:/<name>@<alias>, a path
    registered_model: str = Field("model", min_length=1)
    alias: str = Field(CHAMPION, min_length=1)

    def uri(self) -> str:
        return self.model_uri or f"models:/{self.registered_model}@{self.alias}"

    def describe(self, key: str) -> str:
        """Its MLflow run name: ``predict_forecast models:/forecast@champion``."""
        return f"{key} {self.uri()}"


class PredictForecastParams(PredictParams):
    registered_model: str = Field("forecast", min_length=1)


class PredictSentimentParams(PredictParams):
    registered_model: str = Field("sentiment", min_length=1)
    text_column: str = Field("text", min_length=1)  # the column of predict_sentiment_input holding the texts


class PredictTextgenParams(PredictParams):
    """One generated text per prompt; the settings are lstm-lab-generate's options (and defaults)."""

    registered_model: str = Field("textgen", min_length=1)
    prompts: list[str] = Field(default_factory=lambda: ["\n"], min_length=1)
    length: int = Field(300, ge=0)
    temperature: float = Field(1.0, gt=0)
    top_k: int | None = Field(None, ge=1)
    seed: int = 0
    greedy: bool = False

    @model_validator(mode="after")
    def _prompts(self) -> PredictTextgenParams:
        if not all(self.prompts):
            raise ValueError("prompts must not be empty: give at least one character (e.g. a newline)")
        return self


PREDICT_SCHEMAS: dict[str, type[PredictParams]] = {
    "forecast": PredictForecastParams,
    "sentiment": PredictSentimentParams,
    "textgen": PredictTextgenParams,
}


def predict_schema(task: str) -> type[PredictParams] | None:
    """The schema of ``predict_<task>``; None for a task without a batch scoring pipeline."""
    return PREDICT_SCHEMAS.get(task)
