"""A trained panel forecaster as an MLflow pyfunc model: recent history of any of its series in, quantiles out.

    model = mlflow.pyfunc.load_model("models:/forecast@champion")
    model.predict(history)   # long table: id, time, targets (+ past covariates, + future columns)

Input: the training table's columns (``forecast.data``: id, time, targets, past covariates, future columns).
Each id must be one the model was trained on (the id embedding and the per-series scaler know only those);
its rows are its recent history, oldest first or not (they are sorted), with at least ``lookback`` rows for
a full window (fewer are masked, as the training's padding). With future-known user columns, each id also
has exactly H rows after its history whose targets are empty: their future columns are read from there.
Calendar features are derived from the time column, as in training.

Output: one row per (id, step, target): ``id``, ``origin``, ``step`` (1..H), ``target``, ``time``, ``median``,
and ``lo<c>`` / ``hi<c>`` per central interval (``lo95``, ``hi95``, ...), the same numbers the pipeline's
``forecast_future`` node writes for the same history (the same functions do the work).

The model directory holds ``panel.json`` (the run's validated forecast parameters and the network's
hyper-parameters, scaler included) and ``weights.pt`` (a state dict, read with ``weights_only=True``).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema

from lstm_lab.serving.packaging import (bad_input, load_state_dict, log_packaged, packaged, read_json,
                                        save_packaged, save_state_dict, write_json)


class _Remapped:
    """A ForecastOrigins dataset whose ``series`` are the training panel's indices (for the id embedding)."""

    def __init__(self, dataset, index: np.ndarray):
        import torch

        self.dataset, self.index = dataset, torch.as_tensor(index, dtype=torch.int64)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitems__(self, indices):
        batch = self.dataset.__getitems__(indices)
        batch["series"] = self.index[batch["series"]]
        return batch


def forecast(net, hparams: Mapping[str, Any], history: pd.DataFrame) -> pd.DataFrame:
    """The forecast table of ``history`` (module docstring)."""
    from lstm_lab.data.panel_scaling import PanelScaler
    from lstm_lab.data.panel_windows import ForecastOrigins
    from lstm_lab.errors import LstmLabError
    from lstm_lab.evaluation.panel_forecast import predictions_table
    from lstm_lab.training.forecast import panel_data
    from lstm_lab.training.forecast.params import ForecastParams

    if not isinstance(history, pd.DataFrame):
        raise bad_input(f"expected a DataFrame of recent history, got {type(history).__name__}")
    p = ForecastParams.model_validate(hparams["params"])
    d = p.data
    idc = panel_data.id_column(p)
    needed = [c for c in ([d.id_column] if d.id_column else []) + [d.time_column, *panel_data.input_columns(p)]]
    missing = [c for c in needed if c not in history.columns]
    if missing:
        raise bad_input(f"missing column(s) {missing}: the model needs {needed}; got {list(map(str, history.columns))}")
    future_rows = None
    if d.future_columns:  # rows without targets carry the future columns of the H steps ahead
        empty = history[list(d.target_columns)].isna().all(axis=1)
        future_rows, history = history[empty], history[~empty]
    try:
        frame = panel_data.clean_panel_table(history, p, source="model input")
        prepared = panel_data.prepare_panel(frame, p, split=False)
        scaler = PanelScaler.from_dict(hparams["scaler"]).align(prepared.panel.ids)
        scaled = scaler.transform(prepared.panel)
        if future_rows is not None and d.id_column is None:
            future_rows = future_rows.assign(**{idc: d.target_columns[0]})
        future = panel_data.future_covariates(prepared, p, scaler, future_rows)
    except LstmLabError as exc:
        raise bad_input(str(exc)) from None
    training_index = pd.Index(hparams["ids"]).get_indexer(pd.Index(scaled.ids))  # known: the scaler aligned
    dataset = _Remapped(ForecastOrigins(scaled, p.window.lookback, p.window.horizon, future), training_index)
    S = scaled.n_series
    q = panel_data.forecast_at(net, dataset, prepared, scaler, np.arange(S), prepared.ends, p)
    times = panel_data.future_times(prepared, p)
    table = predictions_table(scaled.ids, times[:, 0], times, list(d.target_columns), None, q, hparams["levels"])
    return table


class PanelForecastPyfunc(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        from lstm_lab.training.forecast.task import TASK

        meta = read_json(context.artifacts["panel"])
        state = load_state_dict(context.artifacts["weights"])
        checkpoint = {"hyper_parameters": meta["hyper_parameters"], "state_dict": {f"net.{k}": v for k, v in state.items()}}
        self.net = TASK.from_checkpoint(checkpoint).net
        self.hparams = meta["hyper_parameters"]

    def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        return forecast(self.net, self.hparams, model_input)


def signature(hparams: Mapping[str, Any]) -> ModelSignature:
    from mlflow.types.schema import AnyType

    from lstm_lab.evaluation.panel_forecast import interval_bounds
    from lstm_lab.training.forecast.params import ForecastParams

    d = ForecastParams.model_validate(hparams["params"]).data
    inputs = [ColSpec(AnyType(), d.time_column), *[ColSpec("double", c, required=c not in d.target_columns
                                                           or not d.future_columns)
                                                   for c in [*d.target_columns, *d.covariate_columns]],
              *[ColSpec("double", c) for c in d.future_columns]]
    if d.id_column:
        inputs.insert(0, ColSpec(AnyType(), d.id_column))
    bands = [c for pct in interval_bounds(hparams["levels"]) for c in (f"lo{pct}", f"hi{pct}")]
    outputs = [ColSpec(AnyType(), "id"), ColSpec(AnyType(), "origin"), ColSpec("long", "step"),
               ColSpec("string", "target"), ColSpec(AnyType(), "time"), ColSpec("double", "median"),
               *[ColSpec("double", c) for c in bands]]
    return ModelSignature(inputs=Schema(inputs), outputs=Schema(outputs))


def _package(checkpoint: Mapping[str, Any], history: pd.DataFrame | None):
    from lstm_lab.training.forecast.task import TASK

    hp = dict(checkpoint["hyper_parameters"])
    example = None
    if history is not None:
        p = hp["params"]
        idc = p["data"]["id_column"] or "series"
        first = history[history[idc] == history[idc].iloc[0]] if idc in history else history
        example = first.tail(int(p["window"]["lookback"])).reset_index(drop=True)
        if "series" in example and p["data"]["id_column"] is None:
            example = example.drop(columns="series")
        time = p["data"]["time_column"]
        if pd.api.types.is_datetime64_any_dtype(example[time]):
            example[time] = pd.DatetimeIndex(example[time]).strftime("%Y-%m-%dT%H:%M:%S")

    def write(folder: Path) -> dict[str, str]:
        net = TASK.from_checkpoint(checkpoint).net
        return {"panel": write_json(folder / "panel.json", {"hyper_parameters": hp}),
                "weights": save_state_dict(folder / "weights.pt", net)}

    return packaged(__name__, "PanelForecastPyfunc", write, signature=signature(hp), input_example=example)


def log_model(name: str, checkpoint: Mapping[str, Any], history: pd.DataFrame | None = None):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*input example was not provided")
        return log_packaged(name, _package(checkpoint, history))


def save_model(path: str | Path, checkpoint: Mapping[str, Any], history: pd.DataFrame | None = None) -> Path:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*input example was not provided")
        return save_packaged(path, _package(checkpoint, history))
