"""Kedro project settings."""

from lstm_lab.config_loader import ProjectConfigLoader
from lstm_lab.context import ProjectContext
from lstm_lab.hooks import ProjectHooks

HOOKS = (ProjectHooks(),)

# Parameters validated by the project's schemas (one-line errors, devices checked), once per run.
CONTEXT_CLASS = ProjectContext

CONFIG_LOADER_CLASS = ProjectConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # An environment (conf/etth1, conf/local) overrides only the keys it names, deep inside `forecast:`, except
    # the mappings config_loader.REPLACED_MAPPINGS lists (sentiment's label table), which it replaces whole.
    "merge_strategy": {"parameters": "soft"},
}
