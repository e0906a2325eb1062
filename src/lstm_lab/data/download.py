"""Checksummed download of a public corpus the user asked for.

``fetch(url, sha256, dest)`` and ``ensure(sources)`` are the only code in the project that opens a network
connection, and only when the user asked for it (``textgen.data.download=true``, ``sentiment.data.download=true``
with the catalog entry's ``download:`` sources) and the files are not already cached. The bytes go to a temporary
file beside ``dest``, are hashed while they stream, and replace ``dest`` only when the checksum matches: a failed
or interrupted download never leaves a partial file where a cached one is expected. Offline, or on a checksum
mismatch, it raises ``LstmLabError`` naming the URL and where to put the file(s) by hand.

Checksums are ``"sha256:<hex>"`` or ``"md5:<hex>"`` (a bare 64-digit hex string is SHA-256). MD5 is accepted
because some corpora publish nothing stronger (torchtext lists SST-2.zip by MD5 only); prefer SHA-256.

A source may be a zip archive: ``extract`` maps archive members to the paths they are written to (each written
atomically). Members whose targets already exist are not extracted again, and an archive whose targets all
exist is not downloaded at all.
"""

from __future__ import annotations

import hashlib
import logging
import re
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lstm_lab.datasets import atomic_path
from lstm_lab.errors import LstmLabError

log = logging.getLogger(__name__)

CHUNK = 1 << 20
_HEX_LENGTH = {"sha256": 64, "md5": 32}


class DownloadError(LstmLabError):
    """The server could not be reached or the transfer broke off (offline, wrong URL, timeout)."""


def parse_checksum(checksum: str) -> tuple[str, str]:
    """``"sha256:<hex>"`` / ``"md5:<hex>"`` / bare SHA-256 hex → (algorithm, lower-case hex)."""
    text = str(checksum).strip()
    algorithm, _, digest = text.rpartition(":")
    algorithm = (algorithm or "sha256").lower()
    digest = digest.lower()
    if algorithm not in _HEX_LENGTH or not re.fullmatch(rf"[0-9a-f]{{{_HEX_LENGTH[algorithm]}}}", digest):
        raise LstmLabError(
            f"checksum {checksum!r}: expected 'sha256:<64 hex digits>' or 'md5:<32 hex digits>'"
        )
    return algorithm, digest


def digest_of(path: str | Path, algorithm: str = "sha256") -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_of(path: str | Path) -> str:
    return digest_of(path, "sha256")


def fetch(url: str, sha256: str, dest: str | Path, *, timeout: float = 60.0) -> Path:
    """``dest`` holding the bytes of ``url``; downloads only if not cached.

    ``sha256`` is the expected SHA-256 hex digest, or a prefixed checksum (``"sha256:..."``, ``"md5:..."``).
    """
    dest = Path(dest)
    algorithm, expected = parse_checksum(sha256)
    label = f"{algorithm} {expected}"
    if dest.is_file():
        if digest_of(dest, algorithm) == expected:
            log.info("%s: cached, checksum ok", dest)
            return dest
        raise LstmLabError(f"{dest}: exists but its {algorithm} is not {expected} (delete it to download again "
                           f"from {url})")
    log.info("downloading %s -> %s", url, dest)
    digest = hashlib.new(algorithm)
    try:
        with atomic_path(dest) as tmp, urllib.request.urlopen(url, timeout=timeout) as response:
            with open(tmp, "wb") as out:
                for block in iter(lambda: response.read(CHUNK), b""):
                    digest.update(block)
                    out.write(block)
            if digest.hexdigest() != expected:
                raise LstmLabError(
                    f"{url}: downloaded {algorithm} {digest.hexdigest()} does not match the expected {expected} "
                    f"(nothing was saved to {dest})"
                )
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(
            f"{url}: download failed ({reason}); offline, put the file at {dest} by hand ({label})"
        ) from None
    return dest


def extract(archive: str | Path, members: Mapping[str, str | Path]) -> list[Path]:
    """Write each zip ``member`` of ``archive`` to its target path (atomically); targets that exist are kept."""
    archive = Path(archive)
    written = []
    try:
        with zipfile.ZipFile(archive) as zf:
            names = set(zf.namelist())
            for member, target in members.items():
                target = Path(target)
                if target.is_file():
                    continue
                if member not in names:
                    raise LstmLabError(f"{archive}: has no member {member!r} (members: {sorted(names)[:10]})")
                with atomic_path(target) as tmp, zf.open(member) as src, open(tmp, "wb") as out:
                    for block in iter(lambda: src.read(CHUNK), b""):
                        out.write(block)
                written.append(target)
                log.info("extracted %s:%s -> %s", archive.name, member, target)
    except zipfile.BadZipFile:
        raise LstmLabError(f"{archive}: not a zip archive (delete it to download again)") from None
    return written


@dataclass(frozen=True)
class Source:
    """One download: ``url`` with ``checksum`` cached at ``to``; ``extract`` {zip member: target path}."""

    url: str
    checksum: str
    to: Path
    extract: dict[str, Path] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "download") -> Source:
        allowed = {"url", "checksum", "to", "extract"}
        if not isinstance(data, Mapping):
            raise LstmLabError(f"{where}: expected a mapping with keys {sorted(allowed)}, got {data!r}")
        unknown = sorted(set(data) - allowed)
        missing = sorted({"url", "checksum", "to"} - set(data))
        if unknown or missing:
            raise LstmLabError(f"{where}: unknown keys {unknown} / missing keys {missing}; allowed: {sorted(allowed)}")
        parse_checksum(data["checksum"])  # fails early on a malformed checksum
        members = {str(m): Path(p) for m, p in (data.get("extract") or {}).items()}
        return cls(str(data["url"]), str(data["checksum"]), Path(data["to"]), members)

    @property
    def targets(self) -> list[Path]:
        """The files this source provides: the extracted members, or the download itself."""
        return list(self.extract.values()) if self.extract else [self.to]

    def ensure(self, *, timeout: float = 60.0) -> list[Path]:
        if all(t.is_file() for t in self.targets):
            return self.targets
        try:
            fetch(self.url, self.checksum, self.to, timeout=timeout)
        except DownloadError as exc:
            if self.extract:  # say that the extracted files do as well
                extracted = ", ".join(str(p) for p in self.extract.values())
                raise DownloadError(f"{exc} or its extracted files at {extracted}") from None
            raise
        if self.extract:
            extract(self.to, self.extract)
        return self.targets


def ensure(sources: Iterable[Source | Mapping[str, Any]], *, timeout: float = 60.0) -> list[Path]:
    """Download (and extract) every source whose files are not all cached; the files they provide."""
    paths: list[Path] = []
    for i, source in enumerate(sources):
        if not isinstance(source, Source):
            source = Source.from_dict(source, where=f"download[{i}]")
        paths += source.ensure(timeout=timeout)
    return paths
