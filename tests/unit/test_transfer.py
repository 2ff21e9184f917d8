"""TransferEngine retry rules with a scripted fake connection pool (no sockets)."""

import hashlib
import io
import logging
import os
import threading
import time
from collections.abc import Callable
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest
from urllib3 import HTTPHeaderDict
from urllib3.exceptions import ProtocolError, ReadTimeoutError

from snakemake_ghga.config import TransferConfig
from snakemake_ghga.errors import (
    ApiError,
    AuthError,
    DecryptionError,
    IntegrityError,
    PartFailedError,
)
from snakemake_ghga.redact import RedactingFilter
from snakemake_ghga.transfer.engine import (
    CORRUPT_ATTEMPTS,
    Cancelled,
    TransferEngine,
    UploadPart,
)
from snakemake_ghga.transfer.parts import CIPHER_SEGMENT_SIZE, Part


class FakeResponse:
    def __init__(
        self,
        status: int,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        cut_after: int | None = None,
    ) -> None:
        self.status = status
        self.headers = HTTPHeaderDict(headers or {})
        self._body = io.BytesIO(body)
        self._cut_after = cut_after

    def readinto(self, view: memoryview) -> int:
        if self._cut_after is not None and self._body.tell() >= self._cut_after:
            raise ProtocolError("Connection reset by peer")
        limit = len(view)
        if self._cut_after is not None:
            limit = min(limit, self._cut_after - self._body.tell())
        data = self._body.read(limit)
        view[: len(data)] = data
        return len(data)

    def release_conn(self) -> None:
        pass

    def drain_conn(self) -> None:
        pass


Script = Callable[[str, str, dict[str, str], bytes], FakeResponse]


class FakePool:
    """Answers each request with the next scripted step; records the requests."""

    def __init__(self, steps: list[Script | FakeResponse | Exception]) -> None:
        self.steps = steps
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []

    def urlopen(
        self,
        method: str,
        url: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        **_: Any,
    ) -> FakeResponse:
        data = b""
        if body is not None:
            while chunk := body.read(1 << 16):
                data += chunk
        self.requests.append((method, url, dict(headers or {}), data))
        step = self.steps.pop(0)
        if isinstance(step, Exception):
            raise step
        if isinstance(step, FakeResponse):
            return step
        return step(method, url, dict(headers or {}), data)

    def clear(self) -> None:
        pass

    def cut_connections(self) -> None:
        pass


class Urls:
    def __init__(self) -> None:
        self.issued = 0
        self.invalidated: list[str] = []

    def url_for(self, part: Part) -> str:
        self.issued += 1
        return f"https://s3.test/obj?X-Amz-Signature=secret{self.issued}"

    def invalidate(self, url: str) -> None:
        self.invalidated.append(url)


class Sink:
    def __init__(self, size: int) -> None:
        self.data = bytearray(size)
        self.writes: list[tuple[int, int]] = []

    def write(self, cipher_offset: int, data: memoryview) -> None:
        self.data[cipher_offset : cipher_offset + len(data)] = data
        self.writes.append((cipher_offset, len(data)))


@pytest.fixture
def sleeps() -> list[float]:
    return []


def _engine(pool: FakePool, sleeps: list[float], attempts: int = 4) -> TransferEngine:
    engine = TransferEngine(
        TransferConfig(max_attempts=attempts, max_workers=1),
        sleep=sleeps.append,
        jitter=lambda: 1.0,
    )
    engine.pool = pool  # type: ignore[assignment]
    return engine


@pytest.fixture
def temp_file(tmp_path: Path) -> tuple[int, bytes]:
    data = os.urandom(300_000)
    path = tmp_path / "part.c4gh"
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    yield fd, data
    os.close(fd)


def _upload_part(data: bytes, offset: int = 1000, size: int = 200_000) -> UploadPart:
    md5 = hashlib.md5(data[offset : offset + size]).hexdigest()
    return UploadPart(2, offset, size, md5)


def test_put_part_streams_exact_range_and_checks_etag(
    temp_file: tuple[int, bytes], sleeps: list[float]
) -> None:
    fd, data = temp_file
    part = _upload_part(data)
    pool = FakePool([FakeResponse(200, headers={"ETag": f'"{part.md5}"'})])
    progress: list[int] = []
    _engine(pool, sleeps).put_part(
        "upload of x", fd, part, Urls(), threading.Event(), progress.append
    )
    method, _, headers, body = pool.requests[0]
    assert (method, headers["Content-Length"]) == ("PUT", "200000")
    assert body == data[1000:201_000]
    assert sum(progress) == 200_000


def test_a_put_frees_its_slot_when_its_body_is_sent(
    temp_file: tuple[int, bytes], sleeps: list[float]
) -> None:
    # one slot: the second part may send while the first waits for its answer
    fd, data = temp_file
    parts = [
        UploadPart(n, offset, 100_000, hashlib.md5(data[offset:][:100_000]).hexdigest())
        for n, offset in ((1, 0), (2, 100_000))
    ]
    second_sent = threading.Event()
    waited: list[bool] = []

    def first(method: str, url: str, headers: dict[str, str], body: bytes) -> Any:
        waited.append(second_sent.wait(5))  # answers only once part 2 was sent
        return FakeResponse(200, headers={"ETag": parts[0].md5})

    def second(method: str, url: str, headers: dict[str, str], body: bytes) -> Any:
        second_sent.set()
        return FakeResponse(200, headers={"ETag": parts[1].md5})

    engine = _engine(FakePool([first, second]), sleeps)
    progress: list[int] = []
    futures = [
        engine.submit(
            engine.put_part, "up", fd, part, Urls(), threading.Event(), progress.append
        )
        for part in parts
    ]
    for future in futures:
        future.result(timeout=10)
    assert waited == [True]
    assert engine.limiter.gate.limit == 1  # still one slot: nothing was raised


def test_put_part_etag_mismatch_resends(
    temp_file: tuple[int, bytes], sleeps: list[float]
) -> None:
    fd, data = temp_file
    part = _upload_part(data)
    pool = FakePool(
        [
            FakeResponse(200, headers={"ETag": '"0000"'}),
            FakeResponse(200, headers={"ETag": part.md5}),
        ]
    )
    progress: list[int] = []
    _engine(pool, sleeps).put_part(
        "upload", fd, part, Urls(), threading.Event(), progress.append
    )
    assert len(pool.requests) == 2
    assert sum(progress) == 200_000  # the failed attempt is taken back
    assert len(sleeps) == 1


def test_put_part_403_refreshes_url_and_503_honours_retry_after(
    temp_file: tuple[int, bytes], sleeps: list[float]
) -> None:
    fd, data = temp_file
    part = _upload_part(data)
    urls = Urls()
    pool = FakePool(
        [
            FakeResponse(403),
            FakeResponse(503, headers={"Retry-After": "3"}),
            ProtocolError("reset"),
            FakeResponse(200, headers={"ETag": part.md5}),
        ]
    )
    _engine(pool, sleeps).put_part(
        "upload", fd, part, urls, threading.Event(), lambda _: None
    )
    assert urls.invalidated == ["https://s3.test/obj?X-Amz-Signature=secret1"]
    assert urls.issued == 4
    assert sleeps[1] == 3.0
    assert sleeps[0] == pytest.approx(1.0) and sleeps[2] == pytest.approx(4.0)


def test_put_part_exhausted_names_part_range_attempts_cause(
    temp_file: tuple[int, bytes], sleeps: list[float]
) -> None:
    fd, data = temp_file
    pool = FakePool([FakeResponse(500)] * 3)
    with pytest.raises(PartFailedError) as info:
        _engine(pool, sleeps, attempts=3).put_part(
            "upload of a.bam",
            fd,
            _upload_part(data),
            Urls(),
            threading.Event(),
            lambda _: None,
        )
    message = str(info.value)
    assert (
        "upload of a.bam: part 2 (bytes 1000-200999) failed after 3 attempt(s)"
        in message
    )
    assert "HTTP 500" in message
    assert "secret" not in message  # the presigned query is redacted


def test_put_part_without_etag_fails_unchecked(
    temp_file: tuple[int, bytes], sleeps: list[float]
) -> None:
    fd, data = temp_file
    pool = FakePool([FakeResponse(200)])
    with pytest.raises(PartFailedError, match="without an ETag") as info:
        _engine(pool, sleeps).put_part(
            "u", fd, _upload_part(data), Urls(), threading.Event(), lambda _: None
        )
    assert "after 1 attempt" in str(info.value)


def test_put_part_fatal_status_is_not_retried(
    temp_file: tuple[int, bytes], sleeps: list[float]
) -> None:
    fd, data = temp_file
    pool = FakePool([FakeResponse(404)])
    with pytest.raises(PartFailedError, match="after 1 attempt"):
        _engine(pool, sleeps).put_part(
            "u", fd, _upload_part(data), Urls(), threading.Event(), lambda _: None
        )


def test_cancelled_part_never_starts(
    temp_file: tuple[int, bytes], sleeps: list[float]
) -> None:
    fd, data = temp_file
    cancel = threading.Event()
    cancel.set()
    pool = FakePool([])
    with pytest.raises(Cancelled):
        _engine(pool, sleeps).put_part(
            "u", fd, _upload_part(data), Urls(), cancel, lambda _: None
        )
    assert pool.requests == []


class FailingUrls(Urls):
    """Its first ``failures`` URL requests fail as the API would."""

    def __init__(self, failures: int, error: ApiError) -> None:
        super().__init__()
        self.failures, self.error = failures, error

    def url_for(self, part: Part) -> str:
        if self.failures:
            self.failures -= 1
            raise self.error
        return super().url_for(part)


def test_get_part_url_refresh_api_error_is_retried(sleeps: list[float]) -> None:
    body = os.urandom(CIPHER_SEGMENT_SIZE)
    urls = FailingUrls(1, ApiError("file GHGAF1 is being staged again"))
    sink = Sink(len(body))
    _engine(FakePool([_ranged(body)]), sleeps).get_part(
        "d",
        Part(1, 0, len(body)),
        urls,
        sink,
        threading.Event(),
        lambda _: None,
        len(body),
    )
    assert bytes(sink.data) == body
    assert len(sleeps) == 1


@pytest.mark.parametrize(
    ("error", "attempts"),
    [(ApiError("HTTP 503 from the DCS"), 3), (AuthError("token refused"), 1)],
)
def test_get_part_url_refresh_failing_is_a_part_failure(
    sleeps: list[float], error: ApiError, attempts: int
) -> None:
    with pytest.raises(PartFailedError, match=f"after {attempts} attempt") as info:
        _engine(FakePool([]), sleeps, attempts=3).get_part(
            "download of GHGAF1",
            Part(2, 0, CIPHER_SEGMENT_SIZE),
            FailingUrls(3, error),
            Sink(CIPHER_SEGMENT_SIZE),
            threading.Event(),
            lambda _: None,
            CIPHER_SEGMENT_SIZE,
        )
    assert f"no URL for the part: {error}" in str(info.value)


def _ranged(
    body: bytes, cut_after: int | None = None, shift: int = 0, total: int | None = None
) -> Script:
    """Answer a ranged GET from ``body`` as S3 does (or ``shift`` bytes off)."""

    def answer(
        method: str, url: str, headers: dict[str, str], data: bytes
    ) -> FakeResponse:
        start, end = (
            int(x) + shift for x in headers["Range"].removeprefix("bytes=").split("-")
        )
        chunk = body[start : end + 1]
        size = len(body) if total is None else total
        return FakeResponse(
            206,
            chunk,
            {
                "Content-Length": str(len(chunk)),
                "Content-Range": f"bytes {start}-{end}/{size}",
            },
            cut_after,
        )

    return answer


def test_get_part_reset_mid_body_resumes_at_next_segment(sleeps: list[float]) -> None:
    body = os.urandom(5 * CIPHER_SEGMENT_SIZE + 100)
    part = Part(1, 0, len(body))
    pool = FakePool(
        [_ranged(body, cut_after=2 * CIPHER_SEGMENT_SIZE + 10), _ranged(body)]
    )
    sink = Sink(len(body))
    _engine(pool, sleeps).get_part(
        "download", part, Urls(), sink, threading.Event(), lambda _: None, len(body)
    )
    assert bytes(sink.data) == body
    assert (
        pool.requests[1][2]["Range"]
        == f"bytes={2 * CIPHER_SEGMENT_SIZE}-{len(body) - 1}"
    )
    assert all(offset % CIPHER_SEGMENT_SIZE == 0 for offset, _ in sink.writes)


def test_get_part_wrong_status_or_length_is_retried(sleeps: list[float]) -> None:
    body = os.urandom(CIPHER_SEGMENT_SIZE * 2)
    part = Part(1, 0, len(body))
    pool = FakePool(
        [
            FakeResponse(
                206,
                body[:10],
                {
                    "Content-Length": "10",
                    "Content-Range": f"bytes 0-{len(body) - 1}/{len(body)}",
                },
            ),
            ReadTimeoutError(None, "http://s3.test", "read timed out"),  # type: ignore[arg-type]
            _ranged(body),
        ]
    )
    sink = Sink(len(body))
    _engine(pool, sleeps).get_part(
        "d", part, Urls(), sink, threading.Event(), lambda _: None, len(body)
    )
    assert bytes(sink.data) == body
    assert len(pool.requests) == 3


def _sleeps_for_retry_after(status: int, retry_after: str) -> list[float]:
    """GET a part answered first by ``status`` with ``retry_after``; the sleeps."""
    body = os.urandom(CIPHER_SEGMENT_SIZE)
    pool = FakePool(
        [FakeResponse(status, headers={"Retry-After": retry_after}), _ranged(body)]
    )
    sink, sleeps = Sink(len(body)), []
    _engine(pool, sleeps).get_part(
        "d",
        Part(1, 0, len(body)),
        Urls(),
        sink,
        threading.Event(),
        lambda _: None,
        len(body),
    )
    assert bytes(sink.data) == body
    return sleeps


@pytest.mark.parametrize("status", [429, 503])
@pytest.mark.parametrize(
    ("retry_after", "expected_s"),
    [("7", 7.0), ("soon", 1.0), ("-5", 1.0)],  # 1.0: the backoff of attempt 1
)
def test_get_part_retry_after_seconds_or_backoff_if_invalid(
    status: int, retry_after: str, expected_s: float
) -> None:
    assert _sleeps_for_retry_after(status, retry_after) == [expected_s]


@pytest.mark.parametrize("status", [429, 503])
def test_get_part_retry_after_http_date_waits_until_then(status: int) -> None:
    date = formatdate(time.time() + 30, usegmt=True)
    (slept,) = _sleeps_for_retry_after(status, date)
    assert 28 < slept <= 30


def test_get_part_full_body_200_for_part_of_the_object_is_fatal(
    sleeps: list[float],
) -> None:
    body = os.urandom(2 * CIPHER_SEGMENT_SIZE)
    pool = FakePool([FakeResponse(200, body, {"Content-Length": str(len(body))})])
    sink = Sink(len(body))
    with pytest.raises(PartFailedError, match="Range was ignored"):
        _get(_engine(pool, sleeps), Part(1, 0, CIPHER_SEGMENT_SIZE), sink, len(body))
    assert sink.writes == []


def _get(engine: TransferEngine, part: Part, sink: Sink, object_size: int) -> None:
    engine.get_part(
        "download of GHGAF1",
        part,
        Urls(),
        sink,
        threading.Event(),
        lambda _: None,
        object_size,
    )


@pytest.mark.parametrize("length", [True, False])
def test_get_part_200_for_the_whole_object_is_taken(
    sleeps: list[float], length: bool
) -> None:
    body = os.urandom(CIPHER_SEGMENT_SIZE + 100)
    headers = {"Content-Length": str(len(body))} if length else {}
    pool = FakePool([FakeResponse(200, body, headers)])
    sink = Sink(len(body))
    _get(_engine(pool, sleeps), Part(1, 0, len(body)), sink, len(body))
    assert bytes(sink.data) == body
    assert len(pool.requests) == 1


def test_get_part_200_with_more_than_the_archive_said_fails_the_file(
    sleeps: list[float],
) -> None:
    body = os.urandom(CIPHER_SEGMENT_SIZE + 100)
    pool = FakePool([FakeResponse(200, body, {"Content-Length": str(len(body))})])
    sink = Sink(len(body))
    with pytest.raises(IntegrityError, match=f"holds {len(body)} bytes"):
        _get(_engine(pool, sleeps), Part(1, 0, 100), sink, 100)
    assert sink.writes == []


def test_get_part_misplaced_range_is_not_stored_and_fetched_again(
    sleeps: list[float],
) -> None:
    # whole segments from the wrong offset pass their MAC: only the
    # Content-Range shows them
    body = os.urandom(4 * CIPHER_SEGMENT_SIZE)
    part = Part(2, 2 * CIPHER_SEGMENT_SIZE, 2 * CIPHER_SEGMENT_SIZE)
    pool = FakePool([_ranged(body, shift=-CIPHER_SEGMENT_SIZE), _ranged(body)])
    sink = Sink(len(body))
    _get(_engine(pool, sleeps), part, sink, len(body))
    assert sink.writes == [(part.offset, part.size)]
    assert bytes(sink.data[part.offset :]) == body[part.offset :]
    assert len(pool.requests) == 2


@pytest.mark.parametrize(
    "content_range", [None, "bytes 0-9", "bytes */100", "items 0-9/10", "0-9/10"]
)
def test_get_part_206_without_a_valid_content_range_is_retried(
    sleeps: list[float], content_range: str | None
) -> None:
    body = os.urandom(CIPHER_SEGMENT_SIZE)
    headers = {"Content-Range": content_range} if content_range else {}
    pool = FakePool([FakeResponse(206, body, headers)] * 3)
    sink = Sink(len(body))
    with pytest.raises(PartFailedError, match="Content-Range"):
        _get(_engine(pool, sleeps, attempts=3), Part(1, 0, len(body)), sink, len(body))
    assert sink.writes == []


def test_get_part_object_of_another_size_fails_the_file_at_once(
    sleeps: list[float],
) -> None:
    # the DRS size is short: the object store's Content-Range shows the truth
    body = os.urandom(3 * CIPHER_SEGMENT_SIZE)
    pool = FakePool([_ranged(body)] * 3)
    sink = Sink(len(body))
    short = 2 * CIPHER_SEGMENT_SIZE
    with pytest.raises(IntegrityError) as info:
        _get(_engine(pool, sleeps), Part(1, 0, short), sink, short)
    assert str(info.value).startswith(
        f"the object store holds {len(body)} bytes of ciphertext, "
        f"the archive said {short}"
    )
    assert (len(pool.requests), sink.writes) == (1, [])


@pytest.mark.parametrize(
    ("headers", "held"), [({"Content-Range": "bytes */1000"}, "1000"), ({}, "fewer")]
)
def test_get_part_416_fails_the_file(
    sleeps: list[float], headers: dict[str, str], held: str
) -> None:
    # the DRS size is too long: the range lies beyond the object
    pool = FakePool([FakeResponse(416, headers=headers)])
    with pytest.raises(IntegrityError, match=f"holds {held} bytes of ciphertext"):
        _get(_engine(pool, sleeps), Part(1, 0, 5000), Sink(5000), 5000)
    assert len(pool.requests) == 1


@pytest.mark.parametrize(
    ("length", "taken"),
    [("{n}, {n}", True), ("{n},{n}", True), ("{n}, 7", False), ("x", False)],
)
def test_get_part_content_length_repeats_must_agree(
    sleeps: list[float], length: str, taken: bool
) -> None:
    body = os.urandom(CIPHER_SEGMENT_SIZE)
    n = len(body)
    headers = {
        "Content-Length": length.format(n=n),
        "Content-Range": f"bytes 0-{n - 1}/{n}",
    }
    pool = FakePool([FakeResponse(206, body, headers)] * 2)
    sink = Sink(n)
    engine = _engine(pool, sleeps, attempts=2)
    if taken:
        _get(engine, Part(1, 0, n), sink, n)
        assert bytes(sink.data) == body
    else:
        with pytest.raises(PartFailedError, match="malformed Content-Length"):
            _get(engine, Part(1, 0, n), sink, n)
        assert sink.writes == []


class CheckingSink(Sink):
    """Rejects bytes that differ from ``expected``, naming the first bad segment."""

    def __init__(self, expected: bytes) -> None:
        super().__init__(len(expected))
        self.expected = expected

    def write(self, cipher_offset: int, data: memoryview) -> None:
        want = self.expected[cipher_offset : cipher_offset + len(data)]
        if bytes(data) != want:
            first = next(
                i for i, (a, b) in enumerate(zip(data, want, strict=True)) if a != b
            )
            segment = (cipher_offset + first) // CIPHER_SEGMENT_SIZE
            raise DecryptionError(f"segment {segment} failed authentication")
        super().write(cipher_offset, data)


def _flipped(body: bytes, at: int) -> bytes:
    return body[:at] + bytes([body[at] ^ 0xFF]) + body[at + 1 :]


def test_get_part_corrupt_segment_is_fetched_again_from_that_segment(
    sleeps: list[float],
) -> None:
    body = os.urandom(6 * CIPHER_SEGMENT_SIZE + 100)
    part = Part(1, 0, len(body))
    bad = _flipped(body, 3 * CIPHER_SEGMENT_SIZE + 500)
    pool = FakePool([_ranged(bad), _ranged(body)])
    sink = CheckingSink(body)
    moved: list[int] = []
    _engine(pool, sleeps).get_part(
        "download of X", part, Urls(), sink, threading.Event(), moved.append, len(body)
    )
    assert bytes(sink.data) == body
    assert len(pool.requests) == 2
    retry_range = pool.requests[1][2]["Range"]
    assert retry_range == f"bytes={3 * CIPHER_SEGMENT_SIZE}-{len(body) - 1}"
    assert sum(moved) == len(body)  # every byte counted once


def test_get_part_persistently_corrupt_is_a_decryption_error(
    sleeps: list[float],
) -> None:
    body = os.urandom(4 * CIPHER_SEGMENT_SIZE)
    part = Part(2, 0, len(body))
    pool = FakePool([_ranged(_flipped(body, 2 * CIPHER_SEGMENT_SIZE + 7))] * 10)
    sink = CheckingSink(body)
    with pytest.raises(DecryptionError) as caught:
        _engine(pool, sleeps, attempts=6).get_part(
            "download of GHGAF1",
            part,
            Urls(),
            sink,
            threading.Event(),
            lambda _: None,
            len(body),
        )
    message = str(caught.value)
    assert "download of GHGAF1: part 2" in message
    assert "segment 2 failed authentication" in message
    assert f"{CORRUPT_ATTEMPTS} fetch(es)" in message
    assert len(pool.requests) == CORRUPT_ATTEMPTS
    assert not isinstance(caught.value, PartFailedError)  # not kept for a rerun


def test_get_part_stops_mid_body_when_its_file_is_cancelled(
    sleeps: list[float],
) -> None:
    body = os.urandom(40 * CIPHER_SEGMENT_SIZE)
    cancel = threading.Event()

    class CancellingSink(Sink):
        def write(self, cipher_offset: int, data: memoryview) -> None:
            super().write(cipher_offset, data)
            cancel.set()  # another part of the file failed meanwhile

    sink = CancellingSink(len(body))
    with pytest.raises(Cancelled):
        _engine(FakePool([_ranged(body)]), sleeps).get_part(
            "d", Part(1, 0, len(body)), Urls(), sink, cancel, lambda _: None, len(body)
        )
    assert len(sink.writes) == 1


def test_engine_redacts_urllib3_debug_request_lines(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    for _ in range(2):
        TransferEngine(TransferConfig()).close()
    pool_logger = logging.getLogger("urllib3.connectionpool")
    assert sum(isinstance(f, RedactingFilter) for f in pool_logger.filters) == 1
    pool_logger.debug(
        '%s://%s:%s "%s %s %s" %s %s',
        "https",
        "s3.test",
        443,
        "GET",
        "/outbox/obj?X-Amz-Credential=AK&X-Amz-Signature=deadbeef",
        "HTTP/1.1",
        206,
        100,
    )
    [line] = [r.getMessage() for r in caplog.records if r.name == pool_logger.name]
    assert line == 'https://s3.test:443 "GET /outbox/obj?<redacted> HTTP/1.1" 206 100'
