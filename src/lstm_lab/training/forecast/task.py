"""The forecast task: lookback-L windows of a scaled series → the next H steps of its targets.

``data`` (what the pipeline's ``training_data`` node hands to ``run_training``): ``inputs`` (N, F) scaled
float32 (targets first), ``targets`` (N, C), ``bounds`` (``train_end``, ``val_end``, ``test_end`` rows) and
``scaler`` (the fitted per-column scaler as a dict). The checkpoint keeps sizes, window, columns and scaler,
so it alone turns recent raw history into a forecast.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lstm_lab.models.spec import ModelSpec
from lstm_lab.training.forecast.params import ForecastParams
from lstm_lab.training.task import Task


class ForecastTask(Task):
    name = "forecast"
    schema = ForecastParams

    def hparams(self, p: ForecastParams, data: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "n_features": int(data["inputs"].shape[1]),
            "n_targets": int(data["targets"].shape[1]),
            "horizon": p.window.horizon,
            "model": p.model.model_dump(mode="json"),
            "training": p.training.model_dump(),
            "residual": p.residual,
            "lookback": p.window.lookback,
            "target_columns": list(p.data.target_columns),
            "covariate_columns": list(p.data.covariate_columns),
            "scaler": data.get("scaler"),
        }

    def build(self, p: ForecastParams, data: Mapping[str, Any]):
        from lstm_lab.models.forecaster import LSTMForecaster
        from lstm_lab.training.forecast.module import ForecastDataModule, ForecastModule

        hp = self.hparams(p, data)
        net = LSTMForecaster(hp["n_features"], hp["n_targets"], p.window.horizon, p.model, residual=p.residual)
        module = ForecastModule(net, p.training, hp)
        datamodule = ForecastDataModule(
            data["inputs"], data["targets"], data["bounds"],
            lookback=p.window.lookback, horizon=p.window.horizon, stride=p.window.stride,
            batch_size=p.training.batch_size, seed=p.training.seed,
        )
        return module, datamodule

    def build_net(self, hp: Mapping[str, Any]):
        from lstm_lab.models.forecaster import LSTMForecaster

        return LSTMForecaster(int(hp["n_features"]), int(hp["n_targets"]), int(hp["horizon"]),
                              ModelSpec.model_validate(hp["model"]), residual=bool(hp.get("residual", True)))


TASK = ForecastTask()
