"""How many parts to keep in flight, learned while they move; layer 1, stdlib only.

On loopback the CPU is the limit and a few parts in flight are plenty. On a
far network one connection carries only what its TCP window (or the
provider's per-connection rate) allows, so a 40 ms path needs a dozen or more;
and many small files are bound by round trips, which only more requests in
flight hide. No fixed number serves both, so by default the engine learns it:

- ``ConcurrencyController`` is pure logic. The engine reports every finished
  part request (when it started and ended, its bytes) with the process CPU
  seconds and how often a part had to wait for a slot so far. Its throughput
  estimate at limit L is L × the median rate of the requests that *started*
  at L: bytes handed to a socket are no measure (an upload's first megabytes
  vanish into kernel buffers at once), a finished request is.
- Start at ``NEAR_START``, right for loopback and a LAN, where a few
  connections fill the path and more only contend for the cores. The
  client tells the limiter the API's round trip before the first part; from
  ``FAR_ROUND_TRIP_S`` on it starts at ``FAR_START`` instead: a dozen fill a
  40 ms path at 100 Mbit/s per connection from the first part on, where each
  probe costs a part's duration (seconds of a short transfer).
  Once ``SAMPLES`` requests have finished at the current
  limit, and the limit was binding (a part waited) and the CPU is not
  saturated, *probe*: double the limit (after the first failed probe, raise
  it by a quarter) and judge it on the requests that start at the new limit:
  if the estimate grew by ``GAIN`` the limit stays and the next probe
  follows; otherwise the previous limit comes back and probing pauses for
  ``HOLD_S`` (conditions change: more files start, other traffic ends).
- A 429 or 503 from storage halves the limit; a saturated CPU (process CPU
  seconds per second ≥ ``CPU_SATURATED`` × cores) takes a quarter off, never
  below the cores (each part in flight keeps at most one core busy with its
  cipher and checksums); both pause probing. The limit stays within 1..cap, the cap
  being what memory allows (``TransferConfig.worker_cap``).
- ``PartGate`` is the limit the engine's workers pass before each attempt;
  its limit may change at any time. ``PartLimiter`` ties the two to the
  clocks for the engine; with a fixed ``--max-workers`` it is a plain gate.
"""

import logging
import os
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "BufferPool",
    "ConcurrencyController",
    "PartGate",
    "PartLimiter",
    "usable_cores",
]

logger = logging.getLogger(__name__)

NEAR_START = 4
FAR_START = 12
FAR_ROUND_TRIP_S = 0.005
SAMPLES = 3
GAIN = 0.1
HOLD_S = 5.0
CPU_SATURATED = 0.9


def usable_cores() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


@dataclass
class _Period:
    """Requests that started at one limit: since ``start`` (time, CPU, waits)."""

    start: float
    cpu_s: float
    waits: int
    rates: list[float]


class ConcurrencyController:
    """Decides the parts in flight from finished requests; no threads, no clock."""

    def __init__(self, cap: int, *, cores: int, start: int = NEAR_START) -> None:
        self.cap = cap
        self.limit = max(1, min(start, cap))
        self._floor = min(self.limit, max(2, cores))  # the CPU cut's lowest
        self._cores = cores
        self._period: _Period | None = None
        self._probe_from: tuple[int, float] | None = None  # (limit, its estimate)
        self._doubling = True
        self._hold_until = 0.0

    def finished(
        self, now: float, started: float, size: int, cpu_s: float, waits: int
    ) -> int:
        """Note a finished request; return the limit (it may have changed).

        Args:
            now: when it ended, on a monotonic clock.
            started: when it started (got its slot).
            size: its bytes.
            cpu_s: CPU seconds this process used so far.
            waits: how many times a part had to wait for a slot so far.
        """
        period = self._period
        if period is None:
            period = self._period = _Period(0.0, 0.0, 0, [])
        if started >= period.start:
            period.rates.append(size / max(now - started, 1e-6))
        if len(period.rates) >= min(SAMPLES, self.limit):
            elapsed = max(now - period.start, 1e-6)
            saturated = (cpu_s - period.cpu_s) / elapsed >= CPU_SATURATED * self._cores
            estimate = self.limit * statistics.median(period.rates)
            self._decide(now, estimate, saturated, waits > period.waits)
            self._period = _Period(now, cpu_s, waits, [])
        return self.limit

    def round_trip(self, seconds: float) -> int:
        """The path's round trip is known: a far one starts at ``FAR_START``.

        Only before any request finished: what they showed counts more.
        """
        if self._period is None and seconds >= FAR_ROUND_TRIP_S:
            self.limit = max(self.limit, min(self.cap, FAR_START))
        return self.limit

    def throttled(self, now: float) -> int:
        """Storage answered 429 or 503: halve the limit and pause probing."""
        self._retreat(now, max(1, self.limit // 2))
        self._period = None
        return self.limit

    def _decide(
        self, now: float, estimate: float, saturated: bool, binding: bool
    ) -> None:
        if self._probe_from is not None:
            before, before_estimate = self._probe_from
            self._probe_from = None
            if saturated or estimate < before_estimate * (1 + GAIN):
                self._retreat(now, before)
                return
        if saturated:
            if self.limit > self._floor:
                cut = max(1, self.limit // 4)
                self._retreat(now, max(self._floor, self.limit - cut))
            return
        if binding and now >= self._hold_until and self.limit < self.cap:
            self._probe_from = (self.limit, estimate)
            step = self.limit if self._doubling else max(1, self.limit // 4)
            self.limit = min(self.cap, self.limit + step)

    def _retreat(self, now: float, limit: int) -> None:
        self._probe_from = None
        self._doubling = False
        self._hold_until = now + HOLD_S
        self.limit = max(1, min(self.cap, limit))


class PartGate:
    """Lets at most ``limit`` holders through, first come first served.

    The limit may change at any time. Order matters: parts are submitted in
    file order, and a download's checksum is read back in file order, so a
    part overtaken by later ones would hold the read-back up.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._held = 0
        self.waits = 0  # acquires that found every slot taken
        self._queue: deque[object] = deque()  # waiting acquires, oldest first
        self._cond = threading.Condition()

    @property
    def limit(self) -> int:
        """The current limit."""
        return self._limit

    def set_limit(self, limit: int) -> None:
        """Change the limit; a raise lets waiting parts through at once."""
        with self._cond:
            self._limit = limit
            self._cond.notify_all()

    def acquire(self, stopped: Callable[[], bool]) -> bool:
        """Take a slot; False once ``stopped()`` is true, even if one is free.

        A part that waited must not start after a stop (Ctrl-C): the slot it
        gets was freed by a part the stop cut off.
        """
        ticket = object()
        with self._cond:
            if self._held >= self._limit:
                self.waits += 1
            self._queue.append(ticket)
            try:
                while not stopped():
                    if self._held < self._limit and self._queue[0] is ticket:
                        break
                    self._cond.wait(0.2)  # wakes to see a stop
                else:
                    return False
            finally:
                self._queue.remove(ticket)
                self._cond.notify_all()  # the next in line may go (or see a stop)
            self._held += 1
            return True

    def release(self) -> None:
        """Give a slot back."""
        with self._cond:
            self._held -= 1
            self._cond.notify_all()  # only the oldest waiter may take it


class BufferPool:
    """Reused buffers of one size: as many exist as were ever in use at once.

    Buffers follow the gate's slots, not threads: the pool's threads are sized
    to the cap, and a per-thread buffer would end up in every one of them.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._free: list[memoryview] = []
        self._lock = threading.Lock()

    def take(self) -> memoryview:
        """A buffer of ``size`` bytes, reused if one is free."""
        with self._lock:
            if self._free:
                return self._free.pop()
        return memoryview(bytearray(self._size))

    def give(self, buffer: memoryview) -> None:
        """Return a buffer for reuse."""
        with self._lock:
            self._free.append(buffer)


class PartLimiter:
    """The engine's gate; adapts its limit when ``fixed`` is None."""

    def __init__(
        self,
        fixed: int | None,
        cap: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        cpu_clock: Callable[[], float] = time.process_time,
    ) -> None:
        self._controller: ConcurrencyController | None = None
        if fixed is None:
            self._controller = ConcurrencyController(cap, cores=usable_cores())
            fixed = self._controller.limit
        self.gate = PartGate(fixed)
        self.clock, self._cpu_clock = clock, cpu_clock
        self._lock = threading.Lock()

    @property
    def limit(self) -> int:
        """Parts allowed in flight now."""
        return self.gate.limit

    def finished(self, started: float, size: int) -> None:
        """A request that got its slot at ``started`` moved ``size`` bytes."""
        if self._controller is None:
            return
        with self._lock:
            limit = self._controller.finished(
                self.clock(), started, size, self._cpu_clock(), self.gate.waits
            )
            self._set(limit)

    def _set(self, limit: int) -> None:
        if limit != self.gate.limit:
            logger.debug("parts in flight: %d -> %d", self.gate.limit, limit)
            self.gate.set_limit(limit)

    def round_trip(self, seconds: float | None) -> None:
        """The API's round trip (None: unknown); call before the first part."""
        if self._controller is None or seconds is None:
            return
        with self._lock:
            self._set(self._controller.round_trip(seconds))

    def throttled(self) -> None:
        """Storage asked us to slow down (429/503)."""
        if self._controller is None:
            return
        with self._lock:
            self._set(self._controller.throttled(self.clock()))
