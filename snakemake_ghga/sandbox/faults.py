"""Deterministic fault injection for the sandbox's API and object requests.

Imports only the stdlib. One seeded `random.Random` decides, request by
request and under a lock, whether a fault hits: with probability `rate` an
API request answers 503, and an object request either answers 503 or has its
transfer cut halfway through the body (even odds). The same seed and the same
request order give the same faults. Health checks are never hit: the official
client checks health without retries, so a fault there tests nothing.
"""

import enum
import random
import threading

__all__ = ["Fault", "FaultInjector"]


class Fault(enum.Enum):
    """What an injected fault does to one request."""

    UNAVAILABLE = "503"
    CUT = "cut"


class FaultInjector:
    """Decides per request whether and which fault to inject."""

    def __init__(self, rate: float = 0.0, seed: int = 0) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"fault rate must be within [0, 1], got {rate}")
        self.rate = rate
        self._random = random.Random(seed)
        self._lock = threading.Lock()

    def roll(self, kind: str) -> Fault | None:
        """Return the fault for the next request of `kind` (health/api/object)."""
        if self.rate == 0.0 or kind == "health":
            return None
        with self._lock:
            if self._random.random() >= self.rate:
                return None
            if kind == "object" and self._random.random() < 0.5:
                return Fault.CUT
            return Fault.UNAVAILABLE
