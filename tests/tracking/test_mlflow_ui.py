"""Comparing runs in the MLflow UI, against a real ``mlflow server``: the REST API and a headless browser.

One module-scoped server (SQLite backend, proxied artifacts, loopback port) receives two tiny forecast runs that
differ in ``model.hidden_sizes`` and ``window.lookback``, sent through ``MLFLOW_TRACKING_URI`` exactly as a user
would. The REST test checks what a comparison needs (same parameter names, per-epoch histories, test metrics,
artifacts); the browser test opens the UI's compare-runs and metric pages in Debian's Chromium and saves
screenshots to ``tests/artifacts/``.
"""

from __future__ import annotations

import copy
import json
import math
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import BIN, TINY_FORECAST, kedro, make_project, project_env, write_yaml

pytestmark = pytest.mark.slow

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"  # screenshots, kept after the run (git-ignored)
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
WAIT_S = 60  # the UI is a React app that fetches runs, params and histories after the page loads

# The two runs: (lookback, hidden_sizes). Everything else is TINY_FORECAST (2 epochs).
VARIANTS = [(16, [8]), (24, [12])]
EXPECTED_ARTIFACTS = {
    "model/forecast_model.ckpt",
    "model/forecast_scaler.json",
    "plots/forecast_learning_curves.png",
    "plots/forecast_vs_actual.png",
    "reports/forecast_metrics.json",
    "reports/forecast_predictions.csv",
    "reports/forecast_history.csv",
    "config/resolved_parameters.yml",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_json(url: str, body: dict | None = None, timeout: float = 30):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory, request) -> str:
    """``mlflow server`` on a free loopback port; killed (whole process group) when the module ends."""
    root = tmp_path_factory.mktemp("mlflow_server")
    port = free_port()
    log = open(root / "server.log", "w")  # noqa: SIM115 - closed by the finalizer
    proc = subprocess.Popen(
        [
            str(BIN / "mlflow"), "server",
            "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
            "--artifacts-destination", str(root / "artifacts"),
            "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        ],
        # No job runner (7 huey consumers for GenAI jobs): tracking and the UI do not need it.
        cwd=root, env=project_env({"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}),
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )

    def stop():
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=20)
        log.close()

    request.addfinalizer(stop)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        if proc.poll() is not None:
            pytest.fail(f"mlflow server exited with {proc.returncode}:\n{(root / 'server.log').read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
                if response.status == 200:
                    return url
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"mlflow server not healthy after 120 s:\n{(root / 'server.log').read_text()[-3000:]}")
        time.sleep(0.5)


@pytest.fixture(scope="module")
def compared_runs(mlflow_server, tmp_path_factory) -> list[dict]:
    """Two forecast runs logged to the server; REST run objects in VARIANTS order."""
    root = make_project(tmp_path_factory.mktemp("ui") / "project")
    for lookback, hidden in VARIANTS:
        local = copy.deepcopy(TINY_FORECAST)
        local["forecast"]["window"]["lookback"] = lookback
        local["forecast"]["model"]["hidden_sizes"] = hidden
        write_yaml(root / "conf/local/parameters_forecast.yml", local)
        done = kedro(root, "--pipelines=forecast", env={"MLFLOW_TRACKING_URI": mlflow_server})
        assert done.returncode == 0, done.stderr[-3000:]
    api = f"{mlflow_server}/api/2.0/mlflow"
    experiment = http_json(f"{api}/experiments/get-by-name?experiment_name=forecast")["experiment"]
    runs = http_json(f"{api}/runs/search", {"experiment_ids": [experiment["experiment_id"]], "max_results": 10})
    runs = runs.get("runs", [])
    by_lookback = {params(r)["window.lookback"]: r for r in runs}
    assert len(runs) == 2 and set(by_lookback) == {str(lb) for lb, _ in VARIANTS}, [r["info"] for r in runs]
    return [by_lookback[str(lb)] for lb, _ in VARIANTS]


def params(run: dict) -> dict[str, str]:
    return {p["key"]: p["value"] for p in run["data"].get("params", [])}


def metrics(run: dict) -> dict[str, float]:
    return {m["key"]: m["value"] for m in run["data"].get("metrics", [])}


def list_artifacts(api: str, run_id: str, path: str = "") -> dict[str, int]:
    """Every file of a run's artifact tree (``artifacts/list`` is one level at a time): path -> size."""
    query = urllib.parse.urlencode({"run_id": run_id, **({"path": path} if path else {})})
    files: dict[str, int] = {}
    for entry in http_json(f"{api}/artifacts/list?{query}").get("files", []):
        if entry["is_dir"]:
            files.update(list_artifacts(api, run_id, entry["path"]))
        else:
            files[entry["path"]] = int(entry.get("file_size", 0))
    return files


def test_rest_api_has_what_a_comparison_needs(mlflow_server, compared_runs):
    api = f"{mlflow_server}/api/2.0/mlflow"
    small, large = compared_runs
    experiment = http_json(f"{api}/experiments/get-by-name?experiment_name=forecast")["experiment"]
    for run in compared_runs:
        assert run["info"]["experiment_id"] == experiment["experiment_id"]
        assert run["info"]["status"] == "FINISHED"

    # Flat parameters, identically named, differing where the runs differ.
    a, b = params(small), params(large)
    assert set(a) == set(b)
    assert {"model.hidden_sizes", "window.lookback", "window.horizon", "training.learning_rate"} <= set(a)
    assert (a["model.hidden_sizes"], b["model.hidden_sizes"]) == ("[8]", "[12]")
    assert (a["window.lookback"], b["window.lookback"]) == ("16", "24")
    assert {k for k in a if a[k] != b[k]} == {"model.hidden_sizes", "window.lookback"}

    # One point per epoch for the learning curves, and the same test metrics on both runs.
    for run in compared_runs:
        run_id = run["info"]["run_id"]
        for key in ("train_loss", "val_loss"):
            query = urllib.parse.urlencode({"run_id": run_id, "metric_key": key})
            history = http_json(f"{api}/metrics/get-history?{query}")["metrics"]
            steps = sorted(m["step"] for m in history)
            # step = epochs trained; the forecast's val_loss also has step 0 (the untrained model, i.e. naive)
            first = 0 if key == "val_loss" else 1
            assert len(steps) >= 2 and steps == list(range(first, first + len(steps))), (key, steps)
            assert all(math.isfinite(m["value"]) for m in history)
        scores = metrics(run)
        assert {"test_lstm_mse", "test_lstm_mase", "test_naive_mse", "test_seasonal_naive_mase"} <= set(scores)
        assert all(math.isfinite(v) and v >= 0 for k, v in scores.items() if k.startswith("test_"))
    assert {k for k in metrics(small) if k.startswith("test_")} == {k for k in metrics(large) if k.startswith("test_")}

    # Artifacts through the server's proxy: plots, resolved config, model, predictions.
    for run, (lookback, _) in zip(compared_runs, VARIANTS):
        files = list_artifacts(api, run["info"]["run_id"])
        assert EXPECTED_ARTIFACTS <= set(files), sorted(files)
        assert all(files[path] > 0 for path in EXPECTED_ARTIFACTS)
        query = urllib.parse.urlencode({"run_uuid": run["info"]["run_id"], "path": "config/resolved_parameters.yml"})
        with urllib.request.urlopen(f"{mlflow_server}/get-artifact?{query}", timeout=30) as response:
            resolved = response.read().decode()
        assert f"lookback: {lookback}" in resolved


# ------------------------------------------------------------------------------------------------ browser
@pytest.fixture(scope="module")
def browser():
    """Headless Debian Chromium through selenium; never Selenium Manager or a downloaded browser.

    Module-scoped and first in the test's arguments, so a missing browser skips before any training."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not (Path(p).is_file() and os.access(p, os.X_OK))]
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing.append("python package selenium")
    if missing:
        why = f"browser test needs {', '.join(missing)} (Debian: apt-get install chromium chromium-driver)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{why}; .ci/run installs them, so CI must have them")
        pytest.skip(why)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1600,2000", "--no-first-run", "--disable-extensions"):
        options.add_argument(arg)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SE_OFFLINE", "true")  # belt and braces: Selenium Manager, if ever reached, must not download
        driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
        driver.set_page_load_timeout(120)
        try:
            yield driver
        finally:
            driver.quit()


def artifacts_dir() -> Path:
    """tests/artifacts/, ignoring itself in git until .gitignore names it."""
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / ".gitignore").write_text("*\n")
    return ARTIFACTS


def _q(value) -> str:
    return urllib.parse.quote(json.dumps(value))


def _wait(driver, condition, what: str, shot: str):
    """WebDriverWait with a screenshot and the page text in the failure message."""
    from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:  # stale elements (React re-rendered while we read) just mean: poll again
        wait = WebDriverWait(driver, WAIT_S, poll_frequency=0.5, ignored_exceptions=[StaleElementReferenceException])
        return wait.until(condition)
    except TimeoutException:
        artifacts_dir()
        driver.save_screenshot(str(ARTIFACTS / f"FAILED_{shot}"))
        text = driver.execute_script("return document.body ? document.body.innerText : ''")
        pytest.fail(f"{what} not shown within {WAIT_S} s at {driver.current_url} (screenshot "
                    f"{ARTIFACTS / f'FAILED_{shot}'}); page text:\n{text[:3000]}")


def _row_values(driver, name: str) -> list[str] | None:
    """Cells of the compare table's row headed ``name``, whitespace removed (lists render as JSON)."""
    for row in driver.find_elements("xpath", f"//tr[th[normalize-space()='{name}']]"):
        cells = ["".join(td.text.split()) for td in row.find_elements("tag name", "td")]
        if cells and row.is_displayed():
            return cells
    return None


def _texts(plot) -> set[str]:
    return {t.get_attribute("textContent").strip() for t in plot.find_elements("css selector", "text")}


def _plot_with(driver, texts: set[str], any_of: set[str] | None = None):
    """A displayed plotly chart whose SVG text includes all of ``texts`` (and one of ``any_of``)."""
    for plot in driver.find_elements("css selector", ".js-plotly-plot"):
        if plot.is_displayed() and plot.size["width"] > 100 and plot.size["height"] > 100:
            shown = _texts(plot)
            if texts <= shown and (not any_of or any_of & shown):
                return plot
    return None


def _close_assistant(driver) -> None:
    """Best effort: close the UI's assistant side panel so the screenshots show the comparison, not a chat."""
    from selenium.common.exceptions import WebDriverException

    try:
        for button in driver.find_elements("css selector", "button[data-component-id$='assistant.chat_panel.close']"):
            if button.is_displayed():
                button.click()
    except WebDriverException:
        pass


def _lines(plot) -> list:
    """The line traces drawn in a plotly chart (none when there is no chart yet)."""
    return [] if plot is None else plot.find_elements("css selector", ".scatterlayer .trace path.js-line")


def test_compare_runs_page_in_headless_chromium(browser, mlflow_server, compared_runs):
    run_ids = [r["info"]["run_id"] for r in compared_runs]
    experiments = sorted({r["info"]["experiment_id"] for r in compared_runs})
    a, b = (params(r) for r in compared_runs)
    artifacts_dir()

    # 1. Compare-runs page: the parameters table with the differing values side by side (columns in the
    #    order of ``runs``), and the parallel-coordinates chart over the differing params and val_loss.
    browser.get(f"{mlflow_server}/#/compare-runs?runs={_q(run_ids)}&experiments={_q(experiments)}")
    _wait(browser, lambda d: all(i in d.find_element("tag name", "body").text for i in run_ids),
          "the two run ids", "mlflow_compare_runs.png")
    _close_assistant(browser)
    for name in ("window.lookback", "model.hidden_sizes"):
        expected = ["".join(a[name].split()), "".join(b[name].split())]
        _wait(browser, lambda d, n=name, e=expected: _row_values(d, n) == e,
              f"parameter row {name} = {expected}", "mlflow_compare_runs.png")
    # (the UI picks the first shared metric for it, val_loss as the runs are logged today)
    metric_keys = set(metrics(compared_runs[0])) & set(metrics(compared_runs[1]))
    _wait(browser, lambda d: _plot_with(d, {"window.lookback", "model.hidden_sizes"}, any_of=metric_keys),
          "parallel-coordinates chart of the differing parameters and a metric", "mlflow_compare_runs.png")
    # Bring the differing rows of the (scrolled) parameters table into the picture, chart still on top.
    browser.execute_script(
        "arguments[0].scrollIntoView({block: 'nearest'});",
        browser.find_element("xpath", "//tr[th[normalize-space()='window.lookback']]"),
    )
    time.sleep(1)  # let plotly finish its transition before the picture
    browser.save_screenshot(str(ARTIFACTS / "mlflow_compare_runs.png"))

    # 2. The metric page the compare view links to: val_loss per epoch, one line per run.
    names = [r["info"].get("run_name") or r["info"]["run_id"] for r in compared_runs]
    browser.get(
        f"{mlflow_server}/#/metric/val_loss?runs={_q(run_ids)}&metric={_q('val_loss')}"
        f"&experiments={_q(experiments)}&plot_metric_keys={_q(['val_loss'])}&x_axis=step"
    )
    _wait(browser, lambda d: len(_lines(_plot_with(d, {"Step"}))) >= 2,
          "val_loss chart over steps, one line per run", "mlflow_val_loss.png")
    _wait(browser, lambda d: all(n in d.find_element("tag name", "body").text for n in names),
          "both run names in the legend", "mlflow_val_loss.png")
    time.sleep(1)
    browser.save_screenshot(str(ARTIFACTS / "mlflow_val_loss.png"))
    for shot in ("mlflow_compare_runs.png", "mlflow_val_loss.png"):
        assert (ARTIFACTS / shot).stat().st_size > 10_000
        print(f"screenshot: {ARTIFACTS / shot}")
