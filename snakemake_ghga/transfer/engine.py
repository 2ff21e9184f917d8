"""TransferEngine: presigned part PUTs and ranged GETs with retries.

In ``transfer``: imports ``config``, ``errors``, ``transfer.parts``,
``transfer.proxies``, ``redact`` and urllib3; never ``ghga.api`` (URLs come through the
``UrlSource`` protocol) and never the cipher (downloaded bytes go to a ``PartSink``).

Design notes:
- one ``ThreadPoolExecutor`` and one set of connection pools serve every
  file of a run; ``proxies.ProxyRoutes`` sends each part through the proxy
  ``requests`` would use for its URL (``HTTPS_PROXY``, ``NO_PROXY``, ...);
- a ``concurrency.PartLimiter`` gates each attempt (first come, first
  served), and, unless ``max_workers`` fixes it, adapts how many run at once
  from how fast they finish and the 429/503 answers they get. Its slots count
  parts moving bytes: a PUT whose body is sent frees its slot (and buffer)
  while it waits a round trip for its answer, so the next part sends
  meanwhile. Hence the pools hold twice the cap of connections, and the
  executor twice the cap of threads, so that parts waiting for a slot
  already hold their upload URL (fetched before the wait: upload part URLs
  live an hour, download URLs may live only 10 s);
- a presigned URL must be https, or http to a loopback host (``config.
  url_refusal``): anything else fails the part without a request;
- bodies are streamed: a PUT reads its part from the temp file in
  ``BUFFER_BYTES`` blocks; a GET is read into a reused per-thread buffer in
  whole cipher segments and handed to the sink, so memory is a few MiB per
  worker whatever the part size;
- retries per part: connection errors (also resets mid-body), timeouts, 408,
  429 and 5xx, with exponential backoff + full jitter or ``Retry-After``
  (parsed by urllib3's ``Retry``, as in ``api``: seconds or an HTTP-date; an
  invalid or negative value means backoff; capped by ``backoff_max_s``, so a
  server cannot park a part for hours); a 403 or an expired URL makes the
  ``UrlSource`` fetch a fresh URL; a GET retried after a reset continues at
  the first segment not yet delivered;
- a ``UrlSource`` that cannot hand out a URL (an ``ApiError``) fails that
  attempt as a failed request would: retried, except when the API refused the
  credentials or does not know the file; a part that fails so ends in
  ``PartFailedError``, which keeps the file's resume state;
- a GET whose bytes the sink rejects (``DecryptionError``: a segment failed
  its MAC) stores the good segments before the bad one and is retried from
  the bad segment, at most ``CORRUPT_ATTEMPTS`` times; then the
  ``DecryptionError`` (naming file, part and segment) ends the file, since a
  rerun would most likely fetch the same bad bytes;
- every answer is checked before its bytes are used: a PUT must return the
  part's MD5 as ``ETag``; a 206 must name in ``Content-Range`` exactly the
  range asked for (a misplaced segment would pass its MAC) and the size the
  archive gave as the object's total, a 200 is taken only for a whole-object
  range, and ``Content-Length`` repeats must agree; an object of another size
  (also a 416) ends the file with ``IntegrityError``, as a short DRS size
  would otherwise go unnoticed (Crypt4GH has no end marker);
- ``stop`` (Ctrl-C) ends a retry wait at once (an ``Event`` wait, not a
  sleep), a PUT at its next block (the body reader raises ``Cancelled``), a
  GET at its next block, and a send or read blocked on a silent peer by
  shutting its socket down (``ProxyRoutes.cut_connections``);
- creating an engine installs ``redact.install_log_redaction`` so urllib3's
  DEBUG request lines never carry a presigned URL's signature.
"""

import logging
import os
import random
import re
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import urllib3
from urllib3.exceptions import HTTPError, InvalidHeader
from urllib3.util.retry import Retry

from snakemake_ghga.config import BUFFER_BYTES, TransferConfig, url_refusal
from snakemake_ghga.errors import (
    ApiError,
    AuthError,
    Cancelled,
    DecryptionError,
    IntegrityError,
    NotFoundError,
    PartFailedError,
)
from snakemake_ghga.redact import install_log_redaction, redact_url
from snakemake_ghga.transfer.concurrency import BufferPool, PartLimiter
from snakemake_ghga.transfer.parts import CIPHER_SEGMENT_SIZE, Part
from snakemake_ghga.transfer.proxies import ProxyRoutes

__all__ = [
    "CORRUPT_ATTEMPTS",
    "Cancelled",
    "PartSink",
    "TransferEngine",
    "UploadPart",
    "UrlSource",
]

logger = logging.getLogger(__name__)
_RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_SLOW_DOWN_STATUS = frozenset({429, 503})
CORRUPT_ATTEMPTS = 3  # fetches of a part whose bytes fail their MAC check
ProgressCallback = Callable[[int], None]
_RETRY_AFTER = Retry()  # used only for its Retry-After parser


class UrlSource(Protocol):
    """Hands out presigned URLs for the parts of one file."""

    def url_for(self, part: Part) -> str:
        """Return a URL for ``part`` that is still valid."""

    def invalidate(self, url: str) -> None:
        """Forget ``url``: it was refused (403) or has expired."""


class PartSink(Protocol):
    """Receives downloaded ciphertext in whole segments (the last may be short)."""

    def write(self, cipher_offset: int, data: memoryview) -> None:
        """Store ``data`` found at ``cipher_offset`` of the header-less body.

        Raises:
            DecryptionError: ``data`` is corrupt (nothing of it was stored);
                the engine fetches those bytes again.
        """


@dataclass(frozen=True, slots=True)
class UploadPart:
    """A part of the temp file to PUT and the MD5 its ETag must equal."""

    number: int
    offset: int
    size: int
    md5: str


class _Retryable(Exception):
    def __init__(
        self,
        cause: str,
        retry_after_s: float | None = None,
        refresh_url: bool = False,
        slow_down: bool = False,
    ) -> None:
        super().__init__(cause)
        self.retry_after_s = retry_after_s
        self.refresh_url = refresh_url
        self.slow_down = slow_down


class _Corrupt(_Retryable):
    """The sink rejected fetched bytes; retried, but only ``CORRUPT_ATTEMPTS`` times."""

    def __init__(self, error: DecryptionError) -> None:
        super().__init__(error.message)
        self.error = error


class _Fatal(Exception):
    """A response that retrying cannot fix (e.g. 404 on a presigned URL)."""


class _RangeReader:
    """A file-like view of ``size`` bytes at ``offset`` of an open fd.

    ``read`` fills one reused buffer and returns a view of it: the HTTP client
    sends each block before it asks for the next, so no block is allocated.
    """

    def __init__(
        self,
        fd: int,
        offset: int,
        size: int,
        on_bytes: ProgressCallback,
        buffer: memoryview,
        stopped: Callable[[], bool],
    ) -> None:
        self._fd, self._position, self._left = fd, offset, size
        self._on_bytes = on_bytes
        self._buffer = buffer
        self._stopped = stopped
        self.sent = 0
        self.on_end: Callable[[], None] = lambda: None  # called once all is sent

    def read(self, amount: int = -1) -> memoryview | bytes:
        if self._stopped():  # ends the PUT mid-body (Ctrl-C, or the file failed)
            raise Cancelled("stopped while sending a part")
        if self._left == 0:  # the last block was sent: the buffer is free
            self.on_end()
            return b""
        amount = self._left if amount < 0 else min(amount, self._left)
        view = self._buffer[: min(amount, len(self._buffer))]
        got = os.preadv(self._fd, [view], self._position) if view else 0
        if view and not got:
            raise _Fatal("the temp file is shorter than its part plan")
        self._position += got
        self._left -= got
        self.sent += got
        self._on_bytes(got)
        return view[:got]


def _retry_after_s(response: Any) -> float | None:
    value: str | None = response.headers.get("Retry-After")
    try:
        return None if value is None else _RETRY_AFTER.parse_retry_after(value)
    except InvalidHeader:
        return None


def _url_for(urls: UrlSource, part: Part) -> str:
    """The URL for this attempt; a failed API request fails only the attempt."""
    try:
        url = urls.url_for(part)
    except (AuthError, NotFoundError) as err:
        raise _Fatal(f"no URL for the part: {err}") from err
    except ApiError as err:  # the API retried it already, but may recover yet
        raise _Retryable(f"no URL for the part: {err}") from err
    refusal = url_refusal(url)
    if refusal:  # over plain http anyone on the path could swap the bytes
        raise _Fatal(f"the storage URL {redact_url(url)} {refusal}")
    return url


def _classify(status: int, response: Any, what: str) -> Exception:
    if status == 403:
        return _Retryable(f"HTTP 403 from storage on {what}", refresh_url=True)
    if status in _RETRY_STATUS:
        return _Retryable(
            f"HTTP {status} on {what}",
            _retry_after_s(response),
            slow_down=status in _SLOW_DOWN_STATUS,
        )
    return _Fatal(f"HTTP {status} on {what}")


class TransferEngine:
    """Moves parts for all files of one run; a context manager."""

    def __init__(
        self,
        config: TransferConfig,
        *,
        sleep: Callable[[float], None] | None = None,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.config = config
        self._stopped = threading.Event()
        self._sleep = sleep or self._stopped.wait  # stop() ends a retry wait
        self._jitter = jitter
        self.limiter = PartLimiter(config.max_workers, config.worker_cap)
        self.pool = ProxyRoutes(
            num_pools=8,
            maxsize=2 * config.worker_cap,  # also PUTs waiting for their answer
            block=True,
            retries=False,
            timeout=urllib3.Timeout(
                connect=config.connect_timeout_s, read=config.read_timeout_s
            ),
            blocksize=BUFFER_BYTES,
        )
        self.executor = ThreadPoolExecutor(
            2 * config.worker_cap, thread_name_prefix="ghga-part"
        )
        self._buffers = BufferPool(BUFFER_BYTES)  # one per part in flight
        self._scratches = BufferPool(BUFFER_BYTES)  # for sinks (``scratch``)
        self._slot = threading.local()  # this thread's attempt's buffers
        install_log_redaction()

    def __enter__(self) -> "TransferEngine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stop(self) -> None:
        """Make every part stop at once (e.g. on Ctrl-C).

        A part stops at its next block or attempt; a send or read blocked on a
        peer that went silent fails at once, as its socket is shut down.
        """
        self._stopped.set()
        self.pool.cut_connections()

    @property
    def stopped(self) -> bool:
        """True once ``stop`` was called."""
        return self._stopped.is_set()

    def close(self, wait: bool = True) -> None:
        """Stop the workers (queued parts are cancelled) and close connections.

        ``wait=False`` does not join the workers: for finalizers, which may run
        inside another thread's start-up, where joining would deadlock.
        """
        self.executor.shutdown(wait=wait, cancel_futures=True)
        self.pool.clear()

    def submit(self, func: Callable[..., None], *args: Any) -> "Future[None]":
        """Run ``func(*args)`` on the shared part executor."""
        return self.executor.submit(func, *args)

    # -- retry loop ---------------------------------------------------------

    def _backoff_s(self, attempt: int) -> float:
        cap = min(
            self.config.backoff_max_s, self.config.backoff_base_s * (1 << attempt)
        )
        return cap * self._jitter()

    def _delay_s(self, attempt: int, retry_after_s: float | None) -> float:
        """The wait before the next attempt: backoff, or Retry-After capped as it."""
        if retry_after_s is None:
            return self._backoff_s(attempt)
        return min(retry_after_s, self.config.backoff_max_s)

    def _run_attempts(
        self,
        label: str,
        part: Part,
        urls: UrlSource,
        cancel: threading.Event,
        attempt_once: Callable[[str], None],
        *,
        url_first: bool = False,
    ) -> None:
        cause: Exception | None = None
        attempts, corrupt = self.config.max_attempts, 0
        for attempt in range(1, attempts + 1):
            if cancel.is_set() or self._stopped.is_set():
                raise Cancelled(f"{label}: cancelled")
            try:
                self._attempt(label, part, urls, cancel, attempt_once, url_first)
                return
            except _Fatal as err:
                cause, attempts = err, attempt
                break
            except _Retryable as err:
                cause = err
                logger.debug(
                    "%s part %d attempt %d: %s", label, part.number, attempt, err
                )
                if isinstance(err, _Corrupt):
                    corrupt += 1
                    if corrupt >= CORRUPT_ATTEMPTS or attempt == attempts:
                        raise _corrupt_part(label, part, corrupt, err) from err.error
                if attempt < attempts:
                    self._sleep(self._delay_s(attempt, err.retry_after_s))
        raise _part_failed(label, part, attempts, cause)

    def _attempt(
        self,
        label: str,
        part: Part,
        urls: UrlSource,
        cancel: threading.Event,
        attempt_once: Callable[[str], None],
        url_first: bool,
    ) -> None:
        """One attempt in a slot of the limiter: get a URL, send the request.

        ``url_first`` gets the URL before waiting for the slot, so that a part
        starts the moment a slot frees instead of one API round trip later;
        only for URLs that outlive any wait (upload part URLs live an hour,
        download URLs may live 10 s).
        """
        url = _url_for(urls, part) if url_first else None
        if not self.limiter.gate.acquire(lambda: cancel.is_set() or self.stopped):
            raise Cancelled(f"{label}: cancelled")
        started = self.limiter.clock()
        slot = self._slot
        slot.buffer, slot.scratch, slot.held = self._buffers.take(), None, True
        try:
            if url is None:
                url = _url_for(urls, part)
            attempt_once(url)
            self.limiter.finished(started, part.size)
        except _Retryable as err:
            if err.refresh_url and url is not None:
                urls.invalidate(url)
            if err.slow_down:
                self.limiter.throttled()
            raise
        finally:
            self._free_slot()

    def _free_slot(self) -> None:
        """Give this thread's slot and buffers back, once per attempt.

        A PUT whose body is sent frees them before its answer comes (one round
        trip later), so the next part sends meanwhile: the slots count parts
        moving bytes, not parts waiting for an answer.
        """
        slot = self._slot
        if not slot.held:
            return
        slot.held = False
        self._buffers.give(slot.buffer)
        if slot.scratch is not None:
            self._scratches.give(slot.scratch)
        self.limiter.gate.release()

    # -- upload ---------------------------------------------------------------

    def put_part(
        self,
        label: str,
        fd: int,
        part: UploadPart,
        urls: UrlSource,
        cancel: threading.Event,
        on_bytes: ProgressCallback,
    ) -> None:
        """PUT ``part`` of the open temp file; retried until its ETag matches."""
        plan_part = Part(part.number, part.offset, part.size)

        def stopped() -> bool:
            return cancel.is_set() or self._stopped.is_set()

        def attempt(url: str) -> None:
            reader = _RangeReader(
                fd, part.offset, part.size, on_bytes, self._buffer(), stopped
            )
            reader.on_end = self._free_slot
            try:
                self._put(url, reader, part)
            except BaseException:
                on_bytes(-reader.sent)
                raise

        self._run_attempts(label, plan_part, urls, cancel, attempt, url_first=True)

    def _put(self, url: str, reader: _RangeReader, part: UploadPart) -> None:
        what = f"PUT {redact_url(url)}"
        try:
            response = self.pool.urlopen(
                "PUT",
                url,
                body=reader,
                headers={"Content-Length": str(part.size)},
                redirect=False,
            )
        except HTTPError as err:
            raise _Retryable(f"{type(err).__name__} on {what}") from err
        if response.status != 200:
            raise _classify(response.status, response, what)
        etag = response.headers.get("ETag")
        if etag is None:  # without it, nothing shows the storage got our bytes
            raise _Fatal(f"{what}: answered without an ETag, the part is unchecked")
        if etag.strip('"') != part.md5:
            raise _Retryable(f"ETag {etag} differs from the part MD5 {part.md5}")

    # -- download -------------------------------------------------------------

    def get_part(
        self,
        label: str,
        part: Part,
        urls: UrlSource,
        sink: PartSink,
        cancel: threading.Event,
        on_bytes: ProgressCallback,
        object_size: int,
        on_done: Callable[[], None] | None = None,
    ) -> None:
        """GET ``part`` of the header-less ciphertext into ``sink``.

        ``object_size`` is the size the archive gave; an answer that shows
        another size ends the file with ``IntegrityError``. ``on_done`` (the
        journal's confirm) runs before the part's slot is given back, so a
        kill loses at most the parts that hold a slot.
        """
        done = [0]

        def attempt(url: str) -> None:
            self._get(url, part, done, sink, cancel, on_bytes, object_size)
            if on_done is not None:
                on_done()

        self._run_attempts(label, part, urls, cancel, attempt)

    def _buffer(self) -> memoryview:
        """The read buffer of this thread's attempt."""
        buffer: memoryview = self._slot.buffer
        return buffer

    def scratch(self) -> memoryview:
        """A second buffer of ``BUFFER_BYTES`` for a sink, during its write.

        Like the read buffer it belongs to the attempt, so there are never
        more than the parts in flight.
        """
        if self._slot.scratch is None:
            self._slot.scratch = self._scratches.take()
        scratch: memoryview = self._slot.scratch
        return scratch

    def _get(
        self,
        url: str,
        part: Part,
        done: list[int],
        sink: PartSink,
        cancel: threading.Event,
        on_bytes: ProgressCallback,
        object_size: int,
    ) -> None:
        start, end = part.offset + done[0], part.end - 1
        what = f"GET {redact_url(url)} bytes {start}-{end}"
        try:
            response = self.pool.urlopen(
                "GET",
                url,
                headers={"Range": f"bytes={start}-{end}"},
                preload_content=False,
                redirect=False,
            )
        except HTTPError as err:
            raise _Retryable(f"{type(err).__name__} on {what}") from err
        try:
            _check_range_response(response, start, end, object_size, what)
            self._stream(response, part, done, sink, cancel, on_bytes, what)
        finally:
            response.release_conn()

    def _stream(
        self,
        response: Any,
        part: Part,
        done: list[int],
        sink: PartSink,
        cancel: threading.Event,
        on_bytes: ProgressCallback,
        what: str,
    ) -> None:
        buffer = self._buffer()
        while done[0] < part.size:
            if self._stopped.is_set() or cancel.is_set():
                raise Cancelled("stopped")
            want = min(len(buffer), part.size - done[0])
            got = _read_fully(response, buffer[:want], what)
            usable = got if got == want else got - got % CIPHER_SEGMENT_SIZE
            if usable:
                _store(sink, part, done, buffer[:usable], on_bytes)
            if got < want:
                raise _Retryable(f"body ended after {got} of {want} bytes on {what}")


def _store(
    sink: PartSink,
    part: Part,
    done: list[int],
    block: memoryview,
    on_bytes: ProgressCallback,
) -> None:
    """Hand ``block`` to the sink and advance ``done``.

    If the sink rejects it, its segments are stored one by one up to the bad
    one, and ``_Corrupt`` makes the retry fetch from that segment on.
    """
    try:
        sink.write(part.offset + done[0], block)
    except DecryptionError:
        pass
    else:
        done[0] += len(block)
        on_bytes(len(block))
        return
    for start in range(0, len(block), CIPHER_SEGMENT_SIZE):
        segment = block[start : start + CIPHER_SEGMENT_SIZE]
        try:
            sink.write(part.offset + done[0], segment)
        except DecryptionError as err:
            raise _Corrupt(err) from err
        done[0] += len(segment)
        on_bytes(len(segment))


def _check_range_response(
    response: Any, start: int, end: int, object_size: int, what: str
) -> None:
    """Accept only the bytes asked for, from an object of the expected size.

    A segment put at the wrong offset would pass its MAC (Crypt4GH nonces are
    random, with no associated data), so the Content-Range of every 206 must
    name exactly the range asked for. A 200 is fine where the range was the
    whole object, as HTTP allows.

    Raises:
        IntegrityError: the object store holds another size than the archive said.
    """
    try:
        _check_answer(response, start, end, object_size, what)
    except BaseException:
        response.drain_conn()
        raise


def _check_answer(
    response: Any, start: int, end: int, object_size: int, what: str
) -> None:
    status, headers = response.status, response.headers
    whole = start == 0 and end == object_size - 1
    if status == 206:
        first, last, total = _content_range(headers.get("Content-Range"), what)
        _check_total(total, object_size)
        if (first, last) != (start, end):
            raise _Retryable(f"{what}: answered with bytes {first}-{last}")
    elif status == 200 and whole:
        _check_total(_content_length(headers, what), object_size)
    elif status == 200:
        raise _Fatal(f"{what}: HTTP 200 instead of 206, the Range was ignored")
    elif status == 416:  # every range we ask for lies within the archive's size
        _check_total(_unsatisfied_total(headers.get("Content-Range")), object_size)
        raise _size_mismatch("fewer", object_size)
    else:
        raise _classify(status, response, what)
    length = _content_length(headers, what)
    if length is not None and length != end - start + 1:
        raise _Retryable(f"{what}: Content-Length {length}, expected {end - start + 1}")


_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")


def _content_range(value: str | None, what: str) -> tuple[int, int, int]:
    """(first, last, total) of a ``Content-Range: bytes a-b/N``."""
    found = _CONTENT_RANGE.fullmatch(value.strip()) if value else None
    if found is None:
        raise _Retryable(f"{what}: a 206 with Content-Range {value!r}")
    first, last, total = (int(group) for group in found.groups())
    return first, last, total


def _unsatisfied_total(value: str | None) -> int | None:
    """The N of a 416's ``Content-Range: bytes */N``, None if absent."""
    found = re.fullmatch(r"bytes \*/(\d+)", value.strip()) if value else None
    return int(found.group(1)) if found else None


def _content_length(headers: Any, what: str) -> int | None:
    """The Content-Length (repeats must agree), None if absent.

    Raises:
        _Retryable: the header is no byte count.
    """
    joined = ",".join(headers.getlist("Content-Length"))
    values = {value.strip() for value in joined.split(",")} - {""}
    if not values:
        return None
    value = values.pop() if len(values) == 1 else ""
    if not (value.isascii() and value.isdigit()):
        raise _Retryable(f"{what}: malformed Content-Length {joined!r}")
    return int(value)


def _check_total(total: int | None, object_size: int) -> None:
    """Fail the file if the object store's object is not ``object_size`` bytes."""
    if total is not None and total != object_size:
        raise _size_mismatch(str(total), object_size)


def _size_mismatch(held: str, object_size: int) -> IntegrityError:
    return IntegrityError(
        f"the object store holds {held} bytes of ciphertext, the archive said "
        f"{object_size}",
        "The download was discarded; report it to GHGA",
    )


def _read_fully(response: Any, view: memoryview, what: str) -> int:
    """Fill ``view`` from the body; return fewer bytes only at a premature end."""
    readinto = _readinto(response)
    got = 0
    try:
        while got < len(view):
            count = readinto(view[got:])
            if not count:
                break
            got += count
    except (HTTPError, OSError) as err:
        logger.debug("%s: %s after %d bytes", what, type(err).__name__, got)
    return got


def _readinto(response: Any) -> Callable[[memoryview], int]:
    """The body's ``readinto`` that fills the view straight from the socket.

    urllib3's reads a new ``bytes`` of the view's size and copies it: 1 MiB
    per block and part in flight, which glibc's per-thread arenas then keep
    (peak RSS grew by ~3 MiB per worker). http.client's, under it, does not;
    it is used when the body is not content-encoded (ranged GETs never are).
    """
    raw = getattr(response, "_fp", None)
    if raw is None or response.headers.get("Content-Encoding"):
        return response.readinto  # type: ignore[no-any-return]
    return raw.readinto  # type: ignore[no-any-return]


def _corrupt_part(
    label: str, part: Part, fetches: int, corrupt: _Corrupt
) -> DecryptionError:
    return DecryptionError(
        f"{label}: part {part.number} (bytes {part.byte_range}) failed its "
        f"integrity check in {fetches} fetch(es): {corrupt.error.message}",
        "The archive sent corrupted data; the partial download was removed. "
        "Try again later and report it to GHGA if it repeats",
    )


def _part_failed(
    label: str, part: Part, attempts: int, cause: Exception | None
) -> PartFailedError:
    reason = f"{type(cause).__name__}: {cause}" if cause else "unknown"
    error = PartFailedError(
        f"{label}: part {part.number} (bytes {part.byte_range}) failed after "
        f"{attempts} attempt(s) (caused by {reason})",
        "Check the network and rerun the same command: finished parts are kept",
    )
    error.__cause__ = cause
    return error
