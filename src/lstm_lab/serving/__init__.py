"""Trained models packaged for use outside Kedro: MLflow pyfunc wrappers and command-line generation."""
