"""Requests and responses of the sandbox's HTTP server, independent of any service.

Imports only the stdlib and the sandbox's `problems`. A `BodyReader` hands a
request body out piecewise (never buffered whole by the server); a `Response`
carries bytes or `FileSlice`s that the server sends with sendfile. A `Pacer`
(the WAN model) may slow down what a connection reads.
"""

import json
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Protocol

from .problems import HttpProblem

__all__ = [
    "BodyReader",
    "ConnectionCut",
    "FileSlice",
    "Pacer",
    "Request",
    "Response",
    "json_response",
]

_MAX_JSON_BYTES = 1 << 20


class ConnectionCut(Exception):
    """Raised inside a handler when an injected fault cuts the request body."""


class BodyReader:
    """Reads exactly Content-Length request bytes, optionally cut by a fault."""

    def __init__(
        self, stream: "_Readable", length: int, pacer: "Pacer | None" = None
    ) -> None:
        self.length = length
        self.consumed = 0
        self._stream = stream
        self._pacer = pacer
        self._cut_at: int | None = None

    def cut_halfway(self) -> None:
        """Make the body end, for the handler, halfway (an injected fault)."""
        self._cut_at = self.length // 2

    @property
    def remaining(self) -> int:
        """Bytes of the body not read yet."""
        return self.length - self.consumed

    def readinto(self, buffer: memoryview) -> int:
        """Read up to len(buffer) body bytes; 0 at the end of the body.

        Raises:
            ConnectionCut: an injected fault cut the body here.
            ConnectionError: the client closed the connection early.
        """
        limit = min(len(buffer), self.remaining)
        if self._cut_at is not None:
            if self.consumed >= self._cut_at:
                raise ConnectionCut
            limit = min(limit, self._cut_at - self.consumed)
        if limit == 0:
            return 0
        if self._pacer is not None:
            limit = min(limit, self._pacer.chunk_bytes)
        got = self._stream.readinto(buffer[:limit])
        if not got:
            raise ConnectionError("client closed the connection mid-body")
        self.consumed += got
        if self._pacer is not None:
            self._pacer.take(got)
        return got

    def read_all(self, max_bytes: int) -> bytes:
        """Read the whole (small) body; HttpProblem 413 if it exceeds max_bytes."""
        if self.remaining > max_bytes:
            raise HttpProblem(413, "payloadTooLarge", "request body too large")
        data = bytearray(self.remaining)
        view = memoryview(data)
        while self.remaining:
            self.readinto(view[self.consumed :])
        return bytes(data)


class _Readable(Protocol):
    def readinto(self, buffer: memoryview, /) -> int | None: ...


class Pacer(Protocol):
    """Paces the bytes a connection moves (the sandbox's WAN model)."""

    chunk_bytes: int

    def take(self, size: int) -> None:
        """Wait until `size` more bytes may pass."""


@dataclass(slots=True)
class Request:
    """One parsed request as handed to a route handler."""

    method: str
    path: str
    query: dict[str, str]
    headers: Message
    body: BodyReader
    params: dict[str, str] = field(default_factory=dict)
    base_url: str = ""

    def json(self) -> object:
        """Parse the body as JSON; HttpProblem 422 if it is not."""
        raw = self.body.read_all(_MAX_JSON_BYTES)
        try:
            return json.loads(raw) if raw.strip() else None
        except ValueError:
            raise HttpProblem(422, "validationError", "body is not JSON") from None


@dataclass(frozen=True, slots=True)
class FileSlice:
    """A byte range of a file, sent with sendfile."""

    path: Path
    offset: int
    length: int


@dataclass(frozen=True, slots=True)
class Response:
    """A handler's answer: status, headers and either bytes or file slices.

    `more_slices` follow `file_slice` on the wire (an object kept as several
    part files).
    """

    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    file_slice: FileSlice | None = None
    more_slices: tuple[FileSlice, ...] = ()

    @property
    def slices(self) -> tuple[FileSlice, ...]:
        """Every file slice of the body, in order."""
        first = (self.file_slice,) if self.file_slice else ()
        return (*first, *self.more_slices)

    @property
    def body_length(self) -> int:
        """Bytes the body will have on the wire."""
        if self.file_slice is None:
            return len(self.body)
        return sum(piece.length for piece in self.slices)


def json_response(
    status: int, payload: object, headers: tuple[tuple[str, str], ...] = ()
) -> Response:
    """Answer with a JSON body."""
    body = json.dumps(payload).encode()
    return Response(status, body, (("Content-Type", "application/json"), *headers))
