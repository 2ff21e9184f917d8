"""A reverse proxy in front of the sandbox that rewrites chosen answers.

The sandbox is strict and correct; a hostile or broken GHGA is this proxy in
front of it. Every request is forwarded to the sandbox; every answer is read
whole (test files are small), the sandbox's address in its body is replaced
by the proxy's (so presigned URLs and service URLs lead back here; the
sandbox signs path and query, not the host), and then each matching rule may
change the status, headers or body. A rule may also change the path a
request is forwarded to, so that a made-up accession reaches a real file.
Loopback only, stopped by the test.
"""

import http.client
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import urlsplit

__all__ = ["Exchange", "HostileProxy"]


@dataclass
class Exchange:
    """One forwarded request and the answer the client will get."""

    method: str
    path: str  # as the client sent it, query included
    request_headers: dict[str, str]
    status: int = 0
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), None if absent."""
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def set_header(self, name: str, value: str | None) -> None:
        """Replace every ``name`` header by one with ``value`` (None: remove)."""
        self.headers = [(k, v) for k, v in self.headers if k.lower() != name.lower()]
        if value is not None:
            self.headers.append((name, value))

    def set_body(self, body: bytes) -> None:
        """Replace the body and its Content-Length."""
        self.body = body
        self.set_header("Content-Length", str(len(body)))


Rewrite = Callable[[Exchange], None]


@dataclass
class _Rule:
    method: str
    pattern: re.Pattern[str]
    rewrite: Rewrite


class HostileProxy:
    """Forwards to ``upstream`` (``http://127.0.0.1:PORT``) and rewrites answers."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self._rules: list[_Rule] = []
        self._path_maps: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` of the proxy."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def url_for(self, upstream_url: str) -> str:
        """The proxy's URL for a URL of the sandbox."""
        return upstream_url.replace(self.upstream, self.base_url)

    def on(self, method: str, path_regex: str, rewrite: Rewrite) -> None:
        """Apply ``rewrite`` to answers of ``method`` requests whose path matches."""
        with self._lock:
            self._rules.append(_Rule(method, re.compile(path_regex), rewrite))

    def map_path(self, sent: str, forwarded: str) -> None:
        """Forward requests whose path contains ``sent`` with ``forwarded`` instead."""
        with self._lock:
            self._path_maps.append((sent, forwarded))

    def start(self) -> "HostileProxy":
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="hostile-proxy",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> "HostileProxy":
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def fetch(
        self, method: str, path: str, headers: dict[str, str], body: bytes = b""
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """Send one request to the sandbox as is: (status, headers, body)."""
        netloc = urlsplit(self.upstream).netloc
        connection = http.client.HTTPConnection(netloc, timeout=60)
        try:
            sent = {k: v for k, v in headers.items() if k.lower() != "host"}
            connection.request(method, path, body=body or None, headers=sent)
            answer = connection.getresponse()
            received = [
                (k, v) for k, v in answer.getheaders() if k.lower() != "connection"
            ]
            return answer.status, received, answer.read()
        finally:
            connection.close()

    def forward(self, exchange: Exchange, body: bytes) -> None:
        """Send the request upstream and fill in the (rewritten) answer."""
        path = exchange.path
        with self._lock:
            for sent, forwarded in self._path_maps:
                path = path.replace(sent, forwarded)
            rules = [
                rule
                for rule in self._rules
                if rule.method == exchange.method
                and rule.pattern.search(urlsplit(exchange.path).path)
            ]
        exchange.status, exchange.headers, data = self.fetch(
            exchange.method, path, exchange.request_headers, body
        )
        exchange.set_body(data.replace(self.upstream.encode(), self.base_url.encode()))
        for rule in rules:
            rule.rewrite(exchange)


def _handler_for(proxy: HostileProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: the sandbox logs the requests."""

        def _relay(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            exchange = Exchange(self.command, self.path, dict(self.headers.items()))
            proxy.forward(exchange, body)
            self.send_response_only(exchange.status)
            for key, value in exchange.headers:
                self.send_header(key, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(exchange.body)

        do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = do_HEAD = _relay

    return Handler
