"""Trained models for use outside Kedro: MLflow pyfunc models of every task (``*_pyfunc``), their registration
by a champion/challenger rule (``registry``), batch scoring helpers (``batch``) and ``lstm-lab-generate``."""
