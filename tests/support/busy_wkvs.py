"""A loopback WKVS that answers 503 + ``Retry-After`` a few times, then its values.

requests-mock replaces the transport adapter and so bypasses urllib3's
retries; this real server does not.
"""

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["busy_wkvs"]

VALUES = {
    "wps_api_url": "https://ghga.test/wps",
    "ucs_api_url": "https://ghga.test/ucs",
    "dcs_api_url": "https://ghga.test/dcs",
    "crypt4gh_public_keys": {},
}


@contextmanager
def busy_wkvs(
    retry_after: str, busy_times: int = 1
) -> Iterator[tuple[str, list[float]]]:
    """Yield (WKVS URL, arrival times of its requests); ``VALUES`` once not busy."""
    arrivals: list[float] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            arrivals.append(time.monotonic())
            busy = len(arrivals) <= busy_times
            body = b"" if busy else json.dumps(VALUES).encode()
            self.send_response(503 if busy else 200)
            if busy:
                self.send_header("Retry-After", retry_after)
            else:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            """Keep the test output quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/.well-known", arrivals
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
