"""Datasets for panel forecasting: M4 competition files in and out, and an input nobody gave.

- ``M4Dataset``: a wide M4 file (``V1`` = id, then values) read as the long table ``id, t, y`` the forecast
  pipeline takes (``t`` the step index; a test file's ``t`` counts the forecast steps 0..H-1).
- ``M4SubmissionDataset``: the forecast table written as the competition's submission files
  ``<folder>/<Group>_forecasts.csv``, ``<Group>_lo95.csv``, ``<Group>_hi95.csv`` (``id,F1..FH``, one row per
  series in the order of the train file), each atomically; loading reads them back as one long table.
- ``NotGivenDataset``: loads ``None``. The default of an optional input (future covariates, the actual future):
  a node then does without it; a user overrides the entry with a real file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from kedro.io import AbstractDataset, DatasetError

from lstm_lab import staging
from lstm_lab.datasets.files import UnusableFileError  # an LstmLabError Kedro passes on as one line
from lstm_lab.errors import LstmLabError
from lstm_lab.io import atomic_path

SUBMISSION_FILES = {"forecasts": "median", "lo95": "lo95", "hi95": "hi95"}  # file suffix → forecast column


class NotGivenDataset(AbstractDataset):
    def __init__(self, metadata: dict[str, Any] | None = None):
        self.metadata = metadata

    def _describe(self) -> dict[str, Any]:
        return {"given": False}

    def load(self) -> None:
        return None

    def save(self, data: Any) -> None:
        raise DatasetError("NotGivenDataset holds no data; declare a file dataset for this entry to write it")

    def _exists(self) -> bool:
        return True


class M4Dataset(AbstractDataset):
    """``group``: Yearly … Hourly (ids are checked against it); ``test: true`` for a test file (exactly H values
    per row)."""

    def __init__(self, filepath: str, group: str, test: bool = False, metadata: dict[str, Any] | None = None):
        from lstm_lab.data.m4 import m4_group

        m4_group(group)  # an unknown group fails when the catalog is built
        self._path, self._group, self._test = Path(filepath), group, bool(test)
        self.metadata = metadata

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._path), "group": self._group, "test": self._test}

    def load(self) -> pd.DataFrame:
        from lstm_lab.data.m4 import read_m4_test, read_m4_wide

        if not self._path.is_file():
            raise UnusableFileError(f"{self._path}: M4 file not found; expected the {self._group} "
                               f"{'test' if self._test else 'train'} file (--params=m4_dir=<folder with "
                               f"{self._group}-{'test' if self._test else 'train'}.csv>)")
        try:
            frame = read_m4_test(self._path, self._group) if self._test else read_m4_wide(self._path, self._group)
        except LstmLabError as exc:
            raise UnusableFileError(str(exc)) from None
        frame.attrs = {}  # parquet and Kedro's copies need plain frames
        return frame

    def save(self, data: Any) -> None:
        raise DatasetError("M4Dataset is read-only")

    def _exists(self) -> bool:
        return self._path.is_file()


class M4SubmissionDataset(AbstractDataset):
    """``folder``/``<group>_{forecasts,lo95,hi95}.csv`` from a forecast table with columns id, step, median,
    lo95, hi95 (``forecast_future``)."""

    def __init__(self, folder: str, group: str, metadata: dict[str, Any] | None = None):
        from lstm_lab.data.m4 import m4_group

        self._folder, self._group, self._horizon = Path(folder), group, m4_group(group).horizon
        self.metadata = metadata

    def _describe(self) -> dict[str, Any]:
        return {"folder": str(self._folder), "group": self._group}

    def paths(self) -> dict[str, Path]:
        return {name: self._folder / f"{self._group}_{name}.csv" for name in SUBMISSION_FILES}

    def save(self, data: pd.DataFrame) -> None:
        from lstm_lab.data.m4 import m4_long_to_wide

        missing = [c for c in ("id", "step", *SUBMISSION_FILES.values()) if c not in data.columns]
        if missing:
            raise UnusableFileError(f"M4 submission: the forecast table lacks column(s) {missing}; it needs a 95 % "
                               f"interval (forecast.output.intervals with 0.95) and a median")
        for name, path in self.paths().items():
            column = SUBMISSION_FILES[name]
            try:
                wide = m4_long_to_wide(data.rename(columns={"step": "t"}), self._horizon, value=column)
            except LstmLabError as exc:
                raise UnusableFileError(f"M4 submission {path.name}: {exc}") from None
            target = staging.output_path(path)
            target.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(target) as tmp:
                wide.to_csv(tmp, index=False)

    def load(self) -> pd.DataFrame:
        parts = []
        for name, path in self.paths().items():
            readable = staging.readable_path(path)
            if not readable.is_file():
                raise DatasetError(f"{readable}: file not found")
            wide = pd.read_csv(readable)
            long = wide.melt(id_vars="id", var_name="step", value_name=SUBMISSION_FILES[name])
            long["step"] = long["step"].str[1:].astype(np.int64)
            parts.append(long.set_index(["id", "step"]))
            order = pd.unique(wide["id"])
        table = pd.concat(parts, axis=1).reset_index()
        position = table["id"].map({key: k for k, key in enumerate(order)})
        return table.assign(_row=position).sort_values(["_row", "step"], kind="stable").drop(columns="_row") \
            .reset_index(drop=True)

    def _exists(self) -> bool:
        return all(staging.readable_path(p).is_file() for p in self.paths().values())
