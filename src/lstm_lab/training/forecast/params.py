"""Schema of ``forecast:`` in conf/base/parameters_forecast.yml.

One series (``data.id_column: null``, ``output.kind: point``) trains the ``LSTMForecaster`` on one table's rows,
as it always did. Setting ``data.id_column`` (a long table of many series), a probabilistic ``output.kind``,
future-known columns or calendar features makes the run a panel run: one global ``PanelForecaster`` over every
series (a single series then is a panel of one). ``evaluation.m4_group`` fills the M4 group's horizon,
seasonality and frequency where they are not given.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from lstm_lab.data.calendar_features import FEATURES as CALENDAR_FEATURES

from lstm_lab.models.spec import ModelSpec
from lstm_lab.schema import StrictModel
from lstm_lab.serving.config import ServingParams as BaseServingParams
from lstm_lab.training.config import TrainingConfig


class DataParams(StrictModel):
    time_column: str = "date"
    target_columns: list[str] = Field(min_length=1)
    covariate_columns: list[str] = Field(default_factory=list)
    frequency: str | None = None  # pandas alias ("h", "W-SAT"); None = infer from the timestamps
    max_gap: int = Field(0, ge=0)  # longest run of missing steps filled by interpolation (one series)
    # --- panels ---
    id_column: str | None = None  # long format: one row per (id, time); None = the table is one series
    future_columns: list[str] = Field(default_factory=list)  # known ahead: given for the H future steps too
    calendar: list[str] = Field(default_factory=list)  # future-known calendar features: hour, day_of_week ...
    calendar_phase: Literal["time", "series_end"] = "time"  # integer steps: "series_end" counts back from each end
    short_series: Literal["skip", "pad"] = "skip"  # series shorter than lookback + horizon in their train part
    target_transform: Literal["none", "log", "seasonal_log_diff"] = "none"

    @model_validator(mode="after")
    def _disjoint(self) -> DataParams:
        groups = {"target_columns": self.target_columns, "covariate_columns": self.covariate_columns,
                  "future_columns": self.future_columns}
        names = list(groups)
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                both = set(groups[a]) & set(groups[b])
                if both:
                    raise ValueError(f"columns {sorted(both)} are in both {a} and {b}")
        unknown = [c for c in self.calendar if c not in CALENDAR_FEATURES]
        if unknown:
            raise ValueError(f"calendar feature {unknown[0]!r} is unknown; expected some of {list(CALENDAR_FEATURES)}")
        if self.target_transform == "seasonal_log_diff" and len(self.target_columns) != 1:
            raise ValueError("target_transform seasonal_log_diff takes exactly one target column")
        return self


class SplitParams(StrictModel):
    """Exactly one of: fractions of the rows, row boundaries (exclusive ends), time boundaries, or (panels) the
    last ``[val_steps, test_steps]`` rows of every series. Panels split every series by its own fractions or last
    steps; ``rows`` is for one series only."""

    fractions: tuple[float, float, float] | None = None
    rows: tuple[int, int, int] | None = None
    times: tuple[str | int, str | int, str | int | None] | None = None
    last: tuple[int | None, int] | None = None  # [val_steps, test_steps] ending every series; val null = horizon

    @model_validator(mode="after")
    def _exactly_one(self) -> SplitParams:
        given = [name for name in ("fractions", "rows", "times", "last") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of fractions, rows, times, last (got {given or 'none'})")
        if self.last is not None and min(v for v in self.last if v is not None) < 0:
            raise ValueError("last: [val_steps, test_steps] must be >= 0")
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
    m4_group: str | None = None  # score like the M4 competition (OWA against the group's official Naive2)


class OutputParams(StrictModel):
    """What the model forecasts: one value per step (``point``, MSE), quantiles (pinball loss, MQ-RNN style) or
    a distribution's parameters (NLL, DeepAR style); the last three give the ``intervals``' bounds and a median."""

    kind: Literal["point", "quantile", "gaussian", "student_t"] = "point"
    intervals: tuple[float, ...] = (0.8, 0.95)  # central prediction intervals: 0.8 → quantiles 0.1 and 0.9
    # after training, widen/narrow each interval to cover its share of the validation windows (split conformal)
    calibrate: bool = False

    @model_validator(mode="after")
    def _levels(self) -> OutputParams:
        if not self.intervals or any(not 0 < c < 1 for c in self.intervals):
            raise ValueError(f"intervals {list(self.intervals)}: expected coverages strictly between 0 and 1")
        if self.calibrate and self.kind == "point":
            raise ValueError("calibrate: a point forecast has no intervals to calibrate; set kind to quantile, "
                             "gaussian or student_t")
        return self

    @property
    def levels(self) -> tuple[float, ...]:
        from lstm_lab.models.quantiles import default_levels

        return default_levels(self.intervals)


class PanelParams(StrictModel):
    """The global panel model (models/panel_forecaster.py) and how much of the panel one epoch sees."""

    id_embedding: int = Field(8, ge=0)  # width of the learned series-id embedding; 0 = none
    context_size: int = Field(16, ge=1)  # per-horizon-step context from the encoder
    local_hidden: int = Field(32, ge=0)  # hidden width of the per-step decoder MLP; 0 = linear
    # per series, on its train rows only: standard | robust | mase (seasonal-naive MAE) | mean_abs (differences)
    scaling: Literal["standard", "robust", "mase", "mean_abs", "none"] = "standard"
    windows_per_epoch: int | None = Field(None, ge=1)  # draw this many windows per epoch; None = every window
    # what the residual forecast is a change from: the last observed value (untrained = naive) or the mean of the
    # window's observed values (per-window mean normalisation; on log targets, the window's geometric mean)
    anchor: Literal["last", "mean"] = "last"
    # lookback rows the LSTM reads per step (seasonal folding: 24 = a day of hours per step; the lookback must be a
    # multiple): a long lookback at a fraction of the recurrent steps. null: the M4 group's (evaluation.m4_group)
    fold: int | None = Field(1, ge=1)


class BacktestParams(StrictModel):
    """Rolling-origin evaluation: ``n_windows`` forecast origins ``step`` apart, the last one H steps before each
    series' end; ``refit`` retrains on the rows before every origin (else the trained model is reused)."""

    n_windows: int = Field(0, ge=0)  # 0 = no backtest
    step: int | None = Field(None, ge=1)  # None = the horizon
    refit: bool = False


class ServingParams(BaseServingParams):
    """The pyfunc model logged and registered after evaluation (lstm_lab.serving.registry)."""

    name: str = Field("forecast_model", min_length=1)
    registered_model: str = Field("forecast", min_length=1)
    metric: str = "lstm.mse"  # a key of forecast_metrics.json: the LSTM's test MSE
    mode: Literal["min", "max"] = "min"

    # One series: the test split's scores; panels: also sMAPE, pinball, MSIS of the test windows, and the scores
    # of the forecast after the data's end when its actual values are given (future.*, M4's test file).
    metrics: ClassVar[tuple[str, ...]] = (
        *(f"lstm.{m}" for m in ("mse", "mae", "mase", "mse_scaled", "mae_scaled", "smape", "pinball", "msis95")),
        *(f"future.lstm.{m}" for m in ("mse", "mae", "mase", "smape", "owa", "pinball", "msis95")),
    )


class ForecastParams(StrictModel):
    data: DataParams
    split: SplitParams
    window: WindowParams
    residual: bool = True  # predict the change from the last observed value
    model: ModelSpec = Field(default_factory=ModelSpec)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    evaluation: EvaluationParams = Field(default_factory=EvaluationParams)
    serving: ServingParams = Field(default_factory=ServingParams)
    output: OutputParams = Field(default_factory=OutputParams)
    panel: PanelParams = Field(default_factory=PanelParams)
    backtest: BacktestParams = Field(default_factory=BacktestParams)
    ensemble: int = Field(1, ge=1)  # panels: N seeds, forecasts = the median of their quantiles (as ES-RNN)

    @model_validator(mode="before")
    @classmethod
    def _m4_defaults(cls, raw: Any) -> Any:
        """With ``evaluation.m4_group``: the group's horizon, seasonality and frequency where not given, and a
        one-line error where a given value contradicts the competition's."""
        if not isinstance(raw, dict) or not isinstance(raw.get("evaluation"), dict):
            return raw
        group = raw["evaluation"].get("m4_group")
        if group is None:
            return raw
        from lstm_lab.data.m4 import M4_GROUPS

        if group not in M4_GROUPS:
            raise ValueError(f"evaluation.m4_group {group!r} is unknown; expected one of {', '.join(M4_GROUPS)}")
        g = M4_GROUPS[group]
        raw = {**raw, "window": dict(raw.get("window") or {}), "evaluation": dict(raw["evaluation"]),
               "data": dict(raw.get("data") or {})}
        if raw["window"].get("horizon") is None:
            raw["window"]["horizon"] = g.horizon
        elif int(raw["window"]["horizon"]) != g.horizon:
            raise ValueError(f"window.horizon {raw['window']['horizon']}: M4 {group} forecasts {g.horizon} steps")
        if raw["window"].get("lookback") is None:
            raw["window"]["lookback"] = g.lookback
        if raw["evaluation"].get("seasonal_period") is None:
            raw["evaluation"]["seasonal_period"] = g.seasonality
        if raw["data"].get("frequency") is None:
            raw["data"]["frequency"] = g.freq
        if isinstance(raw.get("panel"), dict) and "fold" in raw["panel"] and raw["panel"]["fold"] is None:
            raw["panel"] = {**raw["panel"], "fold": g.fold}
        return raw

    @model_validator(mode="after")
    def _panel_options(self) -> ForecastParams:
        if not self.is_panel:
            if self.split.last is not None:
                raise ValueError("split.last is for panels (set data.id_column or a probabilistic output.kind)")
            if self.ensemble != 1 or self.backtest.n_windows:
                raise ValueError("ensemble and backtest are for panels (set data.id_column or a probabilistic "
                                 "output.kind)")
        elif self.split.rows is not None:
            raise ValueError("split.rows is for one series; a panel splits each series by fractions, times or last")
        if self.split.last is not None:
            val, test = self.split.last
            H = self.window.horizon
            if (val is not None and val < H) or 0 < test < H:
                raise ValueError(f"split.last {list(self.split.last)}: validation and test need at least the horizon "
                                 f"({H}) steps each (test may be 0: no test windows)")
        if self.panel.anchor != "last" and (not self.is_panel or not self.residual
                                            or self.data.target_transform == "seasonal_log_diff"):
            raise ValueError(f"panel.anchor {self.panel.anchor!r} is for panels with residual: true and a "
                             "target_transform other than seasonal_log_diff (differences are modelled as they are)")
        if self.panel.fold is None:
            raise ValueError("panel.fold: null means the M4 group's fold (evaluation.m4_group); without a group, give "
                             "a number of lookback rows per LSTM step (1 = unfolded)")
        if self.panel.fold > 1 and not self.is_panel:
            raise ValueError(f"panel.fold {self.panel.fold}: folding is for panels (set data.id_column or a "
                             "probabilistic output.kind)")
        if self.window.lookback % self.panel.fold:
            raise ValueError(f"panel.fold {self.panel.fold}: window.lookback ({self.window.lookback}) must be a "
                             "multiple of it")
        if self.data.target_transform == "seasonal_log_diff" and not self.is_panel:
            raise ValueError("data.target_transform seasonal_log_diff is for panels")
        return self

    @property
    def is_panel(self) -> bool:
        """A panel run: many series, or anything only the global panel model does (intervals, known future)."""
        d = self.data
        return (d.id_column is not None or self.output.kind != "point" or bool(d.future_columns)
                or bool(d.calendar) or d.target_transform != "none")
