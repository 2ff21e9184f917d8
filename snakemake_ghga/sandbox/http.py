"""The sandbox's HTTP plumbing: routing and the threaded HTTP/1.1 server.

Imports only the stdlib and the sandbox's `messages`, `problems`, `faults` and
`requestlog`; re-exports the message types for the services.
Services register routes here; this module knows nothing of GHGA.

Implementation notes:
- `ThreadingHTTPServer` with HTTP/1.1 keep-alive and daemon threads; every
  answer carries a Content-Length so connections can be reused.
- File bodies go out with `socket.sendfile` (zero copy); request bodies are
  read by handlers through `BodyReader`, never buffered whole by the server.
- A fault decided for a request is applied here: a 503 instead of the
  handler's answer, or the connection cut halfway through the body.
- So is the WAN model (`wan.Link`): one round trip before every response,
  and every body, read or sent, paced per connection and in total.
"""

import contextlib
import logging
import re
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal
from urllib.parse import parse_qsl, unquote, urlsplit

from .faults import Fault, FaultInjector
from .messages import (
    BodyReader,
    ConnectionCut,
    FileSlice,
    Pacer,
    Request,
    Response,
    json_response,
)
from .problems import HttpProblem, S3Problem, json_problem_body, s3_error_body
from .requestlog import RequestLog
from .wan import PACED_SOCKET_BUFFER_BYTES, Link

__all__ = [
    "BodyReader",
    "FileSlice",
    "Request",
    "Response",
    "RouteKind",
    "Router",
    "SandboxHttpServer",
    "json_response",
]

logger = logging.getLogger(__name__)

RouteKind = Literal["health", "api", "object"]
_ServerRequest = socket.socket | tuple[bytes, socket.socket]
_Address = tuple[str, int]
_DRAIN_LIMIT_BYTES = 1 << 20
_IDLE_TIMEOUT_S = 300


Handler = Callable[[Request], Response]


@dataclass(frozen=True, slots=True)
class _Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    kind: RouteKind


class Router:
    """Maps method + path to handlers; the path patterns use named groups."""

    def __init__(self) -> None:
        self._routes: list[_Route] = []

    def add(self, method: str, pattern: str, handler: Handler, kind: RouteKind) -> None:
        """Register a handler for `method` and a full-match regex `pattern`."""
        self._routes.append(_Route(method, re.compile(pattern), handler, kind))

    def match(self, method: str, path: str) -> tuple[_Route | None, dict[str, str]]:
        """Find the route; (None, {}) if none, raising 405 for a wrong method."""
        allowed = False
        for route in self._routes:
            found = route.pattern.fullmatch(path)
            if found:
                if route.method == method:
                    return route, found.groupdict()
                allowed = True
        if allowed:
            raise HttpProblem(405, "methodNotAllowed", f"{method} not allowed here")
        return None, {}


def _problem_response(err: HttpProblem | S3Problem, path: str) -> Response:
    if isinstance(err, S3Problem):
        xml = (("Content-Type", "application/xml"),)
        return Response(err.status, s3_error_body(err, path), xml)
    headers = (("Content-Type", "application/json"),)
    return Response(err.status, json_problem_body(err), headers)


def _fault_response(kind: RouteKind, path: str) -> Response:
    if kind == "object":
        problem = S3Problem(503, "SlowDown", "Please reduce your request rate.")
        return _problem_response(problem, path)
    return _problem_response(
        HttpProblem(503, "serviceUnavailable", "injected fault"), path
    )


class SandboxHttpServer(ThreadingHTTPServer):
    """A threaded HTTP/1.1 server that routes to the sandbox services."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(
        self,
        port: int,
        router: Router,
        faults: FaultInjector,
        log: RequestLog,
        link: Link | None = None,
    ) -> None:
        self.link = link
        super().__init__(("127.0.0.1", port), _Handler)
        self.router = router
        self.faults = faults
        self.log = log
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def server_bind(self) -> None:
        """Bind; under a paced link, with small buffers that accepted sockets inherit.

        Without this the kernel would take megabytes of a request body ahead
        of the model (loopback buffers grow to several MiB).
        """
        if self.link is not None and self.link.model.paced:
            for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
                self.socket.setsockopt(
                    socket.SOL_SOCKET, option, PACED_SOCKET_BUFFER_BYTES
                )
        super().server_bind()

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT` of the bound socket."""
        return f"http://127.0.0.1:{self.server_address[1]}"

    def process_request(
        self, request: "_ServerRequest", client_address: "_Address"
    ) -> None:
        """Remember the connection so that `close_connections` can reach it."""
        if isinstance(request, socket.socket):
            with self._connections_lock:
                self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: "_ServerRequest") -> None:
        """Forget the connection, then close it."""
        if isinstance(request, socket.socket):
            with self._connections_lock:
                self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(
        self, request: "_ServerRequest", client_address: "_Address"
    ) -> None:
        """Log instead of printing tracebacks; clients hanging up are routine."""
        logger.debug(
            "connection from %s ended abnormally", client_address, exc_info=True
        )

    def close_connections(self) -> None:
        """Shut down every open keep-alive connection (used by stop)."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = _IDLE_TIMEOUT_S
    # Headers and body go out in separate sends: with Nagle's algorithm the
    # body would wait for the ACK of the headers, which a client delays up to
    # 40 ms (delayed ACK), on every response. Servers like S3 and nginx do
    # the same.
    disable_nagle_algorithm = True
    server: SandboxHttpServer
    pacer: Pacer | None = None

    def setup(self) -> None:
        """Set up the connection, with its own pacer under a WAN model."""
        super().setup()
        if self.server.link is not None:
            self.pacer = self.server.link.new_connection()

    def log_message(self, format: str, *args: object) -> None:
        """Silence http.server's stderr log; requests.jsonl has every request."""

    def do_GET(self) -> None:
        self._dispatch()

    do_PUT = do_POST = do_PATCH = do_DELETE = do_HEAD = do_GET

    def _dispatch(self) -> None:
        request = self._make_request()
        if request is None:
            return
        try:
            route, request.params = self.server.router.match(
                request.method, request.path
            )
        except HttpProblem as err:
            self._finish(request, _problem_response(err, request.path), None)
            return
        if route is None:
            problem = HttpProblem(404, "notFound", f"no route for {request.path}")
            self._finish(request, _problem_response(problem, request.path), None)
            return
        fault = self.server.faults.roll(route.kind)
        if fault == Fault.UNAVAILABLE:
            self._finish(request, _fault_response(route.kind, request.path), fault)
            return
        if fault == Fault.CUT and request.method == "PUT":
            request.body.cut_halfway()
        response = self._run(route.handler, request)
        if response is None:  # the body was cut: drop the connection unanswered
            self.server.log.append(
                request.method,
                request.path,
                0,
                request.body.consumed,
                fault.value if fault else None,
            )
            self.close_connection = True
            return
        self._finish(request, response, fault)

    def _make_request(self) -> Request | None:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self.send_error(411, "chunked request bodies are not supported")
            self.close_connection = True
            return None
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        return Request(
            self.command,
            unquote(split.path),
            dict(parse_qsl(split.query)),
            self.headers,
            BodyReader(self.rfile, length, self.pacer),
            base_url=self.server.base_url,
        )

    def _run(self, handler: Handler, request: Request) -> Response | None:
        try:
            return handler(request)
        except (HttpProblem, S3Problem) as err:
            return _problem_response(err, request.path)
        except (ConnectionCut, ConnectionError):  # injected, or the client left
            return None
        except Exception:
            logger.exception(
                "sandbox handler failed for %s %s", request.method, request.path
            )
            problem = HttpProblem(500, "internalError", "sandbox handler failed")
            return _problem_response(problem, request.path)

    def _finish(
        self, request: Request, response: Response, fault: Fault | None
    ) -> None:
        """Log, then answer: a client that has the answer finds it in the log."""
        self._settle_body(request)
        cut = fault == Fault.CUT
        length = 0 if request.method == "HEAD" else response.body_length
        sending = length // 2 if cut else length
        size = request.body.consumed if request.method == "PUT" else sending
        fault_name = fault.value if fault else None
        self.server.log.append(
            request.method, request.path, response.status, size, fault_name
        )
        if self.server.link is not None:
            self.server.link.round_trip()
        self.send_response(response.status)
        for name, value in response.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(response.body_length))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        try:
            self._send_body(response, sending, cut)
        except OSError:  # the client hung up mid-body
            self.close_connection = True

    def _settle_body(self, request: Request) -> None:
        """Drain a small unread body to keep the connection; else close it."""
        if request.body.remaining > _DRAIN_LIMIT_BYTES:
            self.close_connection = True
            return
        try:
            request.body.read_all(_DRAIN_LIMIT_BYTES)
        except (ConnectionError, ConnectionCut, HttpProblem):
            self.close_connection = True

    def _send_body(self, response: Response, length: int, cut: bool) -> None:
        if response.file_slice is None:
            self._send_bytes(response.body[:length])
        else:
            for piece in response.slices:
                sent = self._send_file(piece, length)
                length -= sent
        if cut:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)

    def _send_bytes(self, body: bytes) -> None:
        if self.pacer is None:
            self.wfile.write(body)
            return
        view = memoryview(body)
        for start in range(0, len(view), self.pacer.chunk_bytes):
            piece = view[start : start + self.pacer.chunk_bytes]
            self.pacer.take(len(piece))
            self.connection.sendall(piece)

    def _send_file(self, file_slice: FileSlice, limit: int) -> int:
        """Send up to `limit` bytes of a slice, paced if there is a pacer."""
        total = min(limit, file_slice.length)
        if total <= 0:  # socket.sendfile treats count=0 as "to the end"
            return 0
        step = total if self.pacer is None else self.pacer.chunk_bytes
        with open(file_slice.path, "rb") as handle:
            for start in range(0, total, step):
                size = min(step, total - start)
                if self.pacer is not None:
                    self.pacer.take(size)
                self.connection.sendfile(handle, file_slice.offset + start, size)
        return total
