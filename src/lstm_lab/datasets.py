"""Kedro datasets of the project, declared in conf/*/catalog.yml.

Outputs that a user keeps (model checkpoints, metrics, scalers) are written atomically: to a temporary file in
the same folder, then ``os.replace``. A run that dies half-way never leaves a truncated file, and the previous
good file stays in place until the new one is complete.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
from kedro.io import AbstractDataset, DatasetError

from lstm_lab.errors import LstmLabError


@contextmanager
def atomic_path(target: Path):
    """Yield a temporary path beside ``target``; move it over ``target`` only if the block succeeds."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json(path: str | Path, data: Any) -> None:
    """``data`` as UTF-8 JSON (non-ASCII kept, one-space indent, trailing newline), written atomically."""
    with atomic_path(Path(path)) as tmp:
        tmp.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def read_json(path: str | Path, what: str = "JSON") -> Any:
    """The JSON in ``path``; a missing file or text that is not JSON is one ``LstmLabError`` line naming it."""
    path = Path(path)
    if not path.is_file():
        raise LstmLabError(f"{path}: {what} file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise LstmLabError(f"{path}: not valid JSON ({exc})") from None


class _FileDataset(AbstractDataset):
    def __init__(self, filepath: str, metadata: dict[str, Any] | None = None):
        self._filepath = Path(filepath)
        self.metadata = metadata

    @property
    def filepath(self) -> Path:
        return self._filepath

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}

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
        with atomic_path(self._filepath) as tmp:
            tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


class AtomicYAMLDataset(_FileDataset):
    """YAML in block style, keys in the order given: a parameters file a user can copy into conf/."""

    def load(self) -> Any:
        import yaml

        self._require()
        return yaml.safe_load(self._filepath.read_text(encoding="utf-8"))

    def save(self, data: Any) -> None:
        import yaml

        with atomic_path(self._filepath) as tmp:
            tmp.write_text(yaml.safe_dump(data, sort_keys=False, default_flow_style=None), encoding="utf-8")


class TorchCheckpointDataset(_FileDataset):
    """A Lightning checkpoint dict (``state_dict``, ``hyper_parameters``, ...) saved with ``torch.save``."""

    def load(self) -> dict[str, Any]:
        import torch

        self._require()
        return torch.load(self._filepath, map_location="cpu", weights_only=False)

    def save(self, data: dict[str, Any]) -> None:
        import torch

        buffer = io.BytesIO()  # torch names the archive after the file: a buffer keeps the bytes name-independent
        torch.save(data, buffer)
        with atomic_path(self._filepath) as tmp:
            tmp.write_bytes(buffer.getvalue())


class AtomicCSVDataset(_FileDataset):
    """A small table (history, predictions) written as CSV without the index."""

    def load(self) -> pd.DataFrame:
        self._require()
        return pd.read_csv(self._filepath)

    def save(self, data: pd.DataFrame) -> None:
        with atomic_path(self._filepath) as tmp:
            data.to_csv(tmp, index=False)


class FigureDataset(_FileDataset):
    """A matplotlib figure saved as PNG (fixed metadata so identical plots give identical bytes)."""

    def load(self):
        raise DatasetError(f"{self._filepath}: figures are write-only")

    def save(self, figure) -> None:
        import matplotlib.pyplot as plt

        with atomic_path(self._filepath) as tmp:
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
        with atomic_path(self._filepath) as tmp:
            tmp.write_text(data, encoding=self._encoding)


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

        with atomic_path(self._filepath) as tmp, open(tmp, "wb") as handle:
            np.save(handle, np.asarray(data), allow_pickle=False)


# ---------------------------------------------------------------------------------------------------------------
# Labelled text (sentiment pipeline)
# ---------------------------------------------------------------------------------------------------------------
class LabelledTextDataset(AbstractDataset):
    """Labelled text files (TSV, CSV or Parquet), one or more per split, read with clear one-line errors.

    ``load()`` returns a :class:`LabelledText`: a read-only mapping ``{role: DataFrame}`` for the roles named in
    ``files`` (``train``, ``val``, ``test``, or ``all`` for one corpus the pipeline splits itself), each file
    read when first asked for. Each frame has the file's columns as strings (Parquet keeps its dtypes) plus
    ``__source__`` (the file) and ``__line__`` (1-based line in a text file, row number in a Parquet file), so
    that later checks can name the offending line.

    - ``files``: ``{role: path or [paths]}``; ``filepath: one.csv`` is short for ``files: {all: one.csv}``.
    - ``format``: ``auto`` (by suffix: .tsv/.txt → tsv, .csv → csv, .parquet/.pq → parquet) | tsv | csv | parquet.
      TSV has no quoting (SST-2, UCI): a line splits on tabs into exactly as many fields as there are columns.
    - ``header``: true (first line names the columns) | false (``columns`` names them, e.g. [sentence, label]).
    - ``encoding``: utf-8 by default (a leading BOM is dropped); bytes that do not decode are an error naming
      the line, never silently replaced.
    - ``download``: a mapping or list of mappings ``{url, checksum, to, extract}`` (see
      ``lstm_lab.data.download``) saying where missing files come from. Loading never downloads: the node
      that reads the files calls :meth:`LabelledText.download` only when the pipeline's parameters ask for
      it (``sentiment.data.download: true``), so no run touches the network unless the user said so.
    """

    ROLES = ("train", "val", "test", "all")
    _SUFFIXES = {".tsv": "tsv", ".txt": "tsv", ".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}

    def __init__(
        self,
        files: dict[str, str | list[str]] | None = None,
        filepath: str | None = None,
        format: str = "auto",  # noqa: A002 - the catalog key users write
        header: bool = True,
        columns: list[str] | None = None,
        encoding: str = "utf-8",
        download: dict[str, Any] | list[dict[str, Any]] | None = None,
        metadata: dict[str, Any] | None = None,
    ):
        if (files is None) == (filepath is None):
            raise DatasetError("LabelledTextDataset: give exactly one of 'files' ({role: path}) or 'filepath'")
        files = {"all": filepath} if filepath is not None else files
        if not isinstance(files, dict) or not files:
            raise DatasetError(f"LabelledTextDataset: 'files' must map roles {self.ROLES} to paths, got {files!r}")
        unknown = sorted(set(files) - set(self.ROLES))
        if unknown:
            raise DatasetError(f"LabelledTextDataset: unknown role(s) {unknown} in 'files'; expected {self.ROLES}")
        if "all" in files and len(files) > 1:
            raise DatasetError("LabelledTextDataset: 'all' (one corpus to split) cannot be combined with other roles")
        self._files = {
            role: [Path(p) for p in (paths if isinstance(paths, (list, tuple)) else [paths])]
            for role, paths in files.items()
        }
        if format not in ("auto", "tsv", "csv", "parquet"):
            raise DatasetError(f"LabelledTextDataset: format {format!r}; expected auto, tsv, csv or parquet")
        if not header and not columns:
            raise DatasetError("LabelledTextDataset: header: false needs 'columns' (e.g. [sentence, label])")
        if header and columns:
            raise DatasetError("LabelledTextDataset: 'columns' names the columns of files without a header line; "
                               "with header: true the first line names them")
        self._format, self._header, self._columns, self._encoding = format, header, columns, encoding
        if download is not None:
            from lstm_lab.data.download import Source

            items = download if isinstance(download, list) else [download]
            self._download = [Source.from_dict(d, where=f"download[{i}]") for i, d in enumerate(items)]
        else:
            self._download = []
        self.metadata = metadata

    # -------------------------------------------------------------------------------------------- kedro API
    def _describe(self) -> dict[str, Any]:
        return {"files": {r: [str(p) for p in ps] for r, ps in self._files.items()}, "format": self._format}

    def _paths(self) -> list[Path]:
        return [p for paths in self._files.values() for p in paths]

    def _exists(self) -> bool:
        return all(p.is_file() for p in self._paths())

    def save(self, data: Any) -> None:
        raise DatasetError("LabelledTextDataset is read-only")

    def load(self) -> LabelledText:
        return LabelledText(self)

    # -------------------------------------------------------------------------------------------- reading
    def _kind(self, path: Path) -> str:
        if self._format != "auto":
            return self._format
        kind = self._SUFFIXES.get(path.suffix.lower())
        if kind is None:
            raise DatasetError(f"{path}: cannot tell the format from the suffix {path.suffix!r}; set format: "
                               "tsv, csv or parquet in the catalog entry")
        return kind

    def _read(self, path: Path) -> pd.DataFrame:
        kind = self._kind(path)
        if kind == "parquet":
            try:
                frame = pd.read_parquet(path)
            except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
                raise DatasetError(f"{path}: not a readable Parquet file ({type(exc).__name__}: {exc})") from None
            if not self._header and self._columns:
                if len(self._columns) != frame.shape[1]:
                    raise DatasetError(f"{path}: has {frame.shape[1]} columns, 'columns' names {len(self._columns)}")
                frame.columns = list(self._columns)
            lines = list(range(1, len(frame) + 1))
        else:
            rows, lines = self._read_text(path, kind)
            if self._header:
                if not rows:
                    raise DatasetError(f"{path}: empty file (expected a header line)")
                names, rows, lines = rows[0], rows[1:], lines[1:]
            else:
                names = list(self._columns)
            frame = pd.DataFrame(rows, columns=names)
        if frame.empty:
            raise DatasetError(f"{path}: no data rows")
        frame = frame.reset_index(drop=True)
        frame["__source__"] = str(path)
        frame["__line__"] = lines
        return frame

    def _decode(self, path: Path) -> str:
        raw = path.read_bytes()
        try:
            text = raw.decode(self._encoding)
        except UnicodeDecodeError as exc:
            line = raw.count(b"\n", 0, exc.start) + 1
            column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
            raise DatasetError(
                f"{path}: line {line}, byte {column}: {raw[exc.start:exc.start + 1]!r} is not valid "
                f"{self._encoding} ({exc.reason}); save the file as UTF-8 or set encoding: in the catalog entry"
            ) from None
        except LookupError:
            raise DatasetError(f"{path}: unknown encoding {self._encoding!r}") from None
        return text[1:] if text.startswith("\ufeff") else text

    def _read_text(self, path: Path, kind: str) -> tuple[list[list[str]], list[int]]:
        import csv

        text = self._decode(path)
        rows: list[list[str]] = []
        lines: list[int] = []
        width = len(self._columns) if self._columns else None  # else the first (header) line's width
        expected = lambda: ", ".join(self._columns or (rows[0] if rows else []))  # noqa: E731
        if kind == "tsv":
            for number, line in enumerate(text.split("\n"), start=1):
                line = line.rstrip("\r")
                if not line.strip():
                    continue  # blank lines (a trailing newline) carry no row
                fields = line.split("\t")
                if width is None:
                    width = len(fields)
                if len(fields) != width:
                    raise DatasetError(
                        f"{path}: line {number}: {len(fields)} tab-separated field(s), expected {width} ({expected()})"
                    )
                rows.append(fields)
                lines.append(number)
            return rows, lines
        reader = csv.reader(io.StringIO(text, newline=""))
        try:
            for fields in reader:
                if not fields or not any(f.strip() for f in fields):
                    continue
                if width is None:
                    width = len(fields)
                if len(fields) != width:
                    raise DatasetError(f"{path}: line {reader.line_num}: {len(fields)} comma-separated field(s), "
                                       f"expected {width} ({expected()})")
                rows.append(fields)
                lines.append(reader.line_num)
        except csv.Error as exc:
            raise DatasetError(f"{path}: line {reader.line_num}: {exc}") from None
        return rows, lines


class LabelledText(Mapping):
    """What :class:`LabelledTextDataset` loads: ``{role: DataFrame}``, each file read on first access.

    Lazy so that the reading node sees which files are missing and whether they may be downloaded before
    anything is read; ``download()`` fetches them (checksummed, atomic; offline, the error says where to put
    them by hand)."""

    def __init__(self, dataset: LabelledTextDataset):
        self._dataset = dataset
        self._frames: dict[str, pd.DataFrame] = {}

    def __getitem__(self, role: str) -> pd.DataFrame:
        if role not in self._frames:
            paths = self._dataset._files[role]  # KeyError for an unknown role, as a dict would
            missing = [p for p in paths if not p.is_file()]
            if missing:
                raise LstmLabError(f"{missing[0]}: file not found")
            frames = [self._dataset._read(path) for path in paths]
            self._frames[role] = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
        return self._frames[role]

    def __iter__(self):
        return iter(self._dataset._files)

    def __len__(self) -> int:
        return len(self._dataset._files)

    def missing(self) -> list[Path]:
        return [p for p in self._dataset._paths() if not p.is_file()]

    @property
    def sources(self) -> list[str]:
        """The URLs the catalog entry's ``download`` names (empty: nothing to download from)."""
        return [source.url for source in self._dataset._download]

    def download(self) -> None:
        """Fetch what is missing from the catalog entry's ``download`` sources; an error if they don't cover it."""
        from lstm_lab.data.download import ensure

        ensure(self._dataset._download)
        missing = self.missing()
        if missing:
            raise LstmLabError(f"{missing[0]}: still missing after downloading {', '.join(self.sources)}; the "
                               "catalog entry's download.extract (or download.to) must produce every file it reads")
