"""What ``kedro run`` prints when a run ends: its scores, where its files went, and how to open it in MLflow.

The scores are the dicts the catalog logs as metrics (``metadata.lstm_lab.mlflow_metrics``): a forecast's
``{model: {metric: value}}`` becomes a table with one row per model (the LSTM beside its baselines); a flat
dict (sentiment accuracy, textgen bits per character) becomes one line of ``name value`` pairs.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def score_lines(name: str, scores: Mapping[str, Any]) -> list[str]:
    nested = {k: v for k, v in scores.items() if isinstance(v, Mapping)}
    flat = {k: v for k, v in scores.items() if isinstance(v, numbers.Real) and not isinstance(v, bool)}
    lines = []
    columns = [c for c in next(iter(nested.values())) if all(c in row for row in nested.values())][:6] \
        if nested else []
    if columns:  # rows of the same kind (models, splits): a table
        width = max(len(k) for k in nested) + 2
        lines.append(f"  {name}".ljust(width + 2) + "".join(c.rjust(12) for c in columns))
        for row, values in nested.items():
            lines.append(f"    {row}".ljust(width + 2) + "".join(_number(values[c]).rjust(12) for c in columns))
    elif nested:  # unrelated groups (rows per split, skipped rows per reason): one line each
        lines.append(f"  {name}:")
        for row, values in nested.items():
            shown = [(k, v) for k, v in values.items() if not isinstance(v, Mapping)][:8]
            lines.append(f"    {row}: " + ", ".join(f"{k} {_number(v)}" for k, v in shown))
    if flat:
        shown = list(flat.items())[:8]
        lines.append(f"  {name}: " + ", ".join(f"{k} {_number(v)}" for k, v in shown))
    return lines


def format_summary(pipelines: str, seconds: float, scores: Mapping[str, Mapping[str, Any]],
                   outputs: Iterable[Path], project: Path, run_id: str | None, experiment_id: str | None,
                   tracking_uri: str | None) -> list[str]:
    lines = [f"Run summary: {pipelines} finished in {seconds:.1f} s"]
    for name, values in scores.items():
        lines += score_lines(name, values)
    folders: dict[str, list[str]] = {}
    for path in sorted(outputs):
        try:
            shown = path.relative_to(project)
        except ValueError:
            shown = path
        folders.setdefault(str(shown.parent), []).append(shown.name)
    for folder, names in folders.items():
        lines.append(f"  {folder}/: {', '.join(names)}")
    if run_id:
        lines.append(f"  MLflow run {run_id} (experiment {experiment_id}) in {tracking_uri}")
        if tracking_uri and tracking_uri.startswith("sqlite:///"):
            lines.append(f"  open it: mlflow ui --backend-store-uri {tracking_uri} --host 127.0.0.1  (or: make ui), "
                         f"then http://127.0.0.1:5000/#/experiments/{experiment_id}/runs/{run_id}")
    return lines
