"""The file-backed object store's HTTP face: presigned part PUTs and ranged GETs.

Imports the stdlib and the sandbox's `http`, `objects` and `problems`.
S3-faithful where a client can tell: a PUT answers exactly 200 with the
part's MD5 as a quoted `ETag`; a ranged GET answers 206 with exactly the bytes
asked for and a `Content-Range`; an unsatisfiable range answers 416; errors
are S3's XML documents. Bodies stream between socket and file in 4 MiB
buffers (PUT) or with sendfile (GET); no object is ever held in memory.
"""

import hashlib
import os
import re
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from .http import FileSlice, Request, Response, Router
from .objects import FileObjectStore
from .problems import S3Problem

__all__ = ["MAX_PART_SIZE_BYTES", "add_object_routes", "parse_range"]

MAX_PART_SIZE_BYTES = 5 * 1024**3
_MAX_PART_NUMBER = 10_000
_BUFFER_BYTES = 4 * 1024 * 1024
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
_KEY = r"(?P<key>(?:inbox|outbox)/[A-Za-z0-9-]+)"
# Shared by all PUTs; each PUT has at most one hashing task queued at a time.
_HASHERS = ThreadPoolExecutor(8, thread_name_prefix="sandbox-md5")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """Parse a single `Range: bytes=…` header as S3 does.

    Returns:
        Inclusive (first, last) byte positions, or None for the whole object
        (no header, or a form S3 ignores such as several ranges).

    Raises:
        S3Problem: 416 InvalidRange if the range starts beyond the object.
    """
    found = _RANGE.fullmatch((header or "").strip())
    if not found or found.groups() == ("", ""):
        return None
    first_text, last_text = found.groups()
    if not first_text:  # suffix range: the last N bytes
        length = min(int(last_text), size)
        if length == 0:
            raise _invalid_range()
        return size - length, size - 1
    first = int(first_text)
    last = min(int(last_text), size - 1) if last_text else size - 1
    if first >= size or last < first:
        raise _invalid_range()
    return first, last


def _invalid_range() -> S3Problem:
    return S3Problem(416, "InvalidRange", "The requested range is not satisfiable")


def add_object_routes(router: Router, store: FileObjectStore) -> None:
    """Register the presigned PUT (parts) and GET (objects) routes."""
    router.add("PUT", rf"/s3/{_KEY}", lambda r: _put_part(store, r), "object")
    router.add("GET", rf"/s3/{_KEY}", lambda r: _get_object(store, r), "object")


def _put_part(store: FileObjectStore, request: Request) -> Response:
    store.verify_url("PUT", request.path, request.query)
    key = request.params["key"]
    part_number = _part_number(request.query.get("partNumber", ""))
    if request.headers.get("Content-Length") is None:
        raise S3Problem(
            411,
            "MissingContentLength",
            "You must provide the Content-Length HTTP header.",
        )
    if request.body.length > MAX_PART_SIZE_BYTES:
        raise S3Problem(
            400,
            "EntityTooLarge",
            "Your proposed upload exceeds the maximum allowed size",
        )
    upload_id = request.query.get("uploadId", "")
    fd, temp = store.new_part_file(key, upload_id)
    try:
        md5 = _receive(request, fd)
    except BaseException:
        os.close(fd)
        temp.unlink(missing_ok=True)
        raise
    os.close(fd)
    store.commit_part(upload_id, part_number, temp, md5)
    return Response(200, headers=(("ETag", f'"{md5}"'),))


def _part_number(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= _MAX_PART_NUMBER:
        raise S3Problem(
            400,
            "InvalidArgument",
            "Part number must be an integer between 1 and 10000, inclusive",
        )
    return int(text)


def _fill(request: Request, buffer: memoryview) -> int:
    filled = 0
    while filled < len(buffer) and request.body.remaining:
        filled += request.body.readinto(buffer[filled:])
    return filled


def _receive(request: Request, fd: int) -> str:
    """Stream the request body into `fd`; return its MD5 hex.

    MD5 (the slowest step) runs on a hashing thread while this thread writes
    the same buffer and receives the next one into the other of two buffers.
    """
    digest = hashlib.md5()
    size = min(_BUFFER_BYTES, max(request.body.length, 1))
    buffers = [memoryview(bytearray(size)), memoryview(bytearray(size))]
    pending: Future[None] | None = None
    index = 0
    try:
        while request.body.remaining:
            chunk = buffers[index % 2][: _fill(request, buffers[index % 2])]
            if pending is not None:
                pending.result()
            pending = _HASHERS.submit(digest.update, chunk)
            _write_all(fd, chunk)
            index += 1
    finally:
        if pending is not None:
            pending.result()
    return digest.hexdigest()


def _write_all(fd: int, data: memoryview) -> None:
    written = 0
    while written < len(data):
        written += os.write(fd, data[written:])


def _get_object(store: FileObjectStore, request: Request) -> Response:
    store.verify_url("GET", request.path, request.query)
    paths = store.object_files(request.params["key"])
    files = [(path, path.stat().st_size) for path in paths]
    size = sum(length for _, length in files)
    common = (("Accept-Ranges", "bytes"), ("Content-Type", "binary/octet-stream"))
    byte_range = parse_range(request.headers.get("Range"), size)
    headers: tuple[tuple[str, str], ...]
    if byte_range is None:
        first, last, status, headers = 0, size - 1, 200, common
    else:
        first, last = byte_range
        content_range = ("Content-Range", f"bytes {first}-{last}/{size}")
        status, headers = 206, (*common, content_range)
    slices = _slices(files, first, last)
    if not slices:  # an empty object
        return Response(status, headers=headers)
    return Response(
        status, headers=headers, file_slice=slices[0], more_slices=tuple(slices[1:])
    )


def _slices(files: list[tuple[Path, int]], first: int, last: int) -> list[FileSlice]:
    """The pieces of the files (one object, concatenated) from `first` to `last`."""
    slices = []
    start = 0  # of the current file within the object
    for path, length in files:
        begin, end = max(first, start), min(last + 1, start + length)
        if begin < end:
            slices.append(FileSlice(path, begin - start, end - begin))
        start += length
    return slices
