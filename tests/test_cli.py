"""``kedro run`` as a user types it, in a subprocess: both pipeline flags, a user CSV, and bad input.

Bad input must give one clear line naming the problem, a non-zero exit, and leave the previous run's model
and metrics untouched.
"""

import numpy as np
import pandas as pd
import pytest

from tests.conftest import kedro, make_project, mlflow_client, write_yaml

pytestmark = pytest.mark.slow

CSV_CATALOG = {"forecast_raw": {"type": "pandas.CSVDataset", "filepath": "data/01_raw/series.csv"}}
CSV_PARAMS = {
    "forecast": {
        "data": {"time_column": "when", "target_columns": ["load"], "covariate_columns": ["temp"], "max_gap": 2},
        "window": {"lookback": 12, "horizon": 3},
        "model": {"hidden_sizes": [4]},
        "training": {"max_epochs": 1, "early_stopping_patience": 1},
        "evaluation": {"seasonal_period": 24},
    }
}


def series_csv(n=400) -> pd.DataFrame:
    t = np.arange(n)
    return pd.DataFrame(
        {
            "when": pd.date_range("2024-01-01", periods=n, freq="h").astype(str),
            "load": 10 + np.sin(2 * np.pi * t / 24) + 0.01 * t,
            "temp": np.cos(2 * np.pi * t / 24),
        }
    )


def test_default_run_with_both_pipeline_flags(tiny_project):
    done = kedro(tiny_project, "--pipeline=forecast")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Run summary: " in done.stdout  # the project prints it once the pipeline has succeeded
    done = kedro(tiny_project, "--pipelines=forecast")
    assert done.returncode == 0, done.stderr[-3000:]
    client = mlflow_client(tiny_project)
    runs = client.search_runs([client.get_experiment_by_name("forecast").experiment_id])
    assert [r.info.status for r in runs] == ["FINISHED", "FINISHED"]


@pytest.fixture(scope="module")
def csv_project(tmp_path_factory):
    """One successful run on a user CSV; every bad-input case then fails against its saved outputs."""
    root = make_project(tmp_path_factory.mktemp("csv") / "project", local_params=CSV_PARAMS)
    write_yaml(root / "conf/local/catalog.yml", CSV_CATALOG)
    series_csv().to_csv(root / "data/01_raw/series.csv", index=False)
    done = kedro(root, "--pipelines=forecast")
    assert done.returncode == 0, done.stderr[-3000:]
    return root


def break_csv(root, how):
    path = root / "data/01_raw/series.csv"
    frame = series_csv()
    frame.to_csv(path, index=False)  # start each case from the good file
    if how in ("unknown parameter", "two cpu devices without a strategy"):
        return
    if how == "missing file":
        path.unlink()
        return
    if how == "missing target":
        frame = frame.drop(columns=["load"])
    elif how == "non-numeric":
        frame["load"] = frame["load"].astype(object)
        frame.loc[17, "load"] = "twelve"
    elif how == "too short":
        frame = frame.iloc[:20]
    elif how == "duplicate timestamp":
        frame = pd.concat([frame, frame.iloc[[30]]])
    frame.to_csv(path, index=False)


CASES = [
    ("missing file", [], r"series.csv"),
    ("missing target", [], r"forecast_raw: column 'load' not found; columns are \['when', 'temp'\]"),
    ("non-numeric", [], r"forecast_raw: column 'load' row 17: 'twelve' is not a number"),
    ("too short", [], r"the train split \(rows 0\.\.14 of 20\) is too short for one window of lookback 12 \+ horizon 3"),
    ("duplicate timestamp", [], r"forecast_raw: duplicate timestamp 2024-01-02 06:00:00"),
    ("unknown parameter", ["--params=forecast.training.lerning_rate=0.1"],
     r"forecast.training.lerning_rate: unknown parameter"),
    ("two cpu devices without a strategy", ["--params=forecast.training.trainer.devices=2"],
     r"forecast.training.trainer"),
]


@pytest.mark.parametrize("how,args,message", CASES, ids=[c[0] for c in CASES])
def test_bad_input_one_line_error_and_nothing_overwritten(csv_project, how, args, message):
    import re

    kept = {
        p: p.read_bytes()
        for p in [csv_project / "data/06_models/forecast_model.ckpt",
                  csv_project / "data/08_reporting/forecast_metrics.json"]
    }
    break_csv(csv_project, how)
    done = kedro(csv_project, "--pipelines=forecast", *args)
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: ") and re.search(message, last), done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    for path, content in kept.items():
        assert path.read_bytes() == content, f"{path.name} was overwritten by a failed run"


def test_runs_without_any_network(tiny_project):
    """`make run` must work offline once .venv exists: run the pipeline in a namespace with no network."""
    import shutil
    import subprocess

    from tests.conftest import BIN, project_env

    if not shutil.which("unshare") or subprocess.run(["unshare", "-n", "true"]).returncode != 0:
        pytest.skip("cannot create a network namespace here (unshare -n needs root)")
    done = subprocess.run(
        ["unshare", "-n", str(BIN / "kedro"), "run", "--pipelines=forecast"],
        cwd=tiny_project, env=project_env(), capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tiny_project / "data/08_reporting/forecast_metrics.json").is_file()
