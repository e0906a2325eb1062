"""Labelled text files for the sentiment pipeline: TSV / CSV / Parquet, one or more per split, lazily read.

Every problem with a file is one line naming the file, the line and what was expected.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from kedro.io import AbstractDataset, DatasetError

from lstm_lab.errors import LstmLabError


class LabelledTextDataset(AbstractDataset):
    """Labelled text files (TSV, CSV or Parquet), one or more per split, read with clear one-line errors.

    ``load()`` returns a :class:`LabelledText`: a read-only mapping ``{role: DataFrame}`` for the roles named in
    ``files`` (``train``, ``val``, ``test``, or ``all`` for one corpus the pipeline splits itself), each file
    read when first asked for. Each frame has the file's columns as strings (Parquet keeps its dtypes) plus
    ``__source__`` (the file) and ``__line__`` (1-based line in a text file, row number in a Parquet file), so
    that later checks can name the offending line.

    - ``files``: ``{role: path or [paths]}``; ``filepath: one.csv`` is short for ``files: {all: one.csv}``.
    - ``classes``: ``{label: path or [paths]}`` instead, for corpora with one plain-text file per class and one
      text per line (Pang & Lee's ``rt-polarity.pos`` / ``.neg``): every non-blank line becomes a row of the
      ``all`` role whose label is the key (``sentiment.data.labels`` maps it, e.g. ``{neg: 0, pos: 1}``).
      The columns are named by ``columns`` (default ``[sentence, label]``).
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
        classes: dict[str, str | list[str]] | None = None,
        format: str = "auto",  # noqa: A002 - the catalog key users write
        header: bool = True,
        columns: list[str] | None = None,
        encoding: str = "utf-8",
        download: dict[str, Any] | list[dict[str, Any]] | None = None,
        metadata: dict[str, Any] | None = None,
    ):
        if sum(x is not None for x in (files, filepath, classes)) != 1:
            raise DatasetError("LabelledTextDataset: give exactly one of 'files' ({role: path}), 'filepath' or "
                               "'classes' ({label: path})")
        self._classes: dict[Path, str] = {}  # file → its label, for one-file-per-class corpora
        if classes is not None:
            if not isinstance(classes, dict) or len(classes) < 2:
                raise DatasetError(f"LabelledTextDataset: 'classes' must map at least two labels to files, got "
                                   f"{classes!r}")
            self._classes = {Path(p): str(label) for label, paths in classes.items()
                             for p in (paths if isinstance(paths, (list, tuple)) else [paths])}
            files = {"all": list(map(str, self._classes))}
            header, columns = False, columns or ["sentence", "label"]
            if len(columns) != 2:
                raise DatasetError(f"LabelledTextDataset: with 'classes', 'columns' names the text and the label "
                                   f"column, got {columns}")
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
        if path in self._classes:
            return self._read_class_file(path)
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

    def _read_class_file(self, path: Path) -> pd.DataFrame:
        """One text per non-blank line, every row labelled with the file's class."""
        lines = [(number, line.rstrip("\r")) for number, line in enumerate(self._decode(path).split("\n"), start=1)
                 if line.strip()]
        if not lines:
            raise DatasetError(f"{path}: no data rows")
        text, label = self._columns
        frame = pd.DataFrame({text: [line for _, line in lines], label: self._classes[path]})
        frame["__source__"] = str(path)
        frame["__line__"] = [number for number, _ in lines]
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
