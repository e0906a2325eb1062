"""The forecast task: lookback-L windows of a scaled series → the next H steps of its targets.

``data`` (what the pipeline's ``training_data`` node hands to ``run_training``): ``inputs`` (N, F) scaled
float32 (targets first), ``targets`` (N, C), ``bounds`` (``train_end``, ``val_end``, ``test_end`` rows) and
``scaler`` (the fitted per-column scaler as a dict). The checkpoint keeps sizes, window, columns and scaler,
so it alone turns recent raw history into a forecast.

Panel runs (``ForecastParams.is_panel``) hand over ``{"kind": "panel", "panel": <scaled Panel>, "scaler": ...}``
instead and train the global ``PanelForecaster`` (training/panel_module.py); their checkpoints say
``kind: panel``, and ``ensemble: N`` stacks N members (``net.members.<k>.*``) that answer as one
``PanelEnsemble``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from lstm_lab.models.spec import ModelSpec
from lstm_lab.training.forecast.params import ForecastParams
from lstm_lab.training.task import Task

log = logging.getLogger(__name__)


class ForecastTask(Task):
    name = "forecast"
    schema = ForecastParams

    def logged_metrics(self, p: ForecastParams) -> tuple[str, ...]:
        return ("val_loss", "val_mae") if p.is_panel else ("val_loss",)  # PanelModule also logs the median's MAE

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

    def panel_hparams(self, p: ForecastParams, data: Mapping[str, Any]) -> dict[str, Any]:
        from lstm_lab.training.panel_module import panel_hparams

        levels = (0.5,) if p.output.kind == "point" else p.output.levels
        distribution = p.output.kind if p.output.kind in ("gaussian", "student_t") else None
        return panel_hparams(
            data["panel"], p.window.lookback, p.window.horizon, p.model, id_embedding=p.panel.id_embedding,
            levels=levels, distribution=distribution, context_size=p.panel.context_size,
            local_hidden=p.panel.local_hidden, residual=self._residual(p), anchor=p.panel.anchor,
            fold=p.panel.fold,
            training=p.training.model_dump(mode="json"),
            scaler=data.get("scaler"), kind="panel", target_transform=p.data.target_transform,
            lags=list(data.get("lags", ())), seasonal_period=p.evaluation.seasonal_period,
            # The validated parameters: serving rebuilds the run's data preparation from them (panel_pyfunc).
            params=p.model_dump(mode="json"),
        )

    @staticmethod
    def _residual(p: ForecastParams) -> bool:
        # Differences are already changes: they are modelled as they are, starting at zero (= seasonal naive).
        return p.residual and p.data.target_transform != "seasonal_log_diff"

    def build(self, p: ForecastParams, data: Mapping[str, Any]):
        if data.get("kind") == "panel":
            return self._build_panel(p, data)
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

    def _build_panel(self, p: ForecastParams, data: Mapping[str, Any]):
        import torch

        from lstm_lab.training.panel_module import PanelDataModule, PanelModule, build_panel_forecaster

        hp = self.panel_hparams(p, data)
        net = build_panel_forecaster(hp)
        if not hp["residual"]:  # start at "no change" anyway: the untrained model is the transform's baseline
            torch.nn.init.zeros_(net.local_mlp[-1].weight)
            torch.nn.init.zeros_(net.local_mlp[-1].bias)
        module = PanelModule(net, p.training, hp)
        datamodule = PanelDataModule(data["panel"], p.window.lookback, p.window.horizon, p.window.stride,
                                     p.training.batch_size, p.training.seed,
                                     max_windows_per_epoch=p.panel.windows_per_epoch)
        return module, datamodule

    def build_net(self, hp: Mapping[str, Any]):
        if hp.get("kind") == "panel":
            from lstm_lab.models.panel_forecaster import PanelEnsemble
            from lstm_lab.training.panel_module import build_panel_forecaster

            members = int(hp.get("ensemble", 1))
            if members > 1:
                return PanelEnsemble([build_panel_forecaster(hp) for _ in range(members)])
            return build_panel_forecaster(hp)
        from lstm_lab.models.forecaster import LSTMForecaster

        return LSTMForecaster(int(hp["n_features"]), int(hp["n_targets"]), int(hp["horizon"]),
                              ModelSpec.model_validate(hp["model"]), residual=bool(hp.get("residual", True)))


TASK = ForecastTask()


def train(p: ForecastParams, data: Mapping[str, Any], tracking=None) -> tuple[dict[str, Any], list[dict]]:
    """Train one network, or (panels) ``p.ensemble`` members with seeds ``seed .. seed+N-1`` stacked into one
    checkpoint; returns the checkpoint and the epoch history (an ensemble's with a ``member`` column, its
    members' epoch metrics logged to MLflow as ``member<k>_*``)."""
    from lstm_lab.training.entry import run_training

    if p.ensemble == 1:
        result = run_training(TASK, p, data, tracking=tracking)
        return _calibrated(p, data, result.checkpoint), result.history
    members, history = [], []
    for k in range(p.ensemble):
        pk = p.model_copy(update={"training": p.training.model_copy(update={"seed": p.training.seed + k}),
                                  "ensemble": 1})
        callbacks = []
        if tracking is not None:
            from lstm_lab.tracking.epoch_metrics import MlflowEpochMetrics

            callbacks.append(MlflowEpochMetrics(tracking, prefix=f"member{k}_"))
        log.info("ensemble member %d/%d (seed %d)", k + 1, p.ensemble, pk.training.seed)
        result = run_training(TASK, pk, data, callbacks=callbacks)
        members.append(result.checkpoint)
        history += [{"member": k, **row} for row in result.history]
    state = {f"net.members.{k}.{key[len('net.'):]}": value for k, member in enumerate(members)
             for key, value in member["state_dict"].items() if key.startswith("net.")}
    hparams = {**dict(members[0]["hyper_parameters"]), "ensemble": p.ensemble}
    checkpoint = {"state_dict": state, "hyper_parameters": hparams,
                  "epoch": max(int(m.get("epoch", 0)) for m in members)}
    return _calibrated(p, data, checkpoint), history


def _calibrated(p: ForecastParams, data: Mapping[str, Any], checkpoint: dict[str, Any]) -> dict[str, Any]:
    """With ``output.calibrate`` (panels): the checkpoint with its intervals calibrated on the validation windows
    (``quantile_offsets`` in its state, so every later forecast -- evaluation, backtest, future, serving -- uses
    them); otherwise unchanged."""
    if checkpoint is None or not (p.is_panel and p.output.calibrate):  # None: a torchrun rank other than 0
        return checkpoint
    from lstm_lab.training.panel_module import PanelDataModule, calibrate_intervals

    net = TASK.build_net(checkpoint["hyper_parameters"])
    net.load_state_dict({k[len("net."):]: v for k, v in checkpoint["state_dict"].items() if k.startswith("net.")})
    windows = PanelDataModule(data["panel"], p.window.lookback, p.window.horizon, p.window.stride,
                              p.training.batch_size, p.training.seed).dataset("val")
    offsets, before, after = calibrate_intervals(net, windows)
    if not before:
        log.warning("output.calibrate: no validation window to calibrate the intervals on; they stay as trained")
        return checkpoint
    log.info("intervals calibrated on %d validation windows: coverage %s before, %s after", len(windows),
             ", ".join(f"{c} {v:.3f}" for c, v in before.items()), ", ".join(f"{c} {v:.3f}" for c, v in after.items()))
    return {**checkpoint, "state_dict": {**checkpoint["state_dict"], "net.quantile_offsets": offsets.clone()},
            "calibration": {"windows": len(windows), "coverage_before": before, "coverage_after": after}}
