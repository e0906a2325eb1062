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
atomically). An archive whose targets all exist is not downloaded at all.

Files already on disk are checked, not trusted: a cached download is re-hashed against its checksum on every
call (no network is touched when it matches), and an extracted member that already exists is compared with the
member of the (checksummed) archive whenever the archive is still there. Extracted files without their archive
(put there by hand, or the archive deleted) are used as they are: the source declares no checksum for them.

Only ``https://`` URLs are fetched (``file://`` for a local file; plain ``http://`` to a loopback address only,
i.e. a server on this machine such as a test server or a local mirror, where no network can tamper with the
bytes), also after a redirect. One download may take at most ``time_limit`` seconds in all (600 by default),
beside the per-read socket ``timeout``: a server that trickles bytes cannot hold a run forever.
"""

from __future__ import annotations

import hashlib
import http.client
import ipaddress
import logging
import re
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lstm_lab.errors import LstmLabError
from lstm_lab.io import atomic_path

log = logging.getLogger(__name__)

CHUNK = 1 << 20
TIME_LIMIT = 600.0  # seconds for one whole download: SST-2.zip (7 MB) needs a few, even on a slow line
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


def check_url(url: str) -> str:
    """``url`` if the project may download from it: ``https://``, ``file://``, or ``http://`` to a loopback IP."""
    parts = urllib.parse.urlsplit(str(url))
    scheme = parts.scheme.lower()
    if scheme in ("https", "file") or (scheme == "http" and _is_loopback(parts.hostname)):
        return url
    raise LstmLabError(f"{url}: not an https:// URL; downloads are fetched over https:// only (file:// for a "
                       "local file)")


def _is_loopback(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it could resolve anywhere
        return False


class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
    """Follows a redirect only to a URL ``check_url`` accepts: an https:// link cannot hop to plain http://."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        try:
            check_url(newurl)
        except LstmLabError:
            raise LstmLabError(f"{req.full_url}: redirects to {newurl}, which is not an https:// URL; refusing to "
                               "follow it") from None
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _open(url: str, timeout: float):
    """The response for ``url`` (a separate function so that tests can stand in a slow or fake server)."""
    return urllib.request.build_opener(_CheckedRedirects).open(url, timeout=timeout)


def digest_of(path: str | Path, algorithm: str = "sha256") -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_of(path: str | Path) -> str:
    return digest_of(path, "sha256")


def fetch(url: str, sha256: str, dest: str | Path, *, timeout: float = 60.0,
          time_limit: float = TIME_LIMIT) -> Path:
    """``dest`` holding the bytes of ``url``; downloads only if not cached, and checks a cached file's checksum.

    ``sha256`` is the expected SHA-256 hex digest, or a prefixed checksum (``"sha256:..."``, ``"md5:..."``).
    ``timeout`` bounds each network read, ``time_limit`` the whole download (checked between reads, so it can
    be overrun by at most one ``timeout``).
    """
    dest = Path(dest)
    algorithm, expected = parse_checksum(sha256)
    check_url(url)
    if time_limit <= 0:
        raise LstmLabError(f"time_limit {time_limit!r}: expected a positive number of seconds")
    label = f"{algorithm} {expected}"
    if dest.is_file():
        if digest_of(dest, algorithm) == expected:
            log.info("%s: cached, checksum ok", dest)
            return dest
        raise LstmLabError(f"{dest}: exists but its {algorithm} is not {expected} (delete it to download again "
                           f"from {url})")
    log.info("downloading %s -> %s", url, dest)
    digest = hashlib.new(algorithm)
    deadline = time.monotonic() + time_limit

    def check_time() -> None:
        if time.monotonic() > deadline:
            raise DownloadError(f"{url}: download took longer than {time_limit:g} s (the limit for one download); "
                                f"nothing was saved to {dest}; put the file there by hand ({label})")

    try:
        with atomic_path(dest) as tmp, _open(url, min(timeout, time_limit)) as response:
            # read1 returns what has arrived (a trickling server cannot hold one call until a whole CHUNK is in)
            read = response.read1 if hasattr(response, "read1") else response.read
            with open(tmp, "wb") as out:
                check_time()
                for block in iter(lambda: read(CHUNK), b""):
                    digest.update(block)
                    out.write(block)
                    check_time()
            if digest.hexdigest() != expected:
                raise LstmLabError(
                    f"{url}: downloaded {algorithm} {digest.hexdigest()} does not match the expected {expected} "
                    f"(nothing was saved to {dest})"
                )
    except (urllib.error.URLError, OSError, TimeoutError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", None) or str(exc) or type(exc).__name__
        raise DownloadError(
            f"{url}: download failed ({reason}); offline, put the file at {dest} by hand ({label})"
        ) from None
    return dest


def extract(archive: str | Path, members: Mapping[str, str | Path]) -> list[Path]:
    """Write each zip ``member`` of ``archive`` to its target path (atomically).

    A target that exists already is kept if its bytes are the member's, and an error otherwise (it is not
    silently replaced: it may be a file the user wants). The archive is the one ``fetch`` checked."""
    archive = Path(archive)
    written = []
    try:
        with zipfile.ZipFile(archive) as zf:
            names = set(zf.namelist())
            for member, target in members.items():
                target = Path(target)
                if member not in names:
                    raise LstmLabError(f"{archive}: has no member {member!r} (members: {sorted(names)[:10]})")
                if target.is_file():
                    if not _same_bytes(zf, member, target):
                        raise LstmLabError(f"{target}: exists but differs from {member} in {archive} (delete it "
                                           "to extract it again)")
                    continue
                with atomic_path(target) as tmp, zf.open(member) as src, open(tmp, "wb") as out:
                    for block in iter(lambda: src.read(CHUNK), b""):
                        out.write(block)
                written.append(target)
                log.info("extracted %s:%s -> %s", archive.name, member, target)
    except zipfile.BadZipFile:
        raise LstmLabError(f"{archive}: not a zip archive (delete it to download again)") from None
    return written


def _same_bytes(zf: zipfile.ZipFile, member: str, path: Path) -> bool:
    if zf.getinfo(member).file_size != path.stat().st_size:
        return False
    with zf.open(member) as a, open(path, "rb") as b:
        for block in iter(lambda: a.read(CHUNK), b""):
            if b.read(len(block)) != block:
                return False
    return True


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
        parse_checksum(data["checksum"])  # fails early on a malformed checksum or URL
        check_url(str(data["url"]))
        members = {str(m): Path(p) for m, p in (data.get("extract") or {}).items()}
        return cls(str(data["url"]), str(data["checksum"]), Path(data["to"]), members)

    @property
    def targets(self) -> list[Path]:
        """The files this source provides: the extracted members, or the download itself."""
        return list(self.extract.values()) if self.extract else [self.to]

    def ensure(self, *, timeout: float = 60.0, time_limit: float = TIME_LIMIT) -> list[Path]:
        if self.extract and all(t.is_file() for t in self.targets) and not self.to.is_file():
            return self.targets  # extracted files without their archive: nothing declared to check them against
        try:
            # A cached download (or archive) is re-hashed here; a missing one is fetched.
            fetch(self.url, self.checksum, self.to, timeout=timeout, time_limit=time_limit)
        except DownloadError as exc:
            if self.extract:  # say that the extracted files do as well
                extracted = ", ".join(str(p) for p in self.extract.values())
                raise DownloadError(f"{exc} or its extracted files at {extracted}") from None
            raise
        if self.extract:
            extract(self.to, self.extract)  # existing members are compared with the checked archive
        return self.targets


def ensure(sources: Iterable[Source | Mapping[str, Any]], *, timeout: float = 60.0,
           time_limit: float = TIME_LIMIT) -> list[Path]:
    """Download (and extract) every source whose files are not all cached, checking those that are; the files
    they provide."""
    paths: list[Path] = []
    for i, source in enumerate(sources):
        if not isinstance(source, Source):
            source = Source.from_dict(source, where=f"download[{i}]")
        paths += source.ensure(timeout=timeout, time_limit=time_limit)
    return paths
