"""``training.monitor``: the validation metric that picks the kept checkpoint and drives early stopping.

Checked against what the task logs (one line naming ``<task>.training.monitor`` and the allowed values); a loss is
minimised and an accuracy maximised; the history keeps ``val_loss`` and ``FitResult.best_val_loss`` is the
val_loss of the epoch kept; the untrained-model rule of ``fit`` compares on the monitored metric too.
"""

from __future__ import annotations

import math

import pytest
import torch
import yaml

from lstm_lab.errors import LstmLabError
from lstm_lab.training.config import MONITOR_MODES, TrainingConfig
from lstm_lab.training.entry import fit, run_training
from lstm_lab.training.sentiment.params import SentimentParams
from lstm_lab.training.sentiment.task import TASK
from tests.conftest import REPO, typed_params
from tests.training.test_sentiment_task import data, texts  # noqa: F401 - the same tiny corpus and fixture

torch.set_num_threads(1)

def params(**training) -> SentimentParams:
    return SentimentParams.model_validate({
        "embedding": {"dim": 6}, "model": {"hidden_sizes": [6]},
        "training": {"max_epochs": 4, "batch_size": 16, "num_threads": 1, "resume": "never",
                     "early_stopping_patience": None, "learning_rate": 0.01, **training}})


def trained(history):
    return [row for row in history if row["epoch"] > 0]


# ------------------------------------------------------------------------------------------------- validation
def test_defaults_keep_val_loss_minimised():
    cfg = TrainingConfig()
    assert (cfg.monitor, cfg.monitor_mode, cfg.max_minutes) == ("val_loss", "min", None)
    assert TrainingConfig(monitor="val_acc").monitor_mode == "max"


def test_an_unknown_metric_is_one_line_naming_the_parameter_and_the_allowed_values():
    with pytest.raises(LstmLabError) as caught:
        typed_params("sentiment", {"training": {"monitor": "val_f1"}})
    message = str(caught.value)
    assert "\n" not in message and "sentiment.training.monitor" in message
    assert all(name in message for name in MONITOR_MODES) and "val_f1" in message


def test_a_metric_the_task_does_not_log_is_refused_with_what_it_logs(data):
    # sentiment checks it with its parameters, before anything runs ...
    with pytest.raises(LstmLabError, match=r"sentiment\.training\.monitor: .*'val_bits_per_char'.*"
                                           r"\(allowed: val_loss, val_acc\)"):
        typed_params("sentiment", {"training": {"monitor": "val_bits_per_char"}})
    # ... and so does every task (forecast logs val_loss only; a panel also its median's MAE) ...
    with pytest.raises(LstmLabError, match=r"forecast\.training\.monitor: .*'val_acc' \(allowed: val_loss\)$"):
        typed_params("forecast", {"training": {"monitor": "val_acc"}})
    assert typed_params("forecast", {"training": {"monitor": "val_mae"}, "output": {"kind": "quantile"}}).is_panel
    # ... and run_training checks it again, before building anything (parameters built without validation).
    forecast = typed_params("forecast", {"training": {"resume": "never"}})
    forecast = forecast.model_copy(update={"training": forecast.training.model_copy(update={"monitor": "val_acc"})})
    with pytest.raises(LstmLabError, match=r"^forecast\.training\.monitor: .*'val_acc' \(allowed: val_loss\)$"):
        run_training("forecast", forecast, {})


def test_the_sst2_recipe_selects_on_validation_accuracy():
    assert typed_params("sentiment").training.monitor == "val_loss"  # the base default: nothing else changes
    for env in ("sst2", "uci_recipe"):
        recipe = yaml.safe_load((REPO / "conf" / env / "parameters_sentiment.yml").read_text())["sentiment"]
        assert typed_params("sentiment", recipe).training.monitor == "val_acc"


def test_the_uci_recipe_is_the_sst2_recipe():
    """conf/uci_recipe says it trains conf/sst2's recipe: every key but SST-2's sentence split (and where the model
    is registered) must match, so a change to one (subwords, 2026-12-01) cannot leave the other behind."""
    sst2, uci = ({k: v for k, v in yaml.safe_load((REPO / "conf" / env / "parameters_sentiment.yml").read_text())
                  ["sentiment"].items() if k not in ("split", "serving")} for env in ("sst2", "uci_recipe"))
    assert uci == sst2


# ---------------------------------------------------------------------------------------------------- fitting
@pytest.fixture(scope="module")
def fits(data):
    """The same fit selected on each metric: accuracy reaches 100 % at epoch 4 while the loss falls to epoch 6."""
    return {monitor: run_training(TASK, params(monitor=monitor, max_epochs=6, learning_rate=0.03), data)
            for monitor in ("val_loss", "val_acc")}


def test_the_two_metrics_keep_different_epochs_of_the_same_training(fits):
    assert fits["val_loss"].history == fits["val_acc"].history  # early stopping off: the same six epochs
    assert fits["val_acc"].checkpoint["epoch"] < fits["val_loss"].checkpoint["epoch"] == 5
    assert fits["val_acc"].best_val_loss > fits["val_loss"].best_val_loss


@pytest.mark.parametrize("monitor", ["val_loss", "val_acc"])
def test_the_kept_epoch_is_the_best_by_the_monitored_metric(fits, monitor):
    result = fits[monitor]
    rows = trained(result.history)
    assert all("val_loss" in row and "val_acc" in row for row in rows)  # the history keeps both either way
    values = [row[monitor] for row in rows]
    best = max(values) if monitor == "val_acc" else min(values)
    kept = rows[values.index(best)]  # the first of equal scores: a later epoch must do strictly better
    assert result.checkpoint["epoch"] + 1 == kept["epoch"]
    assert (result.monitor, result.best_score) == (monitor, pytest.approx(best))
    assert result.best_val_loss == pytest.approx(kept["val_loss"])
    state = result.module.state_dict()
    assert all(torch.equal(state[k], v) for k, v in result.checkpoint["state_dict"].items())


def early_stop_epochs(values, patience, mode, max_epochs):
    """Epochs a patience-``patience`` early stopping on ``values`` (one per epoch) lets run."""
    best, wait = None, 0
    for epoch, value in enumerate(values, start=1):
        if best is None or (value > best if mode == "max" else value < best):
            best, wait = value, 0
        else:
            wait += 1
        if wait >= patience or epoch == max_epochs:
            return epoch
    return len(values)


def test_early_stopping_watches_the_monitored_metric(data):
    result = run_training(TASK, params(monitor="val_acc", max_epochs=8, early_stopping_patience=1,
                                       learning_rate=0.003), data)
    rows = trained(result.history)
    assert len(rows) == early_stop_epochs([row["val_acc"] for row in rows], 1, "max", 8)


def test_the_untrained_model_is_kept_when_no_epoch_beats_its_monitored_score(data, tmp_path):
    """The forecaster's rule (``initial_validation``) on a maximised metric: a learning rate too small to change
    anything leaves every epoch's accuracy equal to the untrained one, and a tie keeps the untrained weights."""
    p = params(monitor="val_acc", optimizer="sgd", learning_rate=1e-12, max_epochs=2, early_stopping_patience=1)
    torch.manual_seed(0)
    module, datamodule = TASK.build(p, data)
    module.initial_validation = True
    untrained = {k: v.clone() for k, v in module.state_dict().items()}
    result = fit(module, datamodule, p.training, checkpoint_dir=tmp_path)
    first = result.history[0]
    assert first["epoch"] == 0 and {"val_loss", "val_acc"} <= set(first)
    assert all(row["val_acc"] == first["val_acc"] for row in result.history)
    assert len(trained(result.history)) == 1  # patience counted from the untrained accuracy
    assert (result.checkpoint["epoch"], result.checkpoint["global_step"]) == (0, 0)
    assert result.best_score == first["val_acc"] and result.best_val_loss == first["val_loss"]
    assert all(torch.equal(result.module.state_dict()[k], v) for k, v in untrained.items())
    assert math.isfinite(result.best_val_loss)
