"""Nodes of ``predict_sentiment``: the registered classifier on a table of texts.

    predict_sentiment_input (a CSV with a text column) → predict → predict_sentiment_output (the input's
    columns + probability + label)

The model comes from MLflow (``predict_sentiment.model_uri``, default ``models:/sentiment@champion``).
"""

from __future__ import annotations

import logging

import pandas as pd

from lstm_lab.errors import LstmLabError
from lstm_lab.serving.batch import load_model
from lstm_lab.serving.config import PredictSentimentParams

log = logging.getLogger(__name__)


def predict(texts: pd.DataFrame, p: PredictSentimentParams) -> pd.DataFrame:
    if p.text_column not in texts.columns:
        raise LstmLabError(f"predict_sentiment_input: no column {p.text_column!r} (predict_sentiment.text_column); "
                           f"columns are {list(map(str, texts.columns))}")
    model = load_model(p, "predict_sentiment")
    scores = model.predict(pd.DataFrame({"text": texts[p.text_column].to_numpy(dtype=object)}))
    out = pd.concat([texts.reset_index(drop=True), scores[["probability", "label"]]], axis=1)
    log.info("scored %d text(s): %s", len(out), out["label"].value_counts().to_dict())
    return out
