"""Kedro project settings."""

from kedro.config import OmegaConfigLoader

from lstm_lab.context import ProjectContext
from lstm_lab.hooks import ProjectHooks

HOOKS = (ProjectHooks(),)

# Parameters validated by the project's schemas (one-line errors, devices checked), once per run.
CONTEXT_CLASS = ProjectContext

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # An environment (conf/etth1, conf/local) overrides only the keys it names, deep inside `forecast:`.
    "merge_strategy": {"parameters": "soft"},
}
