"""The model library: pure torch (no Lightning, no Kedro), importable on its own.

    from lstm_lab.models import LSTM, ModelSpec, LSTMForecaster

- ``LSTM``: drop-in ``torch.nn.LSTM`` with a native (cuDNN/oneDNN) path and a gate-level path (recurrent and
  input dropout, Greff et al. variants, gate capture); ``gate_saturation`` summarises captured gates.
- ``LSTMEncoder`` (stacked, bidirectional, pooled) built from a ``ModelSpec``; ``dense_head``.
- Task networks: ``LSTMForecaster``, ``SentimentClassifier``, ``CharLM``; pooling and attention layers;
  ``generate_text`` / ``generate_ids`` for character sampling.

Names are imported on first use (PEP 562), so ``from lstm_lab.models import ModelSpec`` does not load torch.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "ModelSpec": "spec",
    "LSTM": "lstm",
    "gate_saturation": "lstm",
    "LSTMEncoder": "encoder",
    "dense_head": "encoder",
    "DotProductAttention": "attention",
    "AdditiveAttention": "attention",
    "last_state_pool": "attention",
    "mean_pool": "attention",
    "max_pool": "attention",
    "LSTMForecaster": "forecaster",
    "SentimentClassifier": "classifier",
    "predict_probabilities": "classifier",
    "CharLM": "char_lm",
    "generate_text": "generate",
    "generate_ids": "generate",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'lstm_lab.models' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"lstm_lab.models.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
