"""The sandbox's object storage: the store protocol and the file-backed presigned store.

Imports only the stdlib and `problems`. The file-backed store keeps completed
objects as files under DIR/objects and multipart uploads as one file per part
(with an .md5 sidecar) under DIR/multipart; its presigned URLs are
`{base}/s3/{key}?…&expires=EPOCH&signature=HMAC-SHA256(method, path, query)`,
so a tampered or expired URL is refused like S3 refuses it (403 + XML).
"""

import hashlib
import hmac
import os
import re
import secrets
import shutil
import time
from dataclasses import dataclass
from io import BufferedIOBase, BufferedReader, RawIOBase
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer
from urllib.parse import urlencode

from .problems import S3Problem

__all__ = [
    "CompletedObject",
    "FileObjectStore",
    "ObjectStore",
    "PartInfo",
    "multipart_etag",
]

_KEY_PATTERN = re.compile(r"(inbox|outbox)/[A-Za-z0-9-]+")
_UPLOAD_ID_PATTERN = re.compile(r"[a-f0-9]{32}")


@dataclass(frozen=True, slots=True)
class PartInfo:
    """One uploaded part: number (1-based), size and MD5 hex (its S3 ETag)."""

    number: int
    size_bytes: int
    etag: str


@dataclass(frozen=True, slots=True)
class CompletedObject:
    """A completed multipart object: its S3 ETag (quotes stripped) and size."""

    etag: str
    size_bytes: int


def multipart_etag(part_md5_hexes: list[str]) -> str:
    """S3's multipart ETag: md5 of the concatenated binary part md5s, then -N."""
    digest = hashlib.md5(b"".join(bytes.fromhex(h) for h in part_md5_hexes))
    return f"{digest.hexdigest()}-{len(part_md5_hexes)}"


class ObjectStore(Protocol):
    """What the UCS, the DCS and the hub need from an object store."""

    temp_dir: Path  # local scratch space on the same file system as the state

    def create_multipart(self, key: str) -> str:
        """Start a multipart upload of `key`; return its upload id."""

    def part_upload_url(self, key: str, upload_id: str, part_number: int) -> str:
        """Presign a PUT of one part."""

    def has_multipart(self, key: str, upload_id: str) -> bool:
        """Whether the multipart upload exists (not completed or aborted)."""

    def list_parts(self, key: str, upload_id: str) -> list[PartInfo]:
        """The uploaded parts, by part number."""

    def complete_multipart(
        self, key: str, upload_id: str, parts: list[PartInfo]
    ) -> CompletedObject:
        """Assemble `parts` into the object `key`."""

    def abort_multipart(self, key: str, upload_id: str) -> None:
        """Drop a multipart upload and its parts (no error if gone)."""

    def open_object(self, key: str) -> BufferedIOBase:
        """Open an object for sequential reading."""

    def store_object(self, key: str, source: Path) -> None:
        """Move the local file `source` into the store as `key`."""

    def object_size(self, key: str) -> int:
        """Size of an object in bytes."""

    def download_url(self, key: str) -> str:
        """Presign a GET of an object (ranged GETs allowed)."""

    def delete_object(self, key: str) -> None:
        """Delete an object (no error if gone)."""


class FileObjectStore:
    """Objects as files in the state directory, served by the sandbox itself."""

    def __init__(self, root: Path, signing_key: bytes, url_ttl_s: int) -> None:
        self.objects_dir = root / "objects"
        self.multipart_dir = root / "multipart"
        self.temp_dir = root / "tmp"
        for folder in (self.objects_dir, self.multipart_dir, self.temp_dir):
            folder.mkdir(parents=True, exist_ok=True)
        (self.objects_dir / "inbox").mkdir(exist_ok=True)
        (self.objects_dir / "outbox").mkdir(exist_ok=True)
        self.base_url = ""
        self.url_ttl_s = url_ttl_s
        self._signing_key = signing_key

    def __repr__(self) -> str:
        return f"FileObjectStore({self.objects_dir.parent})"

    # -- presigned URLs -------------------------------------------------------

    def _presign(self, method: str, key: str, params: dict[str, str]) -> str:
        params = {**params, "expires": str(int(time.time()) + self.url_ttl_s)}
        path = f"/s3/{key}"
        params["signature"] = self._signature(method, path, params)
        return f"{self.base_url}{path}?{urlencode(params)}"

    def _signature(self, method: str, path: str, params: dict[str, str]) -> str:
        canonical = urlencode(
            sorted((k, v) for k, v in params.items() if k != "signature")
        )
        message = f"{method}\n{path}\n{canonical}".encode()
        return hmac.new(self._signing_key, message, hashlib.sha256).hexdigest()

    def verify_url(self, method: str, path: str, query: dict[str, str]) -> None:
        """Check a presigned request's signature and expiry.

        Raises:
            S3Problem: 403 SignatureDoesNotMatch if tampered, AccessDenied if expired.
        """
        given = query.get("signature", "")
        expected = self._signature(method, path, query)
        if not hmac.compare_digest(given, expected):
            raise S3Problem(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match "
                "the signature you provided.",
            )
        try:
            expires = int(query.get("expires", ""))
        except ValueError:
            raise S3Problem(403, "AccessDenied", "Invalid expiry") from None
        if time.time() > expires:
            raise S3Problem(403, "AccessDenied", "Request has expired")

    def part_upload_url(self, key: str, upload_id: str, part_number: int) -> str:
        """Presign a PUT of one part."""
        params = {"partNumber": str(part_number), "uploadId": upload_id}
        return self._presign("PUT", key, params)

    def download_url(self, key: str) -> str:
        """Presign a GET of an object (ranged GETs allowed)."""
        return self._presign("GET", key, {})

    # -- multipart uploads ----------------------------------------------------

    def _upload_dir(self, upload_id: str) -> Path:
        if not _UPLOAD_ID_PATTERN.fullmatch(upload_id):
            raise S3Problem(404, "NoSuchUpload", "The specified upload does not exist.")
        return self.multipart_dir / upload_id

    def create_multipart(self, key: str) -> str:
        """Start a multipart upload of `key`; return its upload id."""
        upload_id = secrets.token_hex(16)
        folder = self._upload_dir(upload_id)
        folder.mkdir()
        (folder / "key").write_text(_checked_key(key), encoding="ascii")
        return upload_id

    def has_multipart(self, key: str, upload_id: str) -> bool:
        """Whether the multipart upload exists (not completed or aborted)."""
        try:
            marker = self._upload_dir(upload_id) / "key"
            return marker.read_text(encoding="ascii") == key
        except (FileNotFoundError, S3Problem):
            return False

    def new_part_file(self, key: str, upload_id: str) -> tuple[int, Path]:
        """Open a temp file for an incoming part; (fd, path).

        Raises:
            S3Problem: 404 NoSuchUpload if the upload does not exist.
        """
        if not self.has_multipart(key, upload_id):
            raise S3Problem(404, "NoSuchUpload", "The specified upload does not exist.")
        temp = self._upload_dir(upload_id) / f".part-{secrets.token_hex(8)}.tmp"
        return os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), temp

    def commit_part(
        self, upload_id: str, part_number: int, temp: Path, md5: str
    ) -> None:
        """Make a fully received part visible (replaces an earlier upload of it)."""
        folder = self._upload_dir(upload_id)
        (folder / f"{part_number:05d}.md5").write_text(md5, encoding="ascii")
        os.replace(temp, folder / f"{part_number:05d}")

    def list_parts(self, key: str, upload_id: str) -> list[PartInfo]:
        """The uploaded parts, by part number."""
        folder = self._upload_dir(upload_id)
        parts = []
        for path in sorted(folder.glob("[0-9][0-9][0-9][0-9][0-9]")):
            md5 = (folder / f"{path.name}.md5").read_text(encoding="ascii")
            parts.append(PartInfo(int(path.name), path.stat().st_size, md5))
        return parts

    def complete_multipart(
        self, key: str, upload_id: str, parts: list[PartInfo]
    ) -> CompletedObject:
        """Make `parts` the object `key`, in O(1): the part files stay as they are.

        The object is read back as the concatenation of its part files, so a
        close never copies the data (S3 does not either, from the client's view).
        """
        folder = self._upload_dir(upload_id)
        kept = {f"{part.number:05d}" for part in parts}
        for path in folder.iterdir():
            if path.name not in kept:
                path.unlink()
        os.replace(folder, self._parts_dir(key))
        size = sum(part.size_bytes for part in parts)
        return CompletedObject(multipart_etag([p.etag for p in parts]), size)

    def abort_multipart(self, key: str, upload_id: str) -> None:
        """Drop a multipart upload and its parts (no error if gone)."""
        if self.has_multipart(key, upload_id):
            shutil.rmtree(self._upload_dir(upload_id), ignore_errors=True)

    # -- objects --------------------------------------------------------------

    def _path(self, key: str) -> Path:
        return self.objects_dir / _checked_key(key)

    def object_files(self, key: str) -> list[Path]:
        """The files holding an object, in order: one, or its upload's parts.

        Raises:
            S3Problem: 404 NoSuchKey if it does not exist.
        """
        path = self._path(key)
        return [path] if path.is_file() else self._part_files(key)

    def _parts_dir(self, key: str) -> Path:
        return self._path(key).with_name(f"{self._path(key).name}.parts")

    def _part_files(self, key: str) -> list[Path]:
        folder = self._parts_dir(key)
        if not folder.is_dir():
            raise S3Problem(404, "NoSuchKey", "The specified key does not exist.")
        return sorted(folder.iterdir())

    def open_object(self, key: str) -> BufferedIOBase:
        """Open an object (a file, or the parts of a completed upload) to read."""
        if self._path(key).is_file():
            return open(self._path(key), "rb")
        return BufferedReader(_ConcatenatedReader(self._part_files(key)), 1 << 20)

    def store_object(self, key: str, source: Path) -> None:
        """Move the local file `source` into the store as `key`."""
        os.replace(source, self._path(key))

    def object_size(self, key: str) -> int:
        """Size of an object in bytes."""
        if self._path(key).is_file():
            return self._path(key).stat().st_size
        return sum(path.stat().st_size for path in self._part_files(key))

    def delete_object(self, key: str) -> None:
        """Delete an object (no error if gone)."""
        self._path(key).unlink(missing_ok=True)
        shutil.rmtree(self._parts_dir(key), ignore_errors=True)


class _ConcatenatedReader(RawIOBase):
    """Reads several files one after the other, as one stream."""

    def __init__(self, paths: list[Path]) -> None:
        self._paths = list(paths)
        self._current: BufferedReader | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: "WriteableBuffer") -> int:
        while True:
            if self._current is None:
                if not self._paths:
                    return 0
                self._current = open(self._paths.pop(0), "rb")  # noqa: SIM115
            got = self._current.readinto(buffer)
            if got:
                return got
            self._current.close()
            self._current = None

    def close(self) -> None:
        if self._current is not None:
            self._current.close()
            self._current = None
        super().close()


def _checked_key(key: str) -> str:
    if not _KEY_PATTERN.fullmatch(key):
        raise S3Problem(400, "InvalidObjectName", "object key not allowed")
    return key
