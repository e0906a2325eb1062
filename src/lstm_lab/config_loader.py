"""The project's config loader: Kedro's OmegaConfigLoader with a soft merge that lets an environment replace a
mapping whose keys are data, not settings.

Parameters are soft-merged (settings.py): ``conf/etth1`` names only the keys it changes, deep inside
``forecast:``. For most sections that is what a user means. For a mapping whose *keys* are values — the raw label
→ class table ``sentiment.data.labels`` — a deep merge is wrong: an environment's ``{neg: 0, pos: 1}`` merged
with base's ``{0: 0, 1: 1}`` gives four labels and a corpus whose ``0``/``1`` rows are silently accepted. Those
mappings are replaced whole by the environment that names them, and the replacement is logged.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from kedro.config import OmegaConfigLoader

log = logging.getLogger(__name__)

# Dotted paths of parameters that an environment replaces instead of merging into.
REPLACED_MAPPINGS: tuple[str, ...] = ("sentiment.data.labels",)


def _lookup(tree: Any, path: list[str]) -> tuple[bool, Any]:
    for key in path:
        if not isinstance(tree, dict) or key not in tree:
            return False, None
        tree = tree[key]
    return True, tree


def _names(runtime_params: dict[str, Any], dotted: str) -> bool:
    """Whether ``--params`` sets ``dotted`` or a key inside it (nested dicts or flat dotted keys)."""
    if _lookup(runtime_params, dotted.split("."))[0]:
        return True
    return any(str(key) == dotted or str(key).startswith(dotted + ".") for key in runtime_params)


def replace_mappings(merged: dict[str, Any], env_config: dict[str, Any], env_path: str | None,
                     paths: tuple[str, ...] = REPLACED_MAPPINGS,
                     runtime_params: dict[str, Any] | None = None) -> dict[str, Any]:
    """``merged`` with every path of ``paths`` that ``env_config`` names set to the environment's value.

    Kedro merges ``--params`` into the environment's config too; a path that ``--params`` names is left to the
    ordinary merge, so that ``--params`` alone never replaces a whole mapping by the one key it sets.
    """
    for dotted in paths:
        keys = dotted.split(".")
        found, value = _lookup(env_config, keys)
        if not found or _names(runtime_params or {}, dotted):
            continue
        parent = merged
        for key in keys[:-1]:
            parent = parent.setdefault(key, {})
        if parent.get(keys[-1]) != value:
            log.info("%s: %s replaces the base mapping (not merged into it)", env_path or "environment", dotted)
        parent[keys[-1]] = copy.deepcopy(value)
    return merged


class ProjectConfigLoader(OmegaConfigLoader):
    def _soft_merge(self, config: dict[str, Any], env_config: dict[str, Any], env_path: str | None = None) -> Any:
        from omegaconf import OmegaConf

        plain_env = OmegaConf.to_container(env_config) if not isinstance(env_config, dict) else env_config
        merged = super()._soft_merge(config, env_config, env_path)
        runtime = dict(self.runtime_params or {})
        return replace_mappings(merged, plain_env, env_path, runtime_params=runtime)
