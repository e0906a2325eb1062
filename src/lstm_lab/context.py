"""The project's Kedro context: parameters validated by this project's schemas, once per run.

Kedro 1.7 turns a ``params:`` node input into a typed object when the node's type hint is a pydantic model.
This context keeps that contract (nodes are annotated with their task's schema and receive the object; Kedro
adds ``params:forecast.window`` and the other nested entries from it) but does the validation itself
(``lstm_lab.params.validate``): one ``Error:`` line naming the file and the dotted parameter, device settings
checked with the rest, and only the sections the run's pipelines use (``kedro run --pipelines=forecast`` is
not stopped by a mistake in the sentiment parameters).
"""

from __future__ import annotations

import logging
from typing import Any
from warnings import warn

from kedro.config import MissingConfigException
from kedro.framework.context import KedroContext

from lstm_lab.params import parameter_keys, validate

log = logging.getLogger(__name__)


class ProjectContext(KedroContext):
    def _get_validated_params(self) -> dict[str, Any]:
        scope = self._pipelines_to_validate
        if self._validated_params_cache is not None and self._cached_validation_scope == scope:
            return self._validated_params_cache
        try:
            raw = dict(self.config_loader["parameters"])
        except MissingConfigException as exc:
            warn(f"Parameters not found in your Kedro project config.\n{exc!s}")
            raw = dict(self._runtime_params or {})
        # Without a scope Kedro runs __default__ (or a notebook reads every parameter): forecast's sections.
        keys = parameter_keys(list(scope) if scope else ["__default__"])
        typed = {key: validate(key, raw.get(key), overrides=self._runtime_params) for key in keys}
        log.debug("validated parameters: %s", ", ".join(typed))
        self._validated_params_cache = {**raw, **typed}
        self._cached_validation_scope = scope
        return self._validated_params_cache
