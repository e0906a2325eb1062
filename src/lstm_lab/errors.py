"""The one exception type users see.

Anything raised as ``LstmLabError`` is a problem with the user's input (a file, a column, a parameter): the
CLI prints its message as a single line and exits non-zero, without a traceback. Everything else is a bug and
keeps its traceback.
"""

from __future__ import annotations

import ast
import re


class LstmLabError(ValueError):
    """Bad input: the message names the file, field or value and what was expected."""


def one_line(exc: BaseException) -> str:
    """The message as the single line the command-line tools print after ``Error:``."""
    text = " ".join(part.strip() for part in str(exc).splitlines() if part.strip())
    return text or type(exc).__name__


# --------------------------------------------------------------------------------------------------------------
# Kedro's dataset errors, shortened
# --------------------------------------------------------------------------------------------------------------
# Kedro wraps every load/save failure as "Failed while loading data from dataset <repr>.\n<cause>", where <repr>
# is the dataset's whole constructor call (module path, filepath=PurePosixPath('...'), load_args={},
# save_args=..., protocol=...): a line of noise around the two things a user needs, the file and the cause.
_DATASET_REPR = re.compile(r"(?<![\w.])(?:[A-Za-z_]\w*\.)*([A-Za-z_]\w*Dataset)\(")
_FILEPATH = re.compile(r"\bfilepath=(?:Pure(?:Posix|Windows)Path\(|(?:Posix|Windows)?Path\()?")
_BOILERPLATE = {
    "Failed while loading data from dataset ": "",
    "Failed while saving data to dataset ": "could not save: ",
}
_ERRNO = re.compile(r"^\[Errno \d+\] ")


def _closing_paren(text: str, start: int) -> int | None:
    """Index just past the ``)`` matching the ``(`` before ``start``, skipping quoted strings; None if
    unbalanced (a cut-off message: then it is left as it is)."""
    depth, i, quote = 1, start, None
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return None


def _string_literal(text: str, start: int) -> str | None:
    """The Python string literal at ``start`` (as repr writes it), unescaped; None if there is none."""
    if start >= len(text) or text[start] not in "'\"":
        return None
    quote, i = text[start], start + 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == quote:
            try:
                value = ast.literal_eval(text[start : i + 1])
            except (ValueError, SyntaxError):
                return None
            return value if isinstance(value, str) else None
        i += 1
    return None


def _clean_cause(cause: str, path: str | None) -> str:
    """``[Errno 2] No such file or directory: '/x.csv'`` after the path ``/x.csv`` → ``No such file or
    directory``; a cause that is only the path again (pyarrow's FileNotFoundError) → ``file not found``."""
    stripped = cause.strip()
    if path is not None and stripped in (path, repr(path)):
        return "file not found"
    stripped = _ERRNO.sub("", stripped)
    if path is not None:
        for tail in (f": {path!r}", f": {path}"):
            if stripped.endswith(tail):
                stripped = stripped[: -len(tail)]
                break
    return stripped


def shorten_dataset_error(text: str) -> str:
    """Kedro's dataset error with each dataset repr replaced by its file (or, without one, its class name)
    and the "Failed while loading data from dataset ..." boilerplate dropped; the cause is kept.

    ``Failed while loading data from dataset kedro_datasets.pandas.csv_dataset.CSVDataset(filepath=
    PurePosixPath('/p/data/01_raw/x.csv'), protocol='file', load_args={}, save_args={'index': False}).
    [Errno 2] No such file or directory: '/p/data/01_raw/x.csv'`` →
    ``/p/data/01_raw/x.csv: No such file or directory``. Works on the raw message and on its one-line form;
    text around it (``forecast_raw: ``) is kept. Anything it does not recognise is returned unchanged.
    """
    out: list[str] = []
    pos = 0
    while (match := _DATASET_REPR.search(text, pos)) is not None:
        end = _closing_paren(text, match.end())
        if end is None:
            break
        body = text[match.end() : end - 1]
        path = None
        if (found := _FILEPATH.search(body)) is not None:
            path = _string_literal(body, found.end())
        label = path if path is not None else match.group(1)
        before = text[pos : match.start()]
        prefix = next((p for p in _BOILERPLATE if before.endswith(p)), None)
        if prefix is None:
            out.append(before + label)
            pos = end
            continue
        # "Failed while ... dataset <repr>.<newline or space><cause>" → "<label>: <cause>"
        out.append(before[: -len(prefix)] + f"{label}: {_BOILERPLATE[prefix]}")
        cause_start = end + 1 if text.startswith(".", end) else end
        while cause_start < len(text) and text[cause_start] in " \t\r\n":
            cause_start += 1
        cause_end = text.find("\n", cause_start)
        cause_end = len(text) if cause_end == -1 else cause_end
        out.append(_clean_cause(text[cause_start:cause_end], path) or "(no detail given)")
        pos = cause_end
    out.append(text[pos:])
    return "".join(out)
