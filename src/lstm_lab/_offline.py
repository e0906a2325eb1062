"""Keep the project offline: switch off the telemetry of every tool it drives.

Called on import of ``lstm_lab``, so it holds for ``kedro run``, pytest, Ray trials (which import the
package) and the ``lstm-lab-train`` entry point alike. ``setdefault`` leaves a user's explicit choice alone.
The Makefile exports the same variables for commands that start before this package is imported (dvc).
"""

import os

TELEMETRY_OFF = {
    "KEDRO_DISABLE_TELEMETRY": "true",  # kedro-telemetry plugin, if a user installs it
    "DO_NOT_TRACK": "1",  # honoured by kedro-telemetry and mlflow
    "MLFLOW_DISABLE_TELEMETRY": "true",  # mlflow >= 3.2 usage tracking
    "RAY_USAGE_STATS_ENABLED": "0",  # ray usage stats
    "DVC_NO_ANALYTICS": "1",  # dvc analytics (also off in .dvc/config)
    "HF_HUB_OFFLINE": "1",
}

# Not telemetry, but set at the same moment (before mlflow is imported, which is when it reads it): MLflow
# configures its own loggers with their own handler at INFO, so conf/logging.yml cannot quieten them; its INFO
# lines ("Validating input example against model signature") are noise in a run's output.
QUIET = {"MLFLOW_LOGGING_LEVEL": "WARNING"}


def disable_telemetry() -> None:
    for key, value in {**TELEMETRY_OFF, **QUIET}.items():
        os.environ.setdefault(key, value)
