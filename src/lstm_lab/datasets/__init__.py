"""Kedro datasets of the project, declared in conf/*/catalog*.yml as ``lstm_lab.datasets.<Name>``.

- ``files``: atomic JSON / YAML / CSV / Parquet / text / numpy / figure outputs, model checkpoints loaded
  without running code, the statsmodels series behind the default run, text corpora.
- ``labelled``: labelled text files (TSV, CSV, Parquet) for the sentiment pipeline.
- ``m4``: M4 competition files (wide train/test in, submission files out) and ``NotGivenDataset`` (an optional
  input nobody gave: loads None).

``atomic_path``, ``write_json`` and ``read_json`` are re-exported from ``lstm_lab.io`` for existing imports.
"""

from lstm_lab.datasets.files import (
    AtomicCSVDataset,
    AtomicJSONDataset,
    AtomicParquetDataset,
    AtomicYAMLDataset,
    FigureDataset,
    NumpyArrayDataset,
    StatsmodelsDataset,
    TextCorpusDataset,
    TextFileDataset,
    TextSource,
    TorchCheckpointDataset,
    UnusableFileError,
)
from lstm_lab.datasets.labelled import LabelledText, LabelledTextDataset
from lstm_lab.datasets.m4 import M4Dataset, M4SubmissionDataset, NotGivenDataset
from lstm_lab.io import atomic_path, read_json, write_json

__all__ = [
    "AtomicCSVDataset",
    "AtomicJSONDataset",
    "AtomicParquetDataset",
    "AtomicYAMLDataset",
    "FigureDataset",
    "LabelledText",
    "LabelledTextDataset",
    "M4Dataset",
    "M4SubmissionDataset",
    "NotGivenDataset",
    "NumpyArrayDataset",
    "StatsmodelsDataset",
    "TextCorpusDataset",
    "TextFileDataset",
    "TextSource",
    "TorchCheckpointDataset",
    "UnusableFileError",
    "atomic_path",
    "read_json",
    "write_json",
]
