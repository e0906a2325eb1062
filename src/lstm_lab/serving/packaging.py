"""What every pyfunc model of the project shares: MLflow's "models from code" form, pinned requirements, and a
scratch directory for the artifacts while MLflow copies them into the run (or a local folder).

A model directory holds JSON (hyper-parameters, vocabulary, tokenizer), a torch state dict loaded with
``weights_only=True`` and a three-line script that imports the model's class: nothing is pickled, so loading a
model runs only this package's code. Serving needs ``lstm_lab`` importable (``--env-manager local`` in the
project's .venv, or ``pip install -e .`` in the serving environment).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

REQUIREMENTS = ("mlflow", "torch", "numpy", "pandas", "pydantic")


def pip_requirements() -> list[str]:
    """Exact versions of what the model code imports: given explicitly, so MLflow never resolves them online."""
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for package in REQUIREMENTS:
        try:
            out.append(f"{package}=={version(package)}")
        except PackageNotFoundError:  # pragma: no cover - all are dependencies
            out.append(package)
    return out


def model_code(module: str, cls: str) -> str:
    """The script MLflow stores instead of a pickle; loading the model runs it and gets a fresh ``cls()``."""
    return f"from mlflow.models import set_model\nfrom {module} import {cls}\nset_model({cls}())\n"


def bad_input(message: str) -> MlflowException:
    """A caller's mistake: one line, and HTTP 400 (not 500) when served."""
    return MlflowException(message, error_code=INVALID_PARAMETER_VALUE)


def write_json(path: Path, data: Any) -> str:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return str(path)


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def save_state_dict(path: Path, net) -> str:
    import torch

    torch.save({k: v.detach().cpu() for k, v in net.state_dict().items()}, path)
    return str(path)


def load_state_dict(path: str | Path) -> dict[str, Any]:
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)  # tensors only: nothing in it executes


@contextlib.contextmanager
def packaged(module: str, cls: str, write_artifacts: Callable[[Path], Mapping[str, str]],
             **kwargs: Any) -> Iterator[dict[str, Any]]:
    """The keyword arguments of ``mlflow.pyfunc.log_model`` / ``save_model``: artifacts written by
    ``write_artifacts(folder)`` and the model code in a scratch folder; ``kwargs`` (signature, input_example)
    passed through. MLflow's progress bars are kept out of pipeline logs meanwhile."""
    with tempfile.TemporaryDirectory(prefix="lstm_lab_pyfunc_") as scratch:
        previous = os.environ.get("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")
        os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
        try:
            folder = Path(scratch) / "artifacts"
            folder.mkdir()
            artifacts = dict(write_artifacts(folder))
            code = Path(scratch) / f"{module.rsplit('.', 1)[-1]}_model.py"
            code.write_text(model_code(module, cls), encoding="utf-8")
            yield {"python_model": str(code), "artifacts": artifacts, "pip_requirements": pip_requirements(),
                   **kwargs}
        finally:
            if previous is None:
                os.environ.pop("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", None)
            else:
                os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = previous


def log_packaged(name: str, package: contextlib.AbstractContextManager):
    """Log a ``packaged(...)`` model into the active run as ``name``; returns MLflow's ``ModelInfo``."""
    with package as kwargs:
        return mlflow.pyfunc.log_model(name=name, **kwargs)


def save_packaged(path: str | Path, package: contextlib.AbstractContextManager) -> Path:
    """Write a ``packaged(...)`` model to a local folder (no tracking store needed)."""
    with package as kwargs:
        mlflow.pyfunc.save_model(path=str(path), **kwargs)
    return Path(path)
