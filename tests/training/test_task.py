"""A fourth task added from outside the package, with nothing edited but its own code (here: this file).

The toy task regresses the mean of a short window with a one-layer LSTM. Registering it is all it takes for the
project's parameter validation, the training entry point, checkpoint rebuilding, run naming and the sweep
pipeline factory to serve it.
"""

from __future__ import annotations

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from kedro.pipeline import node, pipeline
from pydantic import Field

from lstm_lab.errors import LstmLabError
from lstm_lab.models import LSTMEncoder, ModelSpec
from lstm_lab.params import parameter_keys, validate
from lstm_lab.pipelines.tune.pipeline import create_sweep_pipelines
from lstm_lab.schema import StrictModel
from lstm_lab.training.config import TrainingConfig
from lstm_lab.training.entry import run_training
from lstm_lab.training.module import TaskModule
from lstm_lab.training.task import Task, find_task, register, task_names


class ToyParams(StrictModel):
    length: int = Field(8, ge=2)
    model: ModelSpec = Field(default_factory=lambda: ModelSpec(hidden_sizes=[4]))
    # resume never: the test runs in the repository's folder, where resume would keep checkpoints/ on failure.
    training: TrainingConfig = Field(default_factory=lambda: TrainingConfig(max_epochs=2, batch_size=16,
                                                                            resume="never"))


class ToyNet(torch.nn.Module):
    def __init__(self, spec: ModelSpec):
        super().__init__()
        self.encoder = LSTMEncoder(1, spec)
        self.head = torch.nn.Linear(spec.output_size, 1)

    def forward(self, x):  # (B, T, 1) → (B,)
        return self.head(self.encoder(x)[1]).squeeze(-1)

    def regularization(self):
        return self.encoder.regularization()


class ToyModule(TaskModule):
    def loss(self, batch, stage):
        x, y = batch
        return torch.nn.functional.mse_loss(self.net(x), y), len(y), {}


class ToyData(torch.utils.data.Dataset):
    def __init__(self, x):
        self.x = torch.as_tensor(x, dtype=torch.float32)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i, :, None], self.x[i].mean()


class ToyDataModule(pl.LightningDataModule):
    def __init__(self, x, batch_size):
        super().__init__()
        self.x, self.batch_size = x, batch_size

    def train_dataloader(self):
        return torch.utils.data.DataLoader(ToyData(self.x[:48]), batch_size=self.batch_size)

    def val_dataloader(self):
        return torch.utils.data.DataLoader(ToyData(self.x[48:]), batch_size=self.batch_size)


class ToyTask(Task):
    name = "toy"
    schema = ToyParams

    def build(self, p: ToyParams, data):
        hp = {"model": p.model.model_dump(mode="json"), "length": p.length}
        return ToyModule(ToyNet(p.model), p.training, hp), ToyDataModule(data["x"], p.training.batch_size)

    def build_net(self, hp):
        return ToyNet(ModelSpec.model_validate(hp["model"]))


@pytest.fixture
def toy():
    task = register(ToyTask())
    yield task
    from lstm_lab.training import task as registry

    registry._REGISTRY.pop("toy", None)


def test_a_registered_task_is_served_end_to_end(toy):
    assert find_task("toy") is toy and "toy" in task_names()
    params = validate("toy", {"length": 8})  # the project's one validation, one-line errors included
    with pytest.raises(LstmLabError, match=r"parameters_toy\.yml: toy\.lenght: unknown parameter"):
        validate("toy", {"lenght": 8})
    assert parameter_keys(["tune_toy"]) == ["toy", "tune_toy"]
    assert toy.run_name(params) == "toy lstm[4] lr=0.001"

    data = {"x": np.random.default_rng(0).normal(size=(64, 8)).astype(np.float32)}
    result = run_training("toy", params, data)
    assert result.epochs == 2 and np.isfinite(result.best_val_loss)
    rebuilt = toy.from_checkpoint(result.checkpoint)
    x = torch.ones(2, 8, 1)
    torch.testing.assert_close(rebuilt.net(x), result.module.net.eval()(x))
    assert rebuilt.hparams["length"] == 8

    swept = toy.with_values(params, {"model.hidden_sizes": 6, "training.learning_rate": 0.01})
    assert swept.model.hidden_sizes == [6] and swept.training.learning_rate == 0.01

    def prepare(x):
        return {"x": x}

    toy_pipeline = pipeline([node(prepare, "toy_raw", toy.training_data)])
    sweeps = create_sweep_pipelines({"toy": toy_pipeline})
    assert set(sweeps) == {"tune_toy"}
    assert {"params:toy", "params:tune_toy", "toy_raw"} <= sweeps["tune_toy"].inputs()


def test_unknown_task_is_one_line():
    from lstm_lab.training.task import get_task

    with pytest.raises(LstmLabError, match="unknown task 'nope'; known: forecast, sentiment, textgen"):
        get_task("nope")
