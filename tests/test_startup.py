"""Start-up stays light: what Kedro imports before the first node must not pull in the heavy libraries.

``kedro run`` imports the settings (hooks, context), registers every pipeline and validates the run's parameters
before its first node; ``kedro --help`` imports the project's CLI. torch, Lightning, MLflow, Ray and matplotlib
take seconds each to import: they belong inside the functions that use them. Each check runs in a fresh
interpreter, since this test process has imported all of them long ago.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO

HEAVY = ("torch", "lightning", "mlflow", "ray", "matplotlib")


def loaded_after(code: str) -> list[str]:
    """The heavy top-level packages in ``sys.modules`` after running ``code`` in a fresh interpreter."""
    report = f"import json, sys\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r})))"
    probe = f"{code}\n{report}"
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_settings_hooks_and_pipeline_registry_import_nothing_heavy():
    code = (
        "import lstm_lab.settings, lstm_lab.hooks, lstm_lab.context\n"
        "from lstm_lab.pipeline_registry import register_pipelines\n"
        "assert 'forecast' in register_pipelines()\n"
    )
    assert loaded_after(code) == []


def test_validating_the_run_parameters_imports_nothing_heavy():
    """The project context validates the run's sections (devices included) before the first node."""
    code = (
        "import yaml\n"
        "from lstm_lab.params import validate\n"
        "for key in ('forecast', 'sentiment', 'textgen'):\n"
        "    validate(key, yaml.safe_load(open(f'conf/base/parameters_{key}.yml'))[key])\n"
    )
    assert loaded_after(code) == []


def test_the_cli_imports_nothing_heavy():
    """``kedro --help`` and ``kedro run --help`` import the project's CLI module."""
    assert loaded_after("import lstm_lab.cli\n") == []
