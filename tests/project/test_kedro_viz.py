"""``kedro viz run`` serves the project's pipelines on 127.0.0.1: its API lists the forecast nodes and the page
shows them in headless Chromium (screenshot in tests/artifacts/)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from tests.conftest import BIN, make_project, project_env
from tests.tracking.test_mlflow_ui import ARTIFACTS, browser  # noqa: F401 - browser is a fixture

pytestmark = pytest.mark.slow

FORECAST_NODES = {"clean_series", "split_series", "fit_scaler", "train_forecaster", "evaluate_forecaster"}


def free_registered_port() -> int:
    """A free loopback port below 49152: kedro viz refuses the ephemeral range the OS hands out for port 0."""
    import random
    import socket

    for port in random.Random().sample(range(20000, 49000), 200):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port between 20000 and 49000")


@pytest.fixture
def viz(tmp_path):
    root = make_project(tmp_path / "project")
    port = free_registered_port()
    log = open(tmp_path / "viz.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [str(BIN / "kedro"), "viz", "run", "--host", "127.0.0.1", "--port", str(port), "--no-browser",
         "--pipeline", "forecast"],
        cwd=root, env=project_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/main", timeout=10) as response:
                    main = json.loads(response.read())
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                assert proc.poll() is None, (tmp_path / "viz.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "kedro viz did not answer within 180 s"
                time.sleep(1)
        yield url, main
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        log.close()


def test_kedro_viz_lists_and_draws_the_forecast_pipeline(viz, browser):  # noqa: F811 - the fixture
    url, main = viz
    names = {node.get("name") for node in main["nodes"]} | {node.get("full_name") for node in main["nodes"]}
    assert FORECAST_NODES <= names, sorted(n for n in names if n)

    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(url)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        # Node labels are shown prettified ("Train Forecaster") by default; accept either spelling.
        WebDriverWait(browser, 90).until(
            lambda d: "train forecaster" in d.find_element("tag name", "body").text.lower().replace("_", " "))
    finally:
        browser.save_screenshot(str(ARTIFACTS / "kedro_viz_forecast.png"))
    body = browser.find_element("tag name", "body").text.lower().replace("_", " ")
    assert "clean series" in body and "evaluate forecaster" in body
