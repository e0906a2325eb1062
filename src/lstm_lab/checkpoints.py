"""Model checkpoint files: written atomically with stable bytes, read without running any code in them.

A checkpoint is a dict of tensors and plain values (``state_dict``, ``hyper_parameters``, optimiser and loop
state). ``torch.save`` stores it as a pickle, and an ordinary ``torch.load`` runs whatever the pickle asks for:
a ``.ckpt`` found on the internet, in an MLflow artifact store or in a shared folder could delete files or
open a shell. ``load_checkpoint_file`` therefore loads with ``weights_only=True`` (torch's restricted
unpickler: tensors, containers, numbers, strings) and turns a refusal into one ``LstmLabError`` line: the
payload is never executed, and the user sees which file was refused instead of a traceback.

torch is imported inside the functions: importing this module stays cheap for code that only names it.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

from lstm_lab.errors import LstmLabError
from lstm_lab.io import write_bytes

__all__ = ["load_checkpoint_file", "save_checkpoint"]

# torch names the global it refused ("Unsupported global: GLOBAL pathlib.Path.touch ..."): worth showing.
_REFUSED_GLOBAL = re.compile(r"GLOBAL ([A-Za-z_][\w.]*)")


def save_checkpoint(path: str | Path, checkpoint: dict[str, Any]) -> None:
    """``checkpoint`` saved with ``torch.save`` at ``path``, atomically.

    Serialised into memory first: torch names the zip archive's top folder after the file it writes to, so
    writing to a temporary file would make the bytes depend on a random name (and DVC hashes with them).
    """
    import torch

    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    write_bytes(path, buffer.getvalue())


def load_checkpoint_file(path: str | Path) -> dict[str, Any]:
    """The checkpoint dict in ``path``, tensors on the CPU; never executes code stored in the file.

    A missing file, or one that is not a plain checkpoint (it refers to Python objects other than tensors and
    plain values, or is no torch file at all), is one ``LstmLabError`` line naming the file.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise LstmLabError(f"{path}: checkpoint file not found")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except OSError as exc:  # unreadable (permissions, I/O error): a different problem from a bad file
        raise LstmLabError(f"{path}: cannot read the checkpoint file ({exc.strerror or exc})") from None
    except Exception as exc:  # noqa: BLE001
        # With weights_only nothing in the file has run, so whatever failed (a refused global, a file that is
        # not a zip or pickle, a truncated archive) says the same thing: this is no checkpoint we can use.
        refused = _REFUSED_GLOBAL.search(str(exc))
        detail = f" (first disallowed global: {refused.group(1)})" if refused else ""
        raise LstmLabError(
            f"{path}: not a plain model checkpoint (it holds Python objects other than tensors and plain values, "
            f"or is not a torch file); refusing to load it{detail}"
        ) from None
    if not isinstance(checkpoint, dict):
        raise LstmLabError(f"{path}: holds a {type(checkpoint).__name__}, expected a checkpoint dict")
    return checkpoint
