"""The sandbox's request log: one JSON line per request in DIR/requests.jsonl.

Imports only the stdlib. Paths are logged without their query string, so
presigned URL signatures never reach the log.
"""

import json
import threading
import time
from pathlib import Path
from typing import TypedDict, cast

__all__ = ["RequestLog", "RequestLogEntry"]


class RequestLogEntry(TypedDict):
    """One logged request.

    `bytes` counts body bytes received (PUT) or sent (others; half the body
    when a fault cuts it). An entry is written before its answer goes out.
    `status` 0 means the connection was dropped unanswered (an injected cut,
    or the client left mid-body).
    """

    time: float
    method: str
    path: str
    status: int
    bytes: int
    fault: str | None


class RequestLog:
    """Appends request entries to a JSON-lines file, thread-safe."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def append(
        self, method: str, path: str, status: int, size: int, fault: str | None
    ) -> None:
        """Append one entry; status 0 means the connection was cut unanswered."""
        entry = RequestLogEntry(
            time=round(time.time(), 6),
            method=method,
            path=path,
            status=status,
            bytes=size,
            fault=fault,
        )
        line = json.dumps(entry) + "\n"
        with self._lock, open(self.path, "a", encoding="utf-8") as handle:
            handle.write(line)

    def entries(self) -> list[RequestLogEntry]:
        """Read every entry logged so far."""
        if not self.path.exists():
            return []
        with self._lock:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        return [cast(RequestLogEntry, json.loads(line)) for line in lines if line]
