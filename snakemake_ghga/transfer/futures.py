"""PartFutures: the part futures of one file, where the first failure cancels the rest.

In ``transfer``: imports only ``transfer.engine`` (for ``Cancelled``) and the stdlib.
Shared by the download and the upload of a file: each part gets the file's ``cancel``
event, the first failed part sets it, and ``wait`` raises that failure rather than the
``Cancelled`` of the parts it stopped. No part may touch the file after ``wait`` or
``stop`` returns, so the caller can then close it.
"""

import threading
from concurrent.futures import CancelledError, Future, wait

from snakemake_ghga.transfer.engine import Cancelled

__all__ = ["PartFutures"]


class PartFutures:
    """The running parts of one file; ``cancel`` is set by the first failure."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.cancel = threading.Event()
        self._futures: list[Future[None]] = []
        self._lock = threading.Lock()

    def add(self, future: "Future[None]") -> None:
        """Track a submitted part."""
        future.add_done_callback(self._on_done)
        with self._lock:
            self._futures.append(future)

    def _on_done(self, future: "Future[None]") -> None:
        if future.cancelled() or future.exception() is not None:
            self.cancel.set()

    def wait(self) -> None:
        """Wait for every part.

        An interrupted wait (e.g. Ctrl-C in this thread) stops the parts first.

        Raises:
            BaseException: the first real error of a part.
            Cancelled: no part failed, but some stopped early (e.g. Ctrl-C).
        """
        futures = self._snapshot()
        try:
            errors = [_exception_of(future) for future in futures]
        except BaseException:
            self.stop()
            raise
        real = [e for e in errors if e is not None and not isinstance(e, Cancelled)]
        if real:
            raise real[0]
        if any(errors):
            raise Cancelled(f"{self.label}: cancelled")

    def stop(self) -> None:
        """Cancel the queued parts and wait until the running ones have stopped."""
        self.cancel.set()
        futures = self._snapshot()
        for future in futures:
            future.cancel()
        wait(futures)

    def _snapshot(self) -> list["Future[None]"]:
        with self._lock:
            return list(self._futures)


def _exception_of(future: "Future[None]") -> BaseException | None:
    """The future's exception; a future cancelled before it ran counts as Cancelled."""
    try:
        return future.exception()
    except CancelledError:
        return Cancelled("cancelled before it started")
