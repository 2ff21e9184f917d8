"""Resume journals: small JSON-lines files beside the temp/output file.

Layer 2: imports only the stdlib and ``errors``. A journal's first line is
its header (what is being transferred, written atomically, mode 0600); every
later line records one confirmed part and is appended with a single write, so
a kill -9 can at worst leave a torn last line, which loading ignores. The
header carries an input fingerprint; a journal whose input changed is
discarded by the caller, who tells the user.
"""

import json
import logging
import os
import threading
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Self

__all__ = [
    "DownloadHeader",
    "Fingerprint",
    "Journal",
    "UploadHeader",
]

logger = logging.getLogger(__name__)
_VERSION = 1


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """What identifies an unchanged input file."""

    size: int
    mtime_ns: int
    inode: int

    @classmethod
    def of(cls, path: Path) -> "Fingerprint":
        """Return the fingerprint of ``path`` now."""
        stat = path.stat()
        return cls(stat.st_size, stat.st_mtime_ns, stat.st_ino)


@dataclass(frozen=True, slots=True)
class UploadHeader:
    """An upload in progress: the server-side upload and how to continue it.

    ``sealed_session_key`` is a Crypt4GH header that carries the session key
    encrypted to the user's own public key, so the journal holds no secret.
    """

    source: str
    alias: str
    fingerprint: Fingerprint
    temp_path: str
    file_id: str
    storage_alias: str
    part_size: int
    encrypted_size: int
    sealed_session_key: str = field(repr=False)
    kind: str = "upload"


@dataclass(frozen=True, slots=True)
class DownloadHeader:
    """A download in progress into ``temp_path``."""

    accession: str
    temp_path: str
    cipher_size: int
    sha256: str | None
    part_size: int
    keep_encrypted: bool
    kind: str = "download"


def _header_from(cls: type[Any], data: dict[str, Any]) -> Any:
    names = {f.name for f in fields(cls)}
    if set(data) != names:
        raise ValueError(f"journal header fields {sorted(data)} do not match")
    if "fingerprint" in data:
        data = {**data, "fingerprint": Fingerprint(**data["fingerprint"])}
    return cls(**data)


class Journal:
    """An append-only record of confirmed parts; safe to use from threads."""

    def __init__(
        self,
        path: Path,
        header: UploadHeader | DownloadHeader,
        records: dict[int, dict[str, Any]] | None = None,
    ) -> None:
        self.path = path
        self.header = header
        self.records: dict[int, dict[str, Any]] = dict(records or {})
        self._lock = threading.Lock()

    @classmethod
    def create(cls, path: Path, header: UploadHeader | DownloadHeader) -> Self:
        """Write a fresh journal atomically (temp file + rename, mode 0600)."""
        line = json.dumps({"version": _VERSION, **asdict(header)}) + "\n"
        temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, line.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
        return cls(path, header)

    @classmethod
    def load(cls, path: Path) -> Self | None:
        """Read a journal; None if there is none or it cannot be parsed."""
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
            first = json.loads(lines[0])
            if first.pop("version", None) != _VERSION:
                raise ValueError("unknown journal version")
            kind = first.get("kind")
            header_cls = UploadHeader if kind == "upload" else DownloadHeader
            header = _header_from(header_cls, first)
        except (OSError, IndexError, ValueError, TypeError) as err:
            if path.exists():
                logger.info("ignoring unreadable journal %s (%s)", path, err)
            return None
        return cls(path, header, _records(lines[1:]))

    def confirm(self, number: int, **values: Any) -> None:
        """Record part ``number`` as confirmed, with e.g. its checksums."""
        line = json.dumps({"part": number, **values}) + "\n"
        with self._lock:
            self.records[number] = values
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
            try:
                os.write(fd, line.encode())
            finally:
                os.close(fd)

    def remove(self) -> None:
        """Delete the journal file."""
        self.path.unlink(missing_ok=True)


def _records(lines: list[str]) -> dict[int, dict[str, Any]]:
    records: dict[int, dict[str, Any]] = {}
    for line in lines:
        try:
            record = json.loads(line)
            records[int(record.pop("part"))] = record
        except (ValueError, KeyError, TypeError):
            continue  # a torn last line after a kill
    return records
