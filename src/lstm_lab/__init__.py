"""lstm_lab: reproducible LSTM networks with Kedro, Lightning, MLflow, Ray Tune and DVC."""

from lstm_lab import _offline

_offline.disable_telemetry()

__version__ = "0.1.0"
