"""ConcurrencyController, PartGate and PartLimiter against simulated paths."""

import threading
from collections.abc import Callable

from snakemake_ghga.transfer.concurrency import (
    HOLD_S,
    START,
    ConcurrencyController,
    PartGate,
    PartLimiter,
)

MB = 1_000_000
PART = 8 * MB


class SimulatedPath:
    """Parts of 8 MB moving over a path; throughput and CPU depend on the limit.

    With ``limit`` parts in flight each takes ``limit * PART / rate(limit)``
    seconds, and one finishes every ``PART / rate(limit)`` seconds.
    """

    def __init__(
        self,
        rate: Callable[[int], float],
        cpu: Callable[[int], float] = lambda limit: 0.2,
        binding: bool = True,
    ) -> None:
        self.rate, self.cpu, self.binding = rate, cpu, binding
        self.now = self.cpu_s = 0.0
        self.waits = 0
        self.limits: list[int] = []

    def run(self, controller: ConcurrencyController, seconds: float) -> int:
        end = self.now + seconds
        while self.now < end:
            limit = controller.limit
            step = PART / self.rate(limit)
            self.now += step
            self.cpu_s += self.cpu(limit) * step
            self.waits += self.binding
            started = self.now - limit * step
            controller.finished(self.now, started, PART, self.cpu_s, self.waits)
            self.limits.append(controller.limit)
        return controller.limit

    def limits_since(self, count: int) -> list[int]:
        return self.limits[-count:]


def wan(per_connection: float, total: float) -> Callable[[int], float]:
    """Each connection carries at most ``per_connection``; all share ``total``."""
    return lambda limit: min(limit * per_connection, total)


def test_far_network_raises_until_the_link_is_full_and_quickly() -> None:
    # 40 ms path: 12.5 MB/s per connection, 125 MB/s in total: 10 are needed
    path = SimulatedPath(wan(12.5 * MB, 125 * MB))
    controller = ConcurrencyController(32, cores=2)
    assert controller.limit == START
    path.run(controller, 3.0)
    assert controller.limit >= 10  # doubled 8 -> 16 within 3 s
    final = path.run(controller, 30.0)
    assert 10 <= final <= 32
    assert path.rate(final) == 125 * MB


def test_cpu_bound_loopback_stays_at_the_start() -> None:
    # more parts do not move more bytes, and the CPU is busy: never raise
    path = SimulatedPath(lambda limit: 900 * MB, cpu=lambda limit: 1.95)
    controller = ConcurrencyController(32, cores=2)
    assert path.run(controller, 20.0) == START
    assert set(path.limits) == {START}


def test_a_probe_without_gain_returns_to_the_previous_limit_and_holds() -> None:
    path = SimulatedPath(lambda limit: 300 * MB)  # flat, CPU idle: e.g. a server limit
    controller = ConcurrencyController(32, cores=2)
    path.run(controller, 1.0)
    assert max(path.limits) == 2 * START  # one probe
    assert controller.limit == START  # given back
    before = len(path.limits)
    path.run(controller, HOLD_S * 0.8)
    assert set(path.limits[before:]) == {START}  # held: no new probe
    path.run(controller, HOLD_S)
    assert max(path.limits) == 2 * START
    assert START + START // 4 in path.limits  # later probes are smaller


def test_limit_is_not_raised_when_parts_never_wait() -> None:
    # few parts to move (e.g. one small file): the limit is not what holds them
    path = SimulatedPath(wan(12.5 * MB, 125 * MB), binding=False)
    controller = ConcurrencyController(32, cores=2)
    assert path.run(controller, 5.0) == START


def test_cap_bounds_the_limit() -> None:
    path = SimulatedPath(wan(1 * MB, 1000 * MB))  # would want 1000 connections
    controller = ConcurrencyController(12, cores=2)
    path.run(controller, 30.0)
    assert max(path.limits) == 12


def test_throttling_halves_the_limit_and_pauses_probing() -> None:
    path = SimulatedPath(wan(12.5 * MB, 125 * MB))
    controller = ConcurrencyController(32, cores=2)
    high = path.run(controller, 3.0)
    assert high >= 16
    assert controller.throttled(path.now) == high // 2
    before = len(path.limits)
    path.run(controller, HOLD_S * 0.8)
    assert set(path.limits[before:]) == {high // 2}


def test_saturated_cpu_takes_back_a_quarter_but_not_below_the_start() -> None:
    busy = {"cpu": 0.2}
    path = SimulatedPath(wan(12.5 * MB, 125 * MB), cpu=lambda limit: busy["cpu"])
    controller = ConcurrencyController(32, cores=2)
    high = path.run(controller, 3.0)
    busy["cpu"] = 1.9
    path.run(controller, 5.0)
    assert START <= controller.limit < high
    path.run(controller, 60.0)
    assert controller.limit == START


def test_gate_holds_parts_over_the_limit_until_it_is_raised() -> None:
    gate = PartGate(1)
    assert gate.acquire(lambda: False)
    passed = threading.Event()

    def second() -> None:
        if gate.acquire(lambda: False):
            passed.set()

    thread = threading.Thread(target=second)
    thread.start()
    assert not passed.wait(0.3)
    gate.set_limit(2)
    assert passed.wait(2)
    thread.join()
    assert gate.waits == 1


def test_gate_gives_up_waiting_when_stopped() -> None:
    gate = PartGate(1)
    assert gate.acquire(lambda: False)
    stop = threading.Event()
    result: list[bool] = []
    thread = threading.Thread(target=lambda: result.append(gate.acquire(stop.is_set)))
    thread.start()
    stop.set()
    thread.join(2)
    assert result == [False]
    gate.release()
    assert gate.acquire(lambda: False)  # the slot is free again


def test_fixed_limiter_never_changes_and_adaptive_one_starts_low() -> None:
    clock = {"now": 0.0}
    fixed = PartLimiter(7, 32, clock=lambda: clock["now"], cpu_clock=lambda: 0.0)
    adaptive = PartLimiter(None, 32, clock=lambda: clock["now"], cpu_clock=lambda: 0.0)
    assert (fixed.limit, adaptive.limit) == (7, START)
    for _ in range(40):  # each request takes 1 s whatever the limit: a far path
        started = clock["now"]
        clock["now"] += 1.0
        adaptive.gate.waits += 1  # parts are waiting
        for limiter in (fixed, adaptive):
            limiter.finished(started, PART)
    fixed.throttled()
    assert fixed.limit == 7
    assert adaptive.limit > START
