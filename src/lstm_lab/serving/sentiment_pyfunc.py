"""The trained sentiment classifier as an MLflow pyfunc model: raw strings in, probabilities out.

The model directory bundles everything prediction needs besides the code: the tokenizer (JSON), the
classifier's constructor arguments (JSON), its weights (a torch state dict, loaded with ``weights_only=True``)
and a three-line script that imports ``SentimentPyfunc`` (MLflow's "models from code"): nothing is pickled.
Serving therefore needs ``lstm_lab`` importable: ``--env-manager local`` in the project's .venv, or
``pip install -e .`` in the serving environment.

    model = mlflow.pyfunc.load_model("runs:/<run id>/sentiment_model")
    model.predict(pd.DataFrame({"text": ["a gorgeous, witty film", "dull and lifeless"]}))
    #    probability     label
    # 0       0.97    positive
    # 1       0.03    negative

    mlflow models predict -m runs:/<run id>/sentiment_model -i reviews.csv -t csv --env-manager local

Input: a DataFrame with a ``text`` column (a CSV with a ``text`` header), or a list / Series / array of
strings. Output: a DataFrame with ``probability`` (of class 1, the positive class) and ``label`` (the class
name at the training threshold). A missing or blank text is an error naming its row, not a silent guess.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.types import ColSpec, Schema

from lstm_lab.serving.packaging import load_state_dict, log_packaged, packaged, save_packaged

TEXT_COLUMN = "text"
INPUT_EXAMPLE = ["A gorgeous, witty and moving film.", "Dull, lifeless and far too long."]
SIGNATURE = ModelSignature(
    inputs=Schema([ColSpec("string")]),  # one string column, any name: a list of strings fits too
    outputs=Schema([ColSpec("double", "probability"), ColSpec("string", "label")]),
)


def _texts(model_input: Any) -> list[str]:
    if isinstance(model_input, str):
        values: Sequence[Any] = [model_input]
    elif isinstance(model_input, pd.DataFrame):
        if TEXT_COLUMN in model_input.columns:
            values = model_input[TEXT_COLUMN].tolist()
        elif model_input.shape[1] == 1:
            values = model_input.iloc[:, 0].tolist()
        else:
            raise MlflowException(f"expected a '{TEXT_COLUMN}' column, got columns {list(model_input.columns)}",
                                  error_code=INVALID_PARAMETER_VALUE)
    elif isinstance(model_input, (pd.Series, np.ndarray, list, tuple)):
        values = list(np.asarray(model_input, dtype=object).reshape(-1))
    elif isinstance(model_input, Mapping) and TEXT_COLUMN in model_input:
        return _texts(list(np.atleast_1d(np.asarray(model_input[TEXT_COLUMN], dtype=object))))
    else:
        raise MlflowException(f"expected strings (a DataFrame with a '{TEXT_COLUMN}' column or a list), got "
                              f"{type(model_input).__name__}", error_code=INVALID_PARAMETER_VALUE)
    for i, value in enumerate(values):
        if not isinstance(value, str):
            raise MlflowException(f"row {i}: expected a text, got {value!r}", error_code=INVALID_PARAMETER_VALUE)
        if not value.strip():
            raise MlflowException(f"row {i}: empty text", error_code=INVALID_PARAMETER_VALUE)
    return list(values)


class SentimentPyfunc(mlflow.pyfunc.PythonModel):
    """Stateless until ``load_context`` reads the bundled tokenizer, config and weights."""

    def load_context(self, context) -> None:
        from lstm_lab.data.text import Tokenizer
        from lstm_lab.models.classifier import classifier_from_config

        meta = json.loads(Path(context.artifacts["classifier"]).read_text(encoding="utf-8"))
        self.tokenizer = Tokenizer.load(context.artifacts["tokenizer"])
        # One classifier, or an ensemble ({"ensemble": [member config, ...]}) answering its members' mean.
        self.net = classifier_from_config(meta["classifier"])
        state = load_state_dict(context.artifacts["weights"])
        self.net.load_state_dict(state)
        self.net.eval()
        self.class_names = list(meta["class_names"])
        self.threshold = float(meta["threshold"])
        self.batch_size = int(meta.get("batch_size", 512))

    # The pd.DataFrame hint keeps MLflow's type-hint validation out of the way (it asks for one otherwise): the
    # logged signature (one string column, 'text') is what MLflow enforces; lists and Series are accepted too.
    def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        from lstm_lab.models.classifier import predict_probabilities

        texts = _texts(model_input)
        if not texts:
            return pd.DataFrame({"probability": np.array([], dtype=np.float64), "label": np.array([], dtype=object)})
        ids, subwords = self.tokenizer.encode_model_input(texts)  # the training encoding (n-grams included)
        probs = predict_probabilities(self.net, ids, self.batch_size, subwords)
        labels = np.where(probs > self.threshold, self.class_names[1], self.class_names[0])
        return pd.DataFrame({"probability": probs, "label": labels})


def write_artifacts(directory: Path, checkpoint: Mapping[str, Any], tokenizer: Mapping[str, Any],
                    class_names: Sequence[str], threshold: float, batch_size: int = 512) -> dict[str, str]:
    """tokenizer.json, classifier.json and weights.pt in ``directory``; the ``artifacts`` map for pyfunc."""
    import torch

    from lstm_lab.training.sentiment.task import TASK

    net = TASK.from_checkpoint(checkpoint).net
    directory.mkdir(parents=True, exist_ok=True)
    paths = {
        "tokenizer": directory / "tokenizer.json",
        "classifier": directory / "classifier.json",
        "weights": directory / "weights.pt",
    }
    paths["tokenizer"].write_text(json.dumps(dict(tokenizer), ensure_ascii=False) + "\n", encoding="utf-8")
    meta = {"classifier": net.config(), "class_names": list(class_names), "threshold": threshold,
            "batch_size": batch_size}
    paths["classifier"].write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    torch.save({k: v.detach().cpu() for k, v in net.state_dict().items()}, paths["weights"])
    return {name: str(path) for name, path in paths.items()}


def _package(checkpoint, tokenizer, class_names, threshold, batch_size):
    """Models from code (``serving.packaging``): the artifacts above and a script importing SentimentPyfunc."""
    return packaged(__name__, "SentimentPyfunc",
                    lambda folder: write_artifacts(folder, checkpoint, tokenizer, class_names, threshold, batch_size),
                    signature=SIGNATURE, input_example=pd.DataFrame({TEXT_COLUMN: INPUT_EXAMPLE}))


def log_model(name: str, checkpoint: Mapping[str, Any], tokenizer: Mapping[str, Any],
              class_names: Sequence[str], threshold: float = 0.5, batch_size: int = 512):
    """Log the pyfunc model into the active MLflow run; returns MLflow's ``ModelInfo``."""
    return log_packaged(name, _package(checkpoint, tokenizer, class_names, threshold, batch_size))


def save_model(path: str | Path, checkpoint: Mapping[str, Any], tokenizer: Mapping[str, Any],
               class_names: Sequence[str], threshold: float = 0.5, batch_size: int = 512) -> Path:
    """The same pyfunc model written to a local directory (no tracking server needed)."""
    return save_packaged(path, _package(checkpoint, tokenizer, class_names, threshold, batch_size))
