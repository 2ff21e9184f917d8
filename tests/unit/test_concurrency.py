"""ConcurrencyController, PartGate and PartLimiter against simulated paths."""

import threading
from collections.abc import Callable

from snakemake_ghga.transfer.concurrency import (
    FAR_START,
    HOLD_S,
    NEAR_START,
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


def test_a_far_path_starts_high_a_near_one_low_and_parts_count_more() -> None:
    near = ConcurrencyController(32, cores=2)
    assert near.round_trip(0.001) == NEAR_START
    far = ConcurrencyController(32, cores=2)
    assert far.round_trip(0.040) == FAR_START
    assert ConcurrencyController(8, cores=2).round_trip(0.040) == 8  # the cap
    finished = ConcurrencyController(32, cores=2)
    finished.finished(1.0, 0.5, PART, 0.1, 0)
    assert finished.round_trip(0.040) == NEAR_START  # too late: parts decide


def test_a_40_ms_link_is_full_from_the_start_and_stays_full() -> None:
    # 40 ms path: 12.5 MB/s per connection, 125 MB/s in total: 10 are needed
    path = SimulatedPath(wan(12.5 * MB, 125 * MB))
    controller = ConcurrencyController(32, cores=2)
    controller.round_trip(0.040)
    assert path.rate(controller.limit) == 125 * MB
    path.run(controller, 30.0)
    assert min(path.limits) >= 10


def test_a_100_ms_link_is_filled_within_two_part_durations() -> None:
    # 5 MB/s per connection, 125 MB/s in total: 25 are needed
    path = SimulatedPath(wan(5 * MB, 125 * MB))
    controller = ConcurrencyController(24, cores=2)
    controller.round_trip(0.100)
    path.run(controller, 3.5)  # a part takes 1.6 s: judged once at 12, at 24
    assert controller.limit == 24
    path.run(controller, 30.0)
    assert min(path.limits[-20:]) == 24


def test_cpu_bound_loopback_falls_to_the_cores() -> None:
    # more parts do not move more bytes, and the CPU is busy: never raise
    path = SimulatedPath(lambda limit: 900 * MB, cpu=lambda limit: 1.95)
    controller = ConcurrencyController(32, cores=2)
    assert path.run(controller, 20.0) == 2
    assert max(path.limits) == NEAR_START
    assert path.limits == sorted(path.limits, reverse=True)  # never raised


def test_a_probe_without_gain_returns_to_the_previous_limit_and_holds() -> None:
    path = SimulatedPath(lambda limit: 300 * MB)  # flat, CPU idle: e.g. a server limit
    controller = ConcurrencyController(32, cores=2)
    path.run(controller, 1.0)
    assert max(path.limits) == 2 * NEAR_START  # one probe
    assert controller.limit == NEAR_START  # given back
    before = len(path.limits)
    path.run(controller, HOLD_S * 0.8)
    assert set(path.limits[before:]) == {NEAR_START}  # held: no new probe
    path.run(controller, HOLD_S)
    assert max(path.limits) == 2 * NEAR_START
    assert NEAR_START + NEAR_START // 4 in path.limits  # later probes are smaller


def test_limit_is_not_raised_when_parts_never_wait() -> None:
    # few parts to move (e.g. one small file): the limit is not what holds them
    path = SimulatedPath(wan(12.5 * MB, 125 * MB), binding=False)
    controller = ConcurrencyController(32, cores=2)
    assert path.run(controller, 5.0) == NEAR_START


def test_cap_bounds_the_limit() -> None:
    path = SimulatedPath(wan(1 * MB, 1000 * MB))  # would want 1000 connections
    controller = ConcurrencyController(12, cores=2)
    path.run(controller, 30.0)
    assert max(path.limits) == 12


def test_throttling_halves_the_limit_and_pauses_probing() -> None:
    path = SimulatedPath(wan(5 * MB, 125 * MB))
    controller = ConcurrencyController(32, cores=2)
    controller.round_trip(0.100)
    high = path.run(controller, 4.0)
    assert high >= 24
    assert controller.throttled(path.now) == high // 2
    before = len(path.limits)
    path.run(controller, HOLD_S * 0.8)
    assert set(path.limits[before:]) == {high // 2}


def test_saturated_cpu_takes_back_a_quarter_but_not_below_the_cores() -> None:
    busy = {"cpu": 0.2}
    path = SimulatedPath(wan(5 * MB, 125 * MB), cpu=lambda limit: busy["cpu"])
    controller = ConcurrencyController(24, cores=4)
    controller.round_trip(0.100)
    high = path.run(controller, 10.0)
    assert high == 24
    busy["cpu"] = 3.9
    path.run(controller, 5.0)  # a part takes 1.6 s: a judgement or two
    assert controller.limit in (18, 14)  # a quarter off per judgement
    path.run(controller, 60.0)
    assert controller.limit == 4


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


def test_a_slot_freed_after_a_stop_starts_no_waiting_part() -> None:
    # Ctrl-C cuts the running part, which frees its slot: the part waiting
    # for it must not start a new request
    gate = PartGate(1)
    assert gate.acquire(lambda: False)
    stop = threading.Event()
    result: list[bool] = []
    thread = threading.Thread(target=lambda: result.append(gate.acquire(stop.is_set)))
    thread.start()
    stop.set()
    gate.release()
    thread.join(2)
    assert result == [False]
    assert not gate.acquire(stop.is_set)  # a free slot, but stopped


def test_parts_pass_the_gate_in_the_order_they_came() -> None:
    gate = PartGate(1)
    assert gate.acquire(lambda: False)
    order: list[int] = []
    threads = []
    for number in range(5):
        thread = threading.Thread(
            target=lambda n=number: (gate.acquire(lambda: False), order.append(n))
        )
        thread.start()
        threads.append(thread)
        while gate.waits <= number:  # it is queued before the next one starts
            threading.Event().wait(0.001)
    for released in range(1, 6):
        gate.release()
        while len(order) < released:
            threading.Event().wait(0.001)
    for thread in threads:
        thread.join(2)
    assert order == [0, 1, 2, 3, 4]


def test_fixed_limiter_never_changes_and_adaptive_one_starts_low() -> None:
    clock = {"now": 0.0}
    fixed = PartLimiter(7, 32, clock=lambda: clock["now"], cpu_clock=lambda: 0.0)
    adaptive = PartLimiter(None, 32, clock=lambda: clock["now"], cpu_clock=lambda: 0.0)
    assert (fixed.limit, adaptive.limit) == (7, NEAR_START)
    for _ in range(40):  # each request takes 1 s whatever the limit: a far path
        started = clock["now"]
        clock["now"] += 1.0
        adaptive.gate.waits += 1  # parts are waiting
        for limiter in (fixed, adaptive):
            limiter.finished(started, PART)
    fixed.throttled()
    assert fixed.limit == 7
    assert adaptive.limit > NEAR_START
