"""The trained forecaster as an MLflow pyfunc model: recent history in, the next H steps out.

    model = mlflow.pyfunc.load_model("models:/forecast@champion")
    model.predict(history)        # history: date, co2 (+ covariates), optionally id; the last L rows are used

Input: a DataFrame with the training data's time column (``date`` by default), its target column(s) and its
covariate columns; at least ``lookback`` rows per series (more are fine: the last L are used, in time order).
A panel holds several series told apart by an ``id`` column: one forecast per id. The last L timestamps of
each series must be evenly spaced (no gap) at the training frequency, with no missing value.

Output: one row per (id, step, target): ``id`` (always there: ``series`` when the input has no id column),
``time`` (the H timestamps after the last one given, continuing the series' frequency), ``step`` (1..H),
``target`` (the column forecast), ``mean`` and ``median`` (equal: the network is a point forecaster; quantiles
of a probabilistic forecaster would be further columns). The numbers are those of the pipeline's evaluation
for the same window (the same ``predict_windows`` and scaler), to float32 rounding.

The model directory holds ``forecast.json`` (sizes, window, columns, time column, frequency, scaler) and
``weights.pt`` (a state dict, loaded with ``weights_only=True``): nothing is pickled (``serving.packaging``).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema

from lstm_lab.serving.packaging import (bad_input, load_state_dict, log_packaged, packaged, read_json,
                                        save_packaged, save_state_dict, write_json)

ID_COLUMN = "id"
SINGLE_ID = "series"  # the id of the one series of an input without an id column
OUTPUT_COLUMNS = [ID_COLUMN, "time", "step", "target", "mean", "median"]
# What rebuilds the network and reads its input (forecast/task.py stores them in the checkpoint).
NET_KEYS = ("n_features", "n_targets", "horizon", "model", "residual", "lookback", "target_columns",
            "covariate_columns", "scaler")


@dataclass(frozen=True)
class ForecastSpec:
    lookback: int
    horizon: int
    targets: list[str]
    covariates: list[str]
    time_column: str
    frequency: str | None  # the training series' frequency; None = whatever each input series has
    scaler: dict[str, Any]

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> ForecastSpec:
        hp = meta["hyper_parameters"]
        return cls(int(hp["lookback"]), int(hp["horizon"]), list(hp["target_columns"]),
                   list(hp["covariate_columns"]), str(meta["time_column"]), meta.get("frequency"), dict(hp["scaler"]))

    @property
    def columns(self) -> list[str]:
        return [*self.targets, *self.covariates]  # the model's input order: targets first


def _offset(freq: str):
    return pd.tseries.frequencies.to_offset(freq)


def _infer(times: pd.DatetimeIndex):
    with pd.option_context("future.infer_freq_returns_offset", True):
        return pd.infer_freq(times)


def _window_step(times: pd.DatetimeIndex, series: str, spec: ForecastSpec):
    """The step of an evenly spaced window (the training frequency when known), or one error line."""
    where = f"series {series!r}: the last {len(times)} timestamps"
    if len(times) >= 3:
        inferred = _infer(times)  # calendar-aware: month ends are regular although their lengths differ
        if inferred is None:
            steps = times[1:] - times[:-1]
            odd = np.flatnonzero(steps != pd.Series(steps).mode().iloc[0])
            at = f": {times[int(odd[0])]} is followed by {times[int(odd[0]) + 1]}" if len(odd) else ""
            raise bad_input(f"{where} are not evenly spaced{at} (a gap or an irregular step); give a regular window "
                            "without gaps")
        if spec.frequency is None:
            return inferred
    elif spec.frequency is None:
        raise bad_input(f"{where}: a frequency needs at least 3 timestamps")
    step = _offset(spec.frequency)
    expected = pd.date_range(times[0], periods=len(times), freq=step)
    if not expected.equals(times):
        raise bad_input(f"{where} do not follow the model's frequency {spec.frequency} (from {times[0]}, expected "
                        f"{expected[-1]} last, got {times[-1]})")
    return step


def _times(values: pd.Series, series: str, column: str) -> pd.DatetimeIndex:
    try:
        times = pd.DatetimeIndex(pd.to_datetime(values))
    except (ValueError, TypeError) as exc:
        raise bad_input(f"series {series!r}: column {column!r} holds a value that is not a timestamp "
                        f"({str(exc).splitlines()[0]})") from None
    if times.tz is not None:
        times = times.tz_localize(None)
    return times


def _window(frame: pd.DataFrame, series: str, spec: ForecastSpec) -> tuple[np.ndarray, pd.DatetimeIndex, Any]:
    """The last ``lookback`` rows of one series (values in model column order), their times, and its step."""
    times = _times(frame[spec.time_column], series, spec.time_column)
    if times.isna().any():
        raise bad_input(f"series {series!r}: column {spec.time_column!r} has a missing timestamp")
    order = np.argsort(times.to_numpy(), kind="stable")
    times = times[order]
    if times.has_duplicates:
        raise bad_input(f"series {series!r}: duplicate timestamp {times[times.duplicated()][0]}")
    if len(times) < spec.lookback:
        raise bad_input(f"series {series!r}: {len(times)} row(s) given, the model needs the last {spec.lookback} "
                        f"(lookback) to forecast")
    last = frame.iloc[order[-spec.lookback:]]
    times = times[-spec.lookback:]
    try:
        values = last[spec.columns].to_numpy(np.float64)
    except (ValueError, TypeError) as exc:
        raise bad_input(f"series {series!r}: a value column holds a non-number ({str(exc).splitlines()[0]})") from None
    bad = ~np.isfinite(values)
    if bad.any():
        row, col = map(int, np.argwhere(bad)[0])
        raise bad_input(f"series {series!r}: column {spec.columns[col]!r} is missing (NaN) at {times[row]} in the "
                        f"last {spec.lookback} rows; fill it first")
    return values, times, _window_step(times, series, spec)


def forecast(net, spec: ForecastSpec, history: pd.DataFrame) -> pd.DataFrame:
    """The forecast table of ``history`` (see the module docstring): the pipeline's own prediction path."""
    from lstm_lab.data.timeseries import StandardScaler, scaled_inputs
    from lstm_lab.evaluation.forecast import predict_windows

    if not isinstance(history, pd.DataFrame):
        raise bad_input(f"expected a DataFrame of recent history, got {type(history).__name__}")
    needed = [spec.time_column, *spec.columns]
    missing = [c for c in needed if c not in history.columns]
    if missing:
        raise bad_input(f"missing column(s) {missing}: the model needs {needed} (+ optional {ID_COLUMN!r}); got "
                        f"{list(map(str, history.columns))}")
    if ID_COLUMN in history.columns:
        if history[ID_COLUMN].isna().any():
            raise bad_input(f"column {ID_COLUMN!r}: row {int(np.flatnonzero(history[ID_COLUMN].isna())[0])} has no id")
        groups = list(history.groupby(history[ID_COLUMN].astype(str), sort=False))
    else:
        groups = [(SINGLE_ID, history)]
    if not groups:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in zip(
            OUTPUT_COLUMNS, ["object", "datetime64[ns]", "int64", "object", "float64", "float64"], strict=True)})
    scaler = StandardScaler.from_dict(spec.scaler)
    windows = [(series, *_window(frame, series, spec)) for series, frame in groups]
    inputs = np.concatenate([scaled_inputs(pd.DataFrame(values, columns=spec.columns), scaler, spec.columns)
                             for _, values, _, _ in windows])  # (S*L, F): the series one after another
    starts = spec.lookback * np.arange(1, len(windows) + 1)  # window i ends where series i's rows end
    pred = scaler.inverse(predict_windows(net, inputs, starts, spec.lookback), spec.targets)  # (S, H, C)
    h, c = spec.horizon, len(spec.targets)
    future = [pd.date_range(times[-1], periods=h + 1, freq=step)[1:] for _, _, times, step in windows]
    out = pd.DataFrame({
        ID_COLUMN: np.repeat([series for series, *_ in windows], h * c).astype(object),
        "time": np.repeat(np.concatenate([t.to_numpy().astype("datetime64[ns]") for t in future]), c),
        "step": np.tile(np.repeat(np.arange(1, h + 1), c), len(windows)),
        "target": np.tile(np.asarray(spec.targets, dtype=object), len(windows) * h),
        "mean": pred.reshape(-1),
    })
    out["median"] = out["mean"]  # a point forecast: the median is the mean
    return out


class ForecastPyfunc(mlflow.pyfunc.PythonModel):
    """Stateless until ``load_context`` reads the bundled hyper-parameters and weights."""

    def load_context(self, context) -> None:
        from lstm_lab.training.forecast.task import TASK

        meta = read_json(context.artifacts["forecast"])
        state = load_state_dict(context.artifacts["weights"])
        checkpoint = {"hyper_parameters": meta["hyper_parameters"], "state_dict": {f"net.{k}": v for k, v in state.items()}}
        self.net = TASK.from_checkpoint(checkpoint).net  # the one way the project rebuilds a trained model
        self.spec = ForecastSpec.from_meta(meta)

    # The pd.DataFrame hint keeps MLflow's type-hint validation out of the way; the signature is what it enforces.
    def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        return forecast(self.net, self.spec, model_input)


# ----------------------------------------------------------------------------------------------------- packaging
def metadata(checkpoint: Mapping[str, Any], time_column: str, frequency: str | None) -> dict[str, Any]:
    hp = checkpoint["hyper_parameters"]
    return {"hyper_parameters": {k: hp[k] for k in NET_KEYS if k in hp}, "time_column": time_column,
            "frequency": frequency}


def signature(spec: ForecastSpec) -> ModelSignature:
    from mlflow.types.schema import AnyType

    return ModelSignature(
        # The time column is parsed by the model (strings from JSON or CSV, datetimes from Python alike).
        inputs=Schema([ColSpec(AnyType(), spec.time_column), *[ColSpec("double", c) for c in spec.columns],
                       ColSpec("string", ID_COLUMN, required=False)]),
        outputs=Schema([ColSpec("string", ID_COLUMN), ColSpec("datetime", "time"), ColSpec("long", "step"),
                        ColSpec("string", "target"), ColSpec("double", "mean"), ColSpec("double", "median")]),
    )


def training_frequency(history: pd.DataFrame | None, time_column: str, frequency: str | None) -> str | None:
    """The frequency the model was trained at: the parameter when set, else inferred from the cleaned series."""
    if frequency or history is None or len(history) < 3:
        return frequency
    inferred = _infer(pd.DatetimeIndex(history[time_column]))
    return inferred.freqstr if inferred is not None else None


def _package(checkpoint: Mapping[str, Any], time_column: str, history: pd.DataFrame | None, frequency: str | None):
    from lstm_lab.training.forecast.task import TASK

    meta = metadata(checkpoint, time_column, training_frequency(history, time_column, frequency))
    spec = ForecastSpec.from_meta(meta)
    example = None
    if history is not None and len(history) >= spec.lookback:  # the recent history the model would be given
        example = history[[time_column, *spec.columns]].tail(spec.lookback).reset_index(drop=True)
        example[time_column] = pd.DatetimeIndex(example[time_column]).strftime("%Y-%m-%dT%H:%M:%S")

    def write(folder: Path) -> dict[str, str]:
        net = TASK.from_checkpoint(checkpoint).net
        return {"forecast": write_json(folder / "forecast.json", meta),
                "weights": save_state_dict(folder / "weights.pt", net)}

    return packaged(__name__, "ForecastPyfunc", write, signature=signature(spec), input_example=example)


def log_model(name: str, checkpoint: Mapping[str, Any], time_column: str = "date",
              history: pd.DataFrame | None = None, frequency: str | None = None):
    """Log the pyfunc model into the active MLflow run; ``history`` (the cleaned series) gives the input example
    and the training frequency. Returns MLflow's ``ModelInfo``."""
    with warnings.catch_warnings():  # without history (a sweep) there is no example to give: expected, not news
        warnings.filterwarnings("ignore", message=r".*input example was not provided")
        return log_packaged(name, _package(checkpoint, time_column, history, frequency))


def save_model(path: str | Path, checkpoint: Mapping[str, Any], time_column: str = "date",
               history: pd.DataFrame | None = None, frequency: str | None = None) -> Path:
    """The same pyfunc model written to a local directory (no tracking store needed)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*input example was not provided")
        return save_packaged(path, _package(checkpoint, time_column, history, frequency))
