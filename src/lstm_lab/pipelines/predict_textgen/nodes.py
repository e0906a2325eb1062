"""Nodes of ``predict_textgen``: the registered character model continues each configured prompt.

    params:predict_textgen (prompts + lstm-lab-generate's settings) → generate → predict_textgen_output

The model comes from MLflow (``predict_textgen.model_uri``, default ``models:/textgen@champion``).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from lstm_lab.serving.batch import load_model
from lstm_lab.serving.config import PredictTextgenParams

log = logging.getLogger(__name__)


def generate(p: PredictTextgenParams) -> pd.DataFrame:
    n = len(p.prompts)
    rows = pd.DataFrame({  # numbers as floats: the model's signature takes doubles (a null is NaN)
        "prompt": p.prompts, "length": [float(p.length)] * n, "temperature": [p.temperature] * n,
        "top_k": [np.nan if p.top_k is None else float(p.top_k)] * n, "seed": [float(p.seed)] * n,
        "greedy": [p.greedy] * n,
    })
    out = load_model(p, "predict_textgen").predict(rows)
    log.info("generated %d text(s) of %d character(s) after the prompt", n, p.length)
    return pd.concat([rows[["prompt"]], out[["text"]]], axis=1)
