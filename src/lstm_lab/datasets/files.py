"""File datasets: thin Kedro adapters over ``lstm_lab.io`` and ``lstm_lab.checkpoints``.

Every output a pipeline writes is written atomically (``lstm_lab.io.atomic_path``: a temporary file in the same
folder, fsynced, then ``os.replace``). A run that dies half-way never leaves a truncated file, and the previous
good file stays in place until the new one is complete. Checkpoints are read without running code stored in
them (``lstm_lab.checkpoints``). The file logic lives in those plain modules so that code outside Kedro (the
``lstm_lab.data`` helpers, serving, ``lstm-lab-train``) shares it without importing Kedro.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
from kedro.io import AbstractDataset, DatasetError

from lstm_lab import staging
from lstm_lab.checkpoints import load_checkpoint_file, save_checkpoint
from lstm_lab.errors import LstmLabError
from lstm_lab.io import atomic_path, write_text


class UnusableFileError(LstmLabError, DatasetError):
    """A dataset's file that cannot be used (missing, refused): one line for the user.

    Also a ``DatasetError`` because Kedro passes those on unchanged, where it would wrap any other exception in
    a two-line "Failed while loading data from dataset ..." message."""


class _FileDataset(AbstractDataset):
    """One file. During a staged ``kedro run`` (``lstm_lab.staging``) saves go to the run's staged copy and
    loads read it, so the target changes only when the whole run succeeds."""

    def __init__(self, filepath: str, metadata: dict[str, Any] | None = None):
        self._target = Path(filepath)
        self.metadata = metadata

    @property
    def filepath(self) -> Path:
        return self._target

    @property
    def _filepath(self) -> Path:
        """Where the current content is (this run's staged copy, if it saved one)."""
        return staging.readable_path(self._target)

    @property
    def _output(self) -> Path:
        """Where a save writes (atomically)."""
        return staging.output_path(self._target)

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._target)}

    def _exists(self) -> bool:
        return self._filepath.is_file()

    def _require(self) -> None:
        if not self._filepath.is_file():
            raise DatasetError(f"{self._filepath}: file not found")


class AtomicJSONDataset(_FileDataset):
    """JSON with sorted keys and a trailing newline (stable bytes for DVC and git diffs)."""

    def load(self) -> Any:
        self._require()
        return json.loads(self._filepath.read_text(encoding="utf-8"))

    def save(self, data: Any) -> None:
        write_text(self._output, json.dumps(data, indent=2, sort_keys=True) + "\n")


class AtomicYAMLDataset(_FileDataset):
    """YAML in block style, keys in the order given: a parameters file a user can copy into conf/."""

    def load(self) -> Any:
        import yaml

        self._require()
        return yaml.safe_load(self._filepath.read_text(encoding="utf-8"))

    def save(self, data: Any) -> None:
        import yaml

        write_text(self._output, yaml.safe_dump(data, sort_keys=False, default_flow_style=None))


class TorchCheckpointDataset(_FileDataset):
    """A Lightning checkpoint dict (``state_dict``, ``hyper_parameters``, ...) saved with ``torch.save``.

    Loaded with ``weights_only=True``: a file holding anything but tensors and plain values is refused with one
    line, its content never executed (see ``lstm_lab.checkpoints``)."""

    def load(self) -> dict[str, Any]:
        try:
            return load_checkpoint_file(self._filepath)
        except LstmLabError as exc:
            raise UnusableFileError(str(exc)) from None

    def save(self, data: dict[str, Any]) -> None:
        save_checkpoint(self._output, data)


class AtomicCSVDataset(_FileDataset):
    """A small table (history, predictions) written as CSV without the index."""

    def load(self) -> pd.DataFrame:
        self._require()
        return pd.read_csv(self._filepath)

    def save(self, data: pd.DataFrame) -> None:
        with atomic_path(self._output) as tmp:
            data.to_csv(tmp, index=False)


class AtomicParquetDataset(_FileDataset):
    """A table as one Parquet file, written atomically: the drop-in for ``pandas.ParquetDataset`` outputs.

    With default arguments the bytes are those of kedro-datasets' ``pandas.ParquetDataset`` (both are pandas'
    ``DataFrame.to_parquet`` defaults); ``save_args`` / ``load_args`` go to ``to_parquet`` / ``read_parquet``.
    """

    def __init__(
        self,
        filepath: str,
        save_args: dict[str, Any] | None = None,
        load_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ):
        super().__init__(filepath, metadata)
        self._save_args = dict(save_args or {})
        self._load_args = dict(load_args or {})
        if "partition_cols" in self._save_args:  # a folder of files cannot be replaced in one step
            raise DatasetError(f"{self._target}: AtomicParquetDataset writes one file; 'partition_cols' in "
                               "save_args is not supported")

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._target), "save_args": self._save_args, "load_args": self._load_args}

    def load(self) -> pd.DataFrame:
        self._require()
        return pd.read_parquet(self._filepath, **self._load_args)

    def save(self, data: pd.DataFrame) -> None:
        with atomic_path(self._output) as tmp:
            data.to_parquet(tmp, **self._save_args)


class FigureDataset(_FileDataset):
    """A matplotlib figure saved as PNG (fixed metadata so identical plots give identical bytes)."""

    def load(self):
        raise DatasetError(f"{self._filepath}: figures are write-only")

    def save(self, figure) -> None:
        import matplotlib.pyplot as plt

        with atomic_path(self._output) as tmp:
            figure.savefig(tmp, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
        plt.close(figure)


class StatsmodelsDataset(AbstractDataset):
    """A real series that ships inside statsmodels, so a fresh machine runs the forecast pipeline offline.

    ``co2`` is the weekly Mauna Loa atmospheric CO2 record (March 1958 – December 2001, 2,284 weeks, 59
    missing weeks). The frame has a ``date`` column and the dataset's value column(s).
    """

    _KNOWN = ("co2", "elnino", "sunspots", "macrodata")

    def __init__(self, dataset: str = "co2", metadata: dict[str, Any] | None = None):
        if dataset not in self._KNOWN:
            raise LstmLabError(f"StatsmodelsDataset: dataset {dataset!r} unknown; expected one of {self._KNOWN}")
        self._dataset = dataset
        self.metadata = metadata

    def _describe(self) -> dict[str, Any]:
        return {"dataset": f"statsmodels.datasets.{self._dataset}"}

    def load(self) -> pd.DataFrame:
        import importlib

        module = importlib.import_module(f"statsmodels.datasets.{self._dataset}")
        frame = module.load_pandas().data
        if isinstance(frame.index, pd.DatetimeIndex):
            frame = frame.rename_axis("date").reset_index()
        return frame

    def save(self, data: Any) -> None:
        raise DatasetError("StatsmodelsDataset is read-only")

    def _exists(self) -> bool:
        return True


# ------------------------------------------------------------------------------------------------ textgen
class TextFileDataset(_FileDataset):
    """A text file read and written whole (atomically): generated samples, markdown reports."""

    def __init__(self, filepath: str, encoding: str = "utf-8", metadata: dict[str, Any] | None = None):
        super().__init__(filepath, metadata)
        self._encoding = encoding

    def load(self) -> str:
        self._require()
        return self._filepath.read_text(encoding=self._encoding)

    def save(self, data: str) -> None:
        write_text(self._output, data, encoding=self._encoding)


class TextSource:
    """Where a corpus lives (it may not exist yet): ``path``, ``encoding`` and ``read()``."""

    def __init__(self, path: Path, encoding: str = "utf-8"):
        self.path, self.encoding = Path(path), encoding

    def exists(self) -> bool:
        return self.path.is_file()

    def read(self) -> str:
        try:
            return self.path.read_text(encoding=self.encoding)
        except UnicodeDecodeError as exc:
            raise LstmLabError(f"{self.path}: not valid {self.encoding} text ({exc.reason} at byte {exc.start})") from None

    def __repr__(self) -> str:
        return f"TextSource({str(self.path)!r})"


class TextCorpusDataset(_FileDataset):
    """A plain-text corpus, loaded as a :class:`TextSource` rather than its text: the node that reads it can
    first download it when the pipeline's parameters ask for that (``lstm_lab.data.download.fetch``), and
    otherwise say where the missing file belongs. Read-only."""

    def __init__(self, filepath: str, encoding: str = "utf-8", metadata: dict[str, Any] | None = None):
        super().__init__(filepath, metadata)
        self._encoding = encoding

    def load(self) -> TextSource:
        return TextSource(self._filepath, self._encoding)

    def save(self, data: Any) -> None:
        raise DatasetError(f"{self._filepath}: TextCorpusDataset is read-only")


class NumpyArrayDataset(_FileDataset):
    """One numpy array as ``.npy`` (no pickle), written atomically: e.g. an encoded corpus (uint8/uint16)."""

    def load(self):
        import numpy as np

        self._require()
        return np.load(self._filepath, allow_pickle=False)

    def save(self, data) -> None:
        import numpy as np

        with atomic_path(self._output) as tmp, open(tmp, "wb") as handle:
            np.save(handle, np.asarray(data), allow_pickle=False)
