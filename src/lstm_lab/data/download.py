"""Checksummed download of a public corpus the user asked for.

``fetch(url, sha256, dest)`` is the only code in the project that opens a network connection, and only when a
pipeline's parameters say ``download: true`` and the file is not already cached. The bytes go to a temporary
file beside ``dest``, are hashed while they stream, and replace ``dest`` only when the SHA-256 matches: a failed
or interrupted download never leaves a partial file where a cached one is expected. Offline, or on a checksum
mismatch, it raises ``LstmLabError`` naming the URL and where to put the file by hand.
"""

from __future__ import annotations

import hashlib
import logging
import urllib.error
import urllib.request
from pathlib import Path

from lstm_lab.datasets import atomic_path
from lstm_lab.errors import LstmLabError

log = logging.getLogger(__name__)

CHUNK = 1 << 20


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(url: str, sha256: str, dest: str | Path, *, timeout: float = 60.0) -> Path:
    """``dest`` holding the bytes of ``url`` whose SHA-256 is ``sha256``; downloads only if not cached."""
    dest = Path(dest)
    expected = sha256.lower()
    if dest.is_file():
        if sha256_of(dest) == expected:
            log.info("%s: cached, checksum ok", dest)
            return dest
        raise LstmLabError(
            f"{dest}: exists but its sha256 is not {expected} (delete it to download again from {url})"
        )
    log.info("downloading %s -> %s", url, dest)
    digest = hashlib.sha256()
    try:
        with atomic_path(dest) as tmp, urllib.request.urlopen(url, timeout=timeout) as response:
            with open(tmp, "wb") as out:
                for block in iter(lambda: response.read(CHUNK), b""):
                    digest.update(block)
                    out.write(block)
            if digest.hexdigest() != expected:
                raise LstmLabError(
                    f"{url}: downloaded sha256 {digest.hexdigest()} does not match the expected {expected} "
                    f"(nothing was saved to {dest})"
                )
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise LstmLabError(
            f"{url}: download failed ({reason}); offline, put the file at {dest} by hand (sha256 {expected})"
        ) from None
    return dest
