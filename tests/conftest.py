"""Shared fixtures: a temporary copy of the real project with the real config, shrunk to run in seconds."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
BIN = Path(sys.executable).parent  # the .venv's bin: kedro, dvc, mlflow

# The real conf/base, shrunk: tiny network, two epochs. Tests override further where they need to.
TINY_FORECAST = {
    "forecast": {
        "window": {"lookback": 16, "horizon": 4},
        "model": {"hidden_sizes": [8]},
        "training": {"max_epochs": 2, "batch_size": 128, "early_stopping_patience": 2},
    }
}


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups (its worker plugin registers later)
def pytest_collection_modifyitems(config, items):
    """`make test` runs the suite on two pytest-xdist workers with ``--dist loadgroup``: a test file is one group,
    so its module-scoped fixtures (trained projects, servers) are built once, on one worker. A file that sets its
    own ``xdist_group`` (the Ray tests share one, so at most one Ray instance runs at a time) keeps it."""
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))


def deep_merge(base: dict, change: dict) -> dict:
    """``base`` with ``change`` written in, mapping by mapping (how Kedro's soft merge combines environments)."""
    out = dict(base)
    for key, value in change.items():
        out[key] = deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def raw_params(key: str, change: dict | None = None) -> dict:
    """The shipped ``conf/base/parameters_<key>.yml`` section, with ``change`` merged in."""
    raw = yaml.safe_load((REPO / "conf" / "base" / f"parameters_{key}.yml").read_text())[key]
    return deep_merge(raw, change or {})


def typed_params(key: str, change: dict | None = None):
    """What a node receives: the shipped section (+ ``change``) validated by the task's schema."""
    from lstm_lab.params import validate

    return validate(key, raw_params(key, change))


def write_yaml(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


_STORE_TEMPLATE: list[Path] = []


def store_template() -> Path:
    """An empty MLflow SQLite store with its schema created, made once per test session (in a subprocess: no MLflow
    state in this one). Creating the schema takes ~2 s a project; copying it, none."""
    if not _STORE_TEMPLATE:
        import tempfile

        path = Path(tempfile.mkdtemp(prefix="lstm_lab_store_")) / "mlflow.db"
        code = "import sys; from lstm_lab.tracking.store import ensure_store; ensure_store('sqlite:///' + sys.argv[1])"
        subprocess.run([sys.executable, "-c", code, str(path)], check=True, env=project_env(), capture_output=True)
        _STORE_TEMPLATE.append(path)
    return _STORE_TEMPLATE[0]


def make_project(root: Path, local_params: dict | None = TINY_FORECAST, fresh_store: bool = False) -> Path:
    """Copy what a Kedro run needs (pyproject, conf, data layout) into ``root``, with an empty MLflow store
    (``fresh_store``: none, so the first run creates it, as on a new clone)."""
    root.mkdir(parents=True, exist_ok=True)
    if not fresh_store:
        shutil.copy2(store_template(), root / "mlflow.db")
    for name in ("pyproject.toml", ".telemetry"):
        shutil.copy2(REPO / name, root / name)
    shutil.copytree(REPO / "conf", root / "conf", ignore=shutil.ignore_patterns("local"))
    (root / "conf" / "local").mkdir()
    (root / "src").mkdir()  # Kedro wants <project>/src to exist; the code is the installed (editable) package
    for layer in sorted(p.name for p in (REPO / "data").iterdir() if p.is_dir()):
        (root / "data" / layer).mkdir(parents=True, exist_ok=True)
    if local_params:
        write_yaml(root / "conf" / "local" / "parameters_forecast.yml", local_params)
    return root


@pytest.fixture
def tiny_project(tmp_path, monkeypatch) -> Path:
    root = make_project(tmp_path / "project")
    monkeypatch.chdir(root)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return root


def project_env(extra: dict | None = None) -> dict:
    env = dict(os.environ)
    env.pop("MLFLOW_TRACKING_URI", None)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra or {})
    return env


def kedro(root: Path, *args: str, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "kedro"), "run", *args], cwd=root, env=project_env(env), capture_output=True, text=True,
        timeout=timeout,
    )


def run_python(code: str, timeout: int = 120) -> subprocess.CompletedProcess:
    """``code`` in a fresh interpreter of this venv (its own imports and process state); fails the test with the
    end of its stderr when it exits non-zero."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def mlflow_client(root: Path):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
