"""The notebooks in notebooks/, executed top to bottom against a tiny trained project, so they never rot.

One 2-epoch forecast run in a temporary copy of the project; the notebooks are copied into its ``notebooks/``
folder and run there with nbclient on a kernel that is this venv's python (a kernel spec written for the test,
so no user- or system-wide ``python3`` kernel can stand in). They find the project from their own location, as
in Jupyter on a fresh clone.
"""

from __future__ import annotations

import json
import re
import shutil
import sys

import pytest

from tests.conftest import REPO, kedro, make_project, project_env

pytestmark = pytest.mark.slow

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
KERNEL = "lstm-lab-test"
# Set by a user to point the notebooks elsewhere; the test must not inherit them.
OVERRIDES = ("MLFLOW_TRACKING_URI", "LSTM_LAB_PROJECT", "LSTM_LAB_EXPERIMENT", "LSTM_LAB_CHECKPOINT",
             "LSTM_LAB_KEDRO_ENV", "MPLBACKEND")


@pytest.fixture(scope="module")
def trained_project(tmp_path_factory):
    root = make_project(tmp_path_factory.mktemp("notebooks") / "project")
    done = kedro(root, "--pipelines=forecast")
    assert done.returncode == 0, done.stderr[-3000:]
    shutil.copytree(REPO / "notebooks", root / "notebooks", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    return root


@pytest.fixture(scope="module")
def kernel_manager_factory(tmp_path_factory):
    from jupyter_client import KernelManager
    from jupyter_client.kernelspec import KernelSpecManager

    kernels = tmp_path_factory.mktemp("kernels")
    (kernels / KERNEL).mkdir()
    (kernels / KERNEL / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "lstm_lab test (.venv)",
        "language": "python",
    }))
    return lambda: KernelManager(kernel_name=KERNEL, kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels)]))


def execute(root, name: str, kernel_manager_factory):
    """Run notebooks/<name> in the project's notebooks folder; a failing cell raises CellExecutionError."""
    path = root / "notebooks" / name
    nb = nbformat.read(path, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), f"{name} is committed with outputs"
    env = project_env()
    for key in OVERRIDES:
        env.pop(key, None)
    client = nbclient.NotebookClient(
        nb, km=kernel_manager_factory(), timeout=300, resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute(env=env)
    return nb


def outputs(nb, kind: str) -> list:
    """Every output of the executed notebook of this MIME type (or 'stream' for printed text)."""
    found = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if kind == "stream" and out.output_type == "stream":
                found.append(out.text)
            elif kind in out.get("data", {}):
                found.append(out.data[kind])
    return found


def test_compare_runs_notebook(trained_project, kernel_manager_factory):
    nb = execute(trained_project, "compare_runs.ipynb", kernel_manager_factory)
    printed = "".join(outputs(nb, "stream"))
    assert f"sqlite:///{trained_project / 'mlflow.db'}" in printed  # found the project from its own location
    assert "1 finished run(s) in experiment 'forecast'" in printed
    (table,) = [html for html in outputs(nb, "text/html") if "test_lstm_mse" in html]
    assert "model.hidden_sizes" in table and "window.lookback" in table
    assert table.split("<tbody>")[1].count("<tr") == 1  # one row: the run
    assert len(outputs(nb, "image/png")) == 1  # the learning curves


def test_understand_lstm_notebook(trained_project, kernel_manager_factory):
    nb = execute(trained_project, "understand_lstm.ipynb", kernel_manager_factory)
    printed = "".join(outputs(nb, "stream"))
    assert re.search(r"\d+ test windows of 16 steps; last block: 8 units", printed), printed[-2000:]
    assert any("forget" in html and "block 0" in html for html in outputs(nb, "text/html"))  # saturation table
    assert len(outputs(nb, "image/png")) == 3  # gate heatmaps, activation histograms, forecast vs actual
    # The notebook's forecasts are the pipeline's: same test MSE as the evaluation node wrote.
    mse = float(re.search(r"test MSE over \d+ windows x 4 steps: ([\d.]+)", printed).group(1))
    reported = json.loads((trained_project / "data/08_reporting/forecast_metrics.json").read_text())
    assert mse == pytest.approx(reported["lstm"]["mse"], abs=1e-4)
