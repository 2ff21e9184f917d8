"""A model of a slow, far network link for the sandbox's HTTP server.

Imports only the stdlib. Three knobs, as a user 20-100 ms from GHGA sees them:
- latency: every response waits one round trip before its first byte;
- per-connection rate: the bytes each connection moves (request bodies read,
  response bodies sent) are paced by its own token bucket, as one TCP
  connection is limited by its window / round trip;
- total rate: one token bucket shared by all connections, the access link.

It is a model, not an emulator: no packet loss, no slow start, no handshake
round trips, no queueing delay growing with load (see docs/sandbox.md).

Each bucket is a GCRA meter ("virtual scheduling"): it keeps the time at which
the bytes granted so far would have passed at the rate, and a caller waits
until that time minus one chunk's worth of burst. Over any interval T a
bucket passes at most rate * T + one chunk, whatever the callers do.
"""

import threading
import time
from dataclasses import dataclass

from snakemake_ghga.errors import ConfigError

__all__ = [
    "PACED_SOCKET_BUFFER_BYTES",
    "PACE_CHUNK_BYTES",
    "ConnectionPacer",
    "Link",
    "TokenBucket",
    "WanModel",
]

# Bodies move in pieces of this size when paced: small enough that a piece
# takes ~5 ms at 100 Mbit/s, large enough to cost little CPU.
PACE_CHUNK_BYTES = 64 * 1024
# Socket buffers of a paced connection, so that the kernel does not absorb
# megabytes ahead of the model (about 40 ms at 100 Mbit/s).
PACED_SOCKET_BUFFER_BYTES = 512 * 1024
_BYTES_PER_MEGABIT = 125_000


def _rate_bytes_per_s(option: str, mbps: float | None) -> float | None:
    if mbps is None:
        return None
    if not mbps > 0:
        raise ConfigError(
            f"{option} must be a positive number of Mbit/s, got {mbps}",
            f"Leave {option} out for an unlimited rate",
        )
    return mbps * _BYTES_PER_MEGABIT


class TokenBucket:
    """Paces bytes to `rate` bytes/s with a burst of one chunk; thread-safe."""

    def __init__(self, rate_bytes_per_s: float, burst_bytes: int = PACE_CHUNK_BYTES):
        self.rate = rate_bytes_per_s
        self._burst_s = burst_bytes / rate_bytes_per_s
        self._due = 0.0  # when the bytes granted so far have passed at the rate
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"TokenBucket({self.rate * 8 / 1e6:g} Mbit/s)"

    def reserve(self, size: int) -> float:
        """Grant `size` bytes; return the monotonic time they may be sent at."""
        with self._lock:
            self._due = max(self._due, time.monotonic()) + size / self.rate
            return self._due - self._burst_s

    def take(self, size: int) -> None:
        """Wait until `size` more bytes may pass."""
        _sleep_until(self.reserve(size))


def _sleep_until(moment: float) -> None:
    delay = moment - time.monotonic()
    if delay > 0:
        time.sleep(delay)


class ConnectionPacer:
    """Paces one connection: its own bucket first, then the shared one."""

    chunk_bytes = PACE_CHUNK_BYTES

    def __init__(self, own: TokenBucket | None, shared: TokenBucket | None) -> None:
        self._buckets = [b for b in (own, shared) if b is not None]

    def take(self, size: int) -> None:
        """Wait until `size` more bytes may pass on this connection."""
        for bucket in self._buckets:  # in order: a queued connection holds no share
            bucket.take(size)


@dataclass(frozen=True, slots=True)
class WanModel:
    """The link between the sandbox and its clients.

    Args:
        latency_ms: one round trip, waited before every response.
        connection_mbps: the rate of each connection (None: unlimited).
        total_mbps: the rate all connections share (None: unlimited).
    """

    latency_ms: float = 0.0
    connection_mbps: float | None = None
    total_mbps: float | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.latency_ms <= 60_000:
            raise ConfigError(
                f"--latency-ms must be within [0, 60000], got {self.latency_ms}"
            )
        _rate_bytes_per_s("--connection-mbps", self.connection_mbps)
        _rate_bytes_per_s("--total-mbps", self.total_mbps)

    @property
    def active(self) -> bool:
        """Whether the model changes anything (else the server runs unshaped)."""
        return bool(self.latency_ms or self.paced)

    @property
    def paced(self) -> bool:
        """Whether bodies are paced at all."""
        return self.connection_mbps is not None or self.total_mbps is not None

    def describe(self) -> str:
        """One line for the log, e.g. `WAN model: 40 ms round trip, …`."""
        per = (
            f"{self.connection_mbps:g} Mbit/s" if self.connection_mbps else "unlimited"
        )
        total = f"{self.total_mbps:g} Mbit/s" if self.total_mbps else "unlimited"
        return (
            f"WAN model: {self.latency_ms:g} ms round trip, {per} per connection, "
            f"{total} in total"
        )


class Link:
    """A running `WanModel`: the shared bucket, and a pacer per connection."""

    def __init__(self, model: WanModel) -> None:
        self.model = model
        self.latency_s = model.latency_ms / 1000
        total = _rate_bytes_per_s("--total-mbps", model.total_mbps)
        self._shared = TokenBucket(total) if total else None
        self._per_connection = _rate_bytes_per_s(
            "--connection-mbps", model.connection_mbps
        )

    def __repr__(self) -> str:
        return f"Link({self.model})"

    def new_connection(self) -> ConnectionPacer | None:
        """The pacer of a new connection; None if bodies are not paced."""
        if not self.model.paced:
            return None
        own = TokenBucket(self._per_connection) if self._per_connection else None
        return ConnectionPacer(own, self._shared)

    def round_trip(self) -> None:
        """Wait one round trip (before a response)."""
        if self.latency_s:
            time.sleep(self.latency_s)
