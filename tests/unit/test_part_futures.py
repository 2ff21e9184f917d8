"""PartFutures: the first real error wins, cancelled parts end in Cancelled."""

import threading
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from snakemake_ghga.transfer.engine import Cancelled
from snakemake_ghga.transfer.futures import PartFutures


def _failed(error: BaseException) -> "Future[None]":
    future: Future[None] = Future()
    future.set_exception(error)
    return future


def _cancelled() -> "Future[None]":
    future: Future[None] = Future()
    future.cancel()
    return future


def test_wait_cancelled_future_raises_cancelled_not_cancellederror() -> None:
    parts = PartFutures("upload of a.bin")
    parts.add(_cancelled())
    with pytest.raises(Cancelled, match=r"upload of a\.bin: cancelled"):
        parts.wait()
    assert parts.cancel.is_set()


def test_wait_real_error_wins_over_cancelled_parts() -> None:
    parts = PartFutures("download of GHGAF1")
    parts.add(_cancelled())
    parts.add(_failed(Cancelled("stopped")))
    parts.add(_failed(OSError("disk gone")))
    with pytest.raises(OSError, match="disk gone"):
        parts.wait()


def test_wait_all_done_returns() -> None:
    parts = PartFutures("download of GHGAF1")
    done: Future[None] = Future()
    done.set_result(None)
    parts.add(done)
    parts.wait()
    assert not parts.cancel.is_set()


def test_stop_cancels_queued_and_waits_for_running_parts() -> None:
    parts = PartFutures("download of GHGAF1")
    started, finished = threading.Event(), threading.Event()

    def running() -> None:
        started.set()
        parts.cancel.wait(timeout=10)  # a part stops at its next block
        finished.set()

    with ThreadPoolExecutor(1) as executor:
        parts.add(executor.submit(running))
        queued = executor.submit(lambda: None)
        parts.add(queued)
        assert started.wait(timeout=10)
        parts.stop()
        assert finished.is_set()
        assert queued.cancelled()
    with pytest.raises(Cancelled):
        parts.wait()
