"""A training task: everything the project knows about one kind of model, in one object.

A :class:`Task` owns its parameter schema (validated once per run, devices checked with it), how its
LightningModule and DataModule are built from the typed parameters and the prepared data, the one way a trained
model is rebuilt from its checkpoint, its MLflow run name, and what a sweep needs (the dataset its data
nodes end in, and how sampled values are written into the parameters).

Tasks are found by name: ``get_task("forecast")`` imports ``lstm_lab.training.forecast.task`` and takes its
``TASK``. Code outside the package (a plugin, a test) adds one with :func:`register`. Adding a task is one
package under ``training/`` (params, module, task) and one under ``pipelines/`` (nodes, pipeline): nothing
else names it.
"""

from __future__ import annotations

import importlib
import importlib.resources
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from lstm_lab.errors import LstmLabError
from lstm_lab.schema import StrictModel, validate_section


@dataclass
class TrainedModel:
    """A trained network rebuilt from its checkpoint (eval mode), with the plain hyper-parameters stored beside
    its weights: sizes, window, scaler, tokenizer or vocabulary, whatever the task needs to use it."""

    net: Any  # torch.nn.Module
    hparams: dict[str, Any]


class Task:
    """Base of every task; subclasses set ``name`` and ``schema`` and implement ``build`` and ``build_net``."""

    name: ClassVar[str]
    schema: ClassVar[type[StrictModel]]
    val_metrics: ClassVar[tuple[str, ...]] = ("val_loss",)  # what its module logs on validation (training.monitor)

    # ------------------------------------------------------------------------------------------ parameters
    def validate(self, raw: Any, where: str | None = None, overrides: Mapping[str, Any] | None = None) -> StrictModel:
        """The typed parameters of one run, or one ``LstmLabError`` line. Device and strategy settings that
        cannot work on this machine fail here too, before any process starts. ``overrides``: see
        ``schema.validate_section``."""
        params = validate_section(self.schema, self.name, raw, where, overrides)
        training = getattr(params, "training", None)
        if training is not None:
            from lstm_lab.training.config import check_monitor
            from lstm_lab.training.distributed import Platform, plan_training

            plan_training(training.trainer, Platform.detect(training.trainer), f"{self.name}.training.trainer")
            check_monitor(training, self.name, self.logged_metrics(params), where or f"conf/*/parameters_{self.name}.yml")
        return params

    def logged_metrics(self, params: StrictModel) -> tuple[str, ...]:
        """The validation metrics a fit of ``params`` logs: what ``training.monitor`` may name."""
        return self.val_metrics

    def with_values(self, params: StrictModel, values: Mapping[str, Any]) -> StrictModel:
        """``params`` with dotted-path values written in (a sweep's sample), validated as a new configuration."""
        from lstm_lab.tuning.space import apply

        return validate_section(self.schema, self.name, apply(params.model_dump(mode="json"), values))

    # ----------------------------------------------------------------------------------------------- sweeps
    @property
    def training_data(self) -> str:
        """The Kedro dataset (in memory) the pipeline's data nodes end in: what ``run_training`` takes."""
        return f"{self.name}_training_data"

    # --------------------------------------------------------------------------------------------- training
    def build(self, params: StrictModel, data: Mapping[str, Any]):
        """``(LightningModule, LightningDataModule)`` for ``params`` on the prepared ``data``."""
        raise NotImplementedError

    def build_net(self, hparams: Mapping[str, Any]):
        """The pure-torch network described by a checkpoint's hyper-parameters (untrained)."""
        raise NotImplementedError

    def from_checkpoint(self, checkpoint: Mapping[str, Any]) -> TrainedModel:
        """The one way to rebuild a trained model: its network with the checkpoint's weights, in eval mode."""
        if not isinstance(checkpoint, Mapping) or "hyper_parameters" not in checkpoint or "state_dict" not in checkpoint:
            raise LstmLabError(f"{self.name}: not a model checkpoint of this project (no hyper_parameters/state_dict)")
        hparams = dict(checkpoint["hyper_parameters"])
        net = self.build_net(hparams)
        prefix = "net."  # the LightningModule keeps the network as .net
        net.load_state_dict({k[len(prefix):]: v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)})
        return TrainedModel(net=net.eval(), hparams=hparams)

    # ------------------------------------------------------------------------------------------- reporting
    def run_name(self, params: StrictModel) -> str:
        """What tells runs apart in a list: ``forecast L=104 H=13 lstm[50] lr=0.002``."""
        bits = [self.name]
        window = getattr(params, "window", None)
        if window is not None and hasattr(window, "lookback"):
            bits.append(f"L={window.lookback} H={window.horizon}")
        if window is not None and hasattr(window, "length"):  # textgen: characters per training window
            bits.append(f"T={window.length}")
        model = getattr(params, "model", None)
        if model is not None:
            bits.append(f"{'bi' if model.bidirectional else ''}lstm{model.hidden_sizes}".replace(" ", ""))
            if model.variant != "NP":
                bits.append(model.variant)
            if model.pooling != "last":
                bits.append(model.pooling)
        training = getattr(params, "training", None)
        if training is not None:
            bits.append(f"lr={training.learning_rate:g}")
        return " ".join(bits)


# --------------------------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------------------------
_REGISTRY: dict[str, Task] = {}


def register(task: Task) -> Task:
    """Make ``task`` known by its name (tasks under ``lstm_lab.training`` are found without this)."""
    _REGISTRY[task.name] = task
    return task


def find_task(name: str) -> Task | None:
    """The task called ``name``, or None when there is none."""
    if name not in _REGISTRY:
        module_name = f"lstm_lab.training.{name}.task"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and module_name.startswith(exc.name):  # no such package; a broken import raises
                return None
            raise
        register(module.TASK)
    return _REGISTRY[name]


def get_task(name: str) -> Task:
    task = find_task(name)
    if task is None:
        raise LstmLabError(f"unknown task {name!r}; known: {', '.join(task_names())}")
    return task


def task_names() -> list[str]:
    """Every task: packages under ``lstm_lab.training`` with a ``task`` module, and registered ones."""
    root = importlib.resources.files("lstm_lab.training")
    found = {entry.name for entry in root.iterdir() if entry.joinpath("task.py").is_file()}
    return sorted(found | set(_REGISTRY))

