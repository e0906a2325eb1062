"""The trained character model as an MLflow pyfunc model: prompts in, generated text out.

    model = mlflow.pyfunc.load_model("models:/textgen@champion")
    model.predict(pd.DataFrame({"prompt": ["ROMEO:"], "length": [300], "temperature": [0.8], "top_k": [20],
                                "seed": [1]}))

Input: a DataFrame with one row per text to generate: a ``prompt`` column and, per row and optional, ``length``, ``temperature``, ``top_k``, ``seed``, ``greedy``. A missing or null setting takes
lstm-lab-generate's default (300 characters, temperature 1.0, no top-k, seed 0, sampling).

Output: ``text``, the prompt followed by the generated characters (exactly what ``lstm-lab-generate`` prints
for the same settings, without the newline it ends its output with), and ``continuation``, the generated
characters alone. Generation is the CLI's: the same state-carrying sampler (``generate_text``), a seeded
generator, one torch thread. Bad settings or a prompt character never seen in training are an error naming
the row.

The model directory holds ``textgen.json`` (sizes and the character vocabulary) and ``weights.pt`` (a state
dict, loaded with ``weights_only=True``): nothing is pickled (``serving.packaging``).
"""

from __future__ import annotations

import math
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

# lstm-lab-generate's defaults (serving/generate.py), so a bare prompt gives the CLI's text.
DEFAULTS: dict[str, Any] = {"length": 300, "temperature": 1.0, "top_k": None, "seed": 0, "greedy": False}
NET_KEYS = ("vocab_size", "model", "embedding", "vocab")
SIGNATURE = ModelSignature(
    inputs=Schema([ColSpec("string", "prompt"),
                   # Numbers as double: a JSON column with a null in it arrives as floats, which MLflow would
                   # refuse for an integer column; whole values are checked here instead.
                   ColSpec("double", "length", required=False), ColSpec("double", "temperature", required=False),
                   ColSpec("double", "top_k", required=False), ColSpec("double", "seed", required=False),
                   ColSpec("boolean", "greedy", required=False)]),
    outputs=Schema([ColSpec("string", "text"), ColSpec("string", "continuation")]),
)
INPUT_EXAMPLE = pd.DataFrame({"prompt": ["\n"], "length": [40.0], "temperature": [0.8], "seed": [1.0]})


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def _whole(value: Any, name: str, row: int) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not math.isfinite(number) or number != int(number):
        raise bad_input(f"row {row}: {name} must be a whole number, got {value!r}")
    return int(number)


def _settings(row: Mapping[str, Any], i: int) -> dict[str, Any]:
    out = dict(DEFAULTS)
    for key in DEFAULTS:
        value = row.get(key)
        if _missing(value):
            continue
        if key in ("length", "top_k", "seed"):
            out[key] = _whole(value, key, i)
        elif key == "temperature":
            out[key] = float(value)
        else:
            if not isinstance(value, (bool, np.bool_)):
                raise bad_input(f"row {i}: greedy must be true or false, got {value!r}")
            out[key] = bool(value)
    if out["length"] < 0:
        raise bad_input(f"row {i}: length must be >= 0, got {out['length']}")
    return out


def _rows(model_input: Any) -> list[dict[str, Any]]:
    if not isinstance(model_input, pd.DataFrame):
        raise bad_input(f"expected a DataFrame with a 'prompt' column, got {type(model_input).__name__}")
    if "prompt" not in model_input.columns:
        raise bad_input(f"expected a 'prompt' column, got columns {list(map(str, model_input.columns))}")
    rows = model_input.to_dict("records")
    for i, row in enumerate(rows):
        if not isinstance(row["prompt"], str) or not row["prompt"]:
            raise bad_input(f"row {i}: the prompt must be a non-empty text, got {row['prompt']!r}")
    return rows


def generate(net, vocab, model_input: Any) -> pd.DataFrame:
    """One generated text per input row (see the module docstring)."""
    import torch

    from lstm_lab.errors import LstmLabError, one_line
    from lstm_lab.models.generate import generate_text

    rows = _rows(model_input)
    texts, continuations = [], []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # lstm-lab-generate's default: the same arithmetic, the same characters
    try:
        for i, row in enumerate(rows):
            s = _settings(row, i)
            try:
                more = generate_text(net, vocab, row["prompt"], s["length"], greedy=s["greedy"],
                                     temperature=s["temperature"], top_k=s["top_k"], seed=s["seed"])
            except LstmLabError as exc:
                raise bad_input(f"row {i}: {one_line(exc)}") from None
            texts.append(row["prompt"] + more)
            continuations.append(more)
    finally:
        torch.set_num_threads(threads)
    return pd.DataFrame({"text": pd.Series(texts, dtype=object), "continuation": pd.Series(continuations, dtype=object)})


class TextgenPyfunc(mlflow.pyfunc.PythonModel):
    """Stateless until ``load_context`` reads the bundled vocabulary, sizes and weights."""

    def load_context(self, context) -> None:
        from lstm_lab.training.textgen.task import TASK

        meta = read_json(context.artifacts["textgen"])
        state = load_state_dict(context.artifacts["weights"])
        trained = TASK.from_checkpoint({"hyper_parameters": meta["hyper_parameters"],
                                        "state_dict": {f"net.{k}": v for k, v in state.items()}})
        self.net = trained.net
        self.vocab = TASK.vocabulary(trained, source="textgen model")

    def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        return generate(self.net, self.vocab, model_input)


def _package(checkpoint: Mapping[str, Any]):
    from lstm_lab.training.textgen.task import TASK

    hp = checkpoint["hyper_parameters"]
    meta = {"hyper_parameters": {k: hp[k] for k in NET_KEYS if k in hp}}
    example = INPUT_EXAMPLE if "\n" in hp["vocab"]["chars"] else INPUT_EXAMPLE.assign(prompt=[hp["vocab"]["chars"][0]])

    def write(folder: Path) -> dict[str, str]:
        net = TASK.from_checkpoint(checkpoint).net
        return {"textgen": write_json(folder / "textgen.json", meta),
                "weights": save_state_dict(folder / "weights.pt", net)}

    return packaged(__name__, "TextgenPyfunc", write, signature=SIGNATURE, input_example=example)


def log_model(name: str, checkpoint: Mapping[str, Any]):
    """Log the pyfunc model into the active MLflow run; returns MLflow's ``ModelInfo``."""
    return log_packaged(name, _package(checkpoint))


def save_model(path: str | Path, checkpoint: Mapping[str, Any]) -> Path:
    """The same pyfunc model written to a local directory (no tracking store needed)."""
    return save_packaged(path, _package(checkpoint))
