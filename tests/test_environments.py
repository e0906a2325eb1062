"""The data environments (conf/etth1, conf/m4, conf/sst2, conf/uci, conf/uci_recipe) leave the default run alone.

Every output path of the base catalogs goes through ``${globals:env_folder}`` (empty in conf/base/globals.yml),
which an environment sets to its own folder; an environment whose globals.yml is missing, or whose catalog names an
output at a default path, would overwrite the CO2 run's files that dvc.lock tracks. And a model trained on other
data must not compete with the default model for ``models:/<name>@champion`` (test scores of different data sets
are not comparable), while the prediction pipeline of that environment must ask for the environment's own model.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from kedro.io import CatalogConfigResolver

from lstm_lab.config_loader import ProjectConfigLoader
from lstm_lab.params import validate
from lstm_lab.pipeline_registry import register_pipelines
from lstm_lab.settings import CONFIG_LOADER_ARGS

CONF = Path(__file__).resolve().parents[1] / "conf"
# The path each environment reads its data from (a runtime parameter); any value resolves the catalog.
RUNTIME = {"etth1_csv": "/in/ETTh1.csv", "m4_dir": "/in/m4", "sst2_dir": "/in/sst2", "uci_dir": "/in/uci"}
TASKS = ("forecast", "sentiment")
# Environments whose test set is the default run's own (SST-2's GLUE dev): their models may compete with it.
SAME_TEST_DATA = {"sst2"}
# Every environment with a catalog of its own (a user's conf/load too), but not conf/local: personal overrides.
ENVIRONMENTS = sorted(p.name for p in CONF.iterdir() if (p / "catalog.yml").is_file() and p.name not in
                      ("base", "local"))


@functools.cache  # each environment is loaded once for all the tests below (read only)
def config(env: str | None) -> tuple[dict, dict]:
    """The catalog and parameters as Kedro loads them for ``--env=<env>``; None: conf/base alone (not conf/local)."""
    args = {**CONFIG_LOADER_ARGS, "default_run_env": "base"} if env is None else CONFIG_LOADER_ARGS
    loader = ProjectConfigLoader(str(CONF), env=env, runtime_params=RUNTIME, **args)
    return loader["catalog"], loader["parameters"]


def path_of(catalog: dict, name: str) -> str | None:
    """Where ``name`` is written: its entry's filepath or folder, or its pattern's (``tune_{name}_results``)
    resolved as Kedro does; None for a dataset held in memory."""
    in_memory = {"{default}": {"type": "kedro.io.MemoryDataset"}}  # Kedro's own fallback, named to keep it quiet
    resolver = CatalogConfigResolver(catalog, default_runtime_patterns=in_memory)
    entry = catalog.get(name) or resolver.resolve_pattern(name)
    return entry.get("filepath") or entry.get("folder")


def task_of(env: str) -> str:
    """The pipeline an environment is for: the one whose raw data its own catalog names."""
    own = {line.split(":")[0] for line in (CONF / env / "catalog.yml").read_text().splitlines() if line[:1].isalpha()}
    (task,) = [t for t in TASKS if f"{t}_raw" in own]
    return task


def test_every_data_environment_is_checked():
    assert {"etth1", "m4", "sst2", "uci", "uci_recipe"} <= set(ENVIRONMENTS)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_an_environment_writes_every_output_under_its_own_folders(env):
    base, _ = config(None)
    catalog, _ = config(env)
    task, pipelines = task_of(env), register_pipelines()
    for name in sorted((pipelines[task] + pipelines[f"predict_{task}"] + pipelines[f"tune_{task}"]).all_outputs()):
        if path_of(base, name) is None:
            continue  # a memory dataset between two nodes
        path = path_of(catalog, name)
        assert path != path_of(base, name), f"conf/{env}: {name} is written to the default run's {path}"
        assert f"/{env}/" in f"{path}/", f"conf/{env}: {name} is written to {path}, outside data/*/{env}/"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_an_environment_registers_and_predicts_with_its_own_model(env):
    task = task_of(env)
    _, params = config(env)
    _, base = config(None)
    registered = params[task]["serving"]["registered_model"]
    if env not in SAME_TEST_DATA:
        assert registered != base[task]["serving"]["registered_model"], f"conf/{env} competes with the default"
    assert params[f"predict_{task}"]["registered_model"] == registered


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_an_environment_s_parameters_are_valid(env):
    """What `kedro run --env=<env>` validates before anything runs: the task's and its prediction pipeline's."""
    task = task_of(env)
    _, params = config(env)
    for key in (task, f"predict_{task}", f"tune_{task}"):
        validate(key, params[key], f"conf/{env}")
