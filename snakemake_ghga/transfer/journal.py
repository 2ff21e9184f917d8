"""Resume journals: small JSON-lines files in the private state dir or beside an output.

In ``transfer``: imports the stdlib, ``errors``, ``files.private`` and
``crypt4gh.format.pwrite_all``. A journal's first line is its header (what is being
transferred, written atomically, mode 0600); every later line records one
confirmed part and is appended with a single write, so a kill -9 can at worst
leave a torn last line, which loading ignores. Lines of the form ``{"note":
{...}}`` carry values of the whole transfer (e.g. the plaintext SHA-256 once
encryption finished). The header carries an input fingerprint; a journal whose
input changed is discarded by the caller, who tells the user. A kill while a
journal is being created can leave its temp sibling ``.NAME.PID.XXXXXXXX.tmp``;
creating or loading the journal removes such leftovers of processes that are
gone.

A journal is only read or appended to if it is a regular file of ours (no
symlink, no other owner: see ``private_files``); anything else at its name is
ignored. Upload journals name no file: the caller derives the temp file's
name, so a journal can never make us touch a path written into it.
"""

import errno
import glob
import json
import logging
import os
import threading
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Self

from snakemake_ghga.crypt4gh.format import pwrite_all
from snakemake_ghga.errors import LocalFileError, local_write_error
from snakemake_ghga.files.private import open_own, private_temp

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
    The encrypted temp file is not named here: ``upload.UploadState`` derives
    it, so a journal cannot point us at any other file.
    """

    source: str
    alias: str
    fingerprint: Fingerprint
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
        notes: dict[str, Any] | None = None,
    ) -> None:
        self.path = path
        self.header = header
        self.records: dict[int, dict[str, Any]] = dict(records or {})
        self.notes: dict[str, Any] = dict(notes or {})
        self._lock = threading.Lock()

    @classmethod
    def create(cls, path: Path, header: UploadHeader | DownloadHeader) -> Self:
        """Write a fresh journal atomically (temp file + rename, mode 0600)."""
        _remove_stale_temps(path)
        line = json.dumps({"version": _VERSION, **asdict(header)}) + "\n"
        fd, temp = private_temp(path.parent, f".{path.name}.{os.getpid()}.", ".tmp")
        try:
            pwrite_all(fd, line.encode(), 0)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            temp.unlink(missing_ok=True)
            raise
        os.close(fd)
        os.replace(temp, path)
        return cls(path, header)

    @classmethod
    def load(cls, path: Path) -> Self | None:
        """Read a journal; None if there is none or it cannot be parsed."""
        _remove_stale_temps(path)
        try:
            lines = _read_own(path).splitlines()
            first = json.loads(lines[0])
            if first.pop("version", None) != _VERSION:
                raise ValueError("unknown journal version")
            kind = first.get("kind")
            header_cls = UploadHeader if kind == "upload" else DownloadHeader
            header = _header_from(header_cls, first)
        except FileNotFoundError:
            return None
        except LocalFileError as err:
            logger.warning("ignoring the resume journal %s: %s", path, err.message)
            return None
        except (OSError, IndexError, ValueError, TypeError) as err:
            logger.info("ignoring unreadable journal %s (%s)", path, err)
            return None
        records, notes = _parse_lines(lines[1:])
        return cls(path, header, records, notes)

    def confirm(self, number: int, **values: Any) -> None:
        """Record part ``number`` as confirmed, with e.g. its checksums."""
        with self._lock:
            self.records[number] = values
            self._append({"part": number, **values})

    def note(self, **values: Any) -> None:
        """Record values of the whole transfer, e.g. ``plain_sha256``."""
        with self._lock:
            self.notes.update(values)
            self._append({"note": values})

    def _append(self, record: dict[str, Any]) -> None:
        """Append one line with a single write (O_APPEND).

        Raises:
            LocalFileError: the journal is gone, not ours, or cannot be
                written (e.g. disk full).
        """
        data = (json.dumps(record) + "\n").encode()
        try:
            fd = open_own(self.path, os.O_WRONLY | os.O_APPEND)
            try:
                if os.write(fd, data) != len(data):  # one write keeps the line whole
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            finally:
                os.close(fd)
        except OSError as err:
            raise local_write_error(self.path, err) from err

    def remove(self) -> None:
        """Delete the journal file."""
        self.path.unlink(missing_ok=True)


def _read_own(path: Path) -> str:
    """The text of ``path``, if it is a regular file of ours (never via a link)."""
    fd = open_own(path, os.O_RDONLY)
    with os.fdopen(fd, encoding="utf-8") as handle:
        return handle.read()


def _parse_lines(
    lines: list[str],
) -> tuple[dict[int, dict[str, Any]], dict[str, Any]]:
    """Part records and notes; a torn last line after a kill is ignored."""
    records: dict[int, dict[str, Any]] = {}
    notes: dict[str, Any] = {}
    for line in lines:
        try:
            record = json.loads(line)
            if "note" in record:
                notes.update(dict(record["note"]))
            else:
                records[int(record.pop("part"))] = record
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
    return records, notes


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True  # maybe another thread of ours; create() truncates it anyway
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    except (OverflowError, ValueError):
        return False
    return True


def _remove_stale_temps(path: Path) -> None:
    """Delete our ``.NAME.PID.XXXXXXXX.tmp`` siblings of ``path`` whose process is gone.

    They are left when a process is killed while it creates the journal;
    files of other users are left alone.
    """
    pattern = f".{glob.escape(path.name)}.*.tmp"
    for temp in path.parent.glob(pattern):
        pid = temp.name[len(path.name) + 2 : -len(".tmp")].split(".")[0]
        if pid.isdigit() and not _pid_alive(int(pid)) and _owned_by_us(temp):
            try:
                temp.unlink(missing_ok=True)
                logger.info("removed the leftover journal temp file %s", temp)
            except OSError as err:
                logger.warning("could not remove %s: %s", temp, err)


def _owned_by_us(path: Path) -> bool:
    try:
        return path.lstat().st_uid == os.getuid()
    except OSError:
        return False
