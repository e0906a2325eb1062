"""Schema of ``forecast:`` in conf/base/parameters_forecast.yml."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from lstm_lab.models.spec import ModelSpec
from lstm_lab.schema import StrictModel
from lstm_lab.serving.config import ServingParams as BaseServingParams
from lstm_lab.training.config import TrainingConfig


class DataParams(StrictModel):
    time_column: str = "date"
    target_columns: list[str] = Field(min_length=1)
    covariate_columns: list[str] = Field(default_factory=list)
    frequency: str | None = None  # pandas alias ("h", "W-SAT"); None = infer from the timestamps
    max_gap: int = Field(0, ge=0)  # longest run of missing steps filled by interpolation

    @model_validator(mode="after")
    def _disjoint(self) -> DataParams:
        both = set(self.target_columns) & set(self.covariate_columns)
        if both:
            raise ValueError(f"columns {sorted(both)} are both targets and covariates")
        return self


class SplitParams(StrictModel):
    """Exactly one of: fractions of the rows, row boundaries (exclusive ends), or time boundaries."""

    fractions: tuple[float, float, float] | None = None
    rows: tuple[int, int, int] | None = None
    times: tuple[str, str, str | None] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SplitParams:
        given = [name for name in ("fractions", "rows", "times") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of fractions, rows, times (got {given or 'none'})")
        if self.fractions is not None:
            if min(self.fractions) <= 0 or sum(self.fractions) > 1 + 1e-9:
                raise ValueError("fractions must be positive and sum to at most 1")
        return self


class WindowParams(StrictModel):
    lookback: int = Field(ge=1)
    horizon: int = Field(ge=1)
    stride: int = Field(1, ge=1)  # between training windows; evaluation scores every window


class EvaluationParams(StrictModel):
    seasonal_period: int = Field(1, ge=1)  # for the seasonal-naive baseline and MASE


class ServingParams(BaseServingParams):
    """The pyfunc model logged and registered after evaluation (lstm_lab.serving.registry)."""

    name: str = Field("forecast_model", min_length=1)
    registered_model: str = Field("forecast", min_length=1)
    metric: str = "lstm.mse"  # a key of forecast_metrics.json: the LSTM's test MSE
    mode: Literal["min", "max"] = "min"

    metrics: ClassVar[tuple[str, ...]] = tuple(f"lstm.{m}" for m in ("mse", "mae", "mase", "mse_scaled", "mae_scaled"))


class ForecastParams(StrictModel):
    data: DataParams
    split: SplitParams
    window: WindowParams
    residual: bool = True  # predict the change from the last observed value
    model: ModelSpec = Field(default_factory=ModelSpec)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    evaluation: EvaluationParams = Field(default_factory=EvaluationParams)
    serving: ServingParams = Field(default_factory=ServingParams)
