"""upload_parts: kept parts are hashed and MAC-checked in one read pass; a
cancelled PUT ends ``wait`` with Cancelled; ``stop`` leaves no PUT running."""

import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from snakemake_ghga import crypt4gh as crypt
from snakemake_ghga.errors import InputFileError
from snakemake_ghga.transfer.context import RunContext
from snakemake_ghga.transfer.engine import Cancelled
from snakemake_ghga.transfer.journal import Fingerprint, Journal, UploadHeader
from snakemake_ghga.transfer.part_uploads import PartUploads, UploadPlan, hash_kept_part
from snakemake_ghga.transfer.parts import CIPHER_SEGMENT_SIZE, MIN_UPLOAD_PART_SIZE
from tests.conftest import KeyPair

PART_SIZE = MIN_UPLOAD_PART_SIZE


def _kept_upload(
    tmp_path: Path, user_keys: KeyPair, hub_keys: KeyPair
) -> tuple[UploadPlan, list[crypt.EncryptedPart]]:
    """A 3-part temp file as an interrupted upload leaves it, and its part hashes."""
    source = tmp_path / "in.bin"
    source.write_bytes(os.urandom(2 * PART_SIZE + 12_345))
    temp = tmp_path / "in.c4gh"
    session_key = os.urandom(32)
    parts: list[crypt.EncryptedPart] = []
    crypt.encrypt_file(
        source,
        temp,
        writer_secret_key=user_keys.secret,
        recipient_public_key=hub_keys.public,
        part_size=PART_SIZE,
        on_part=parts.append,
        session_key=session_key,
    )
    header = UploadHeader(
        str(source),
        "in.bin",
        Fingerprint.of(source),
        "file-1",
        "storage-1",
        PART_SIZE,
        temp.stat().st_size,
        "sealed",
    )
    journal = Journal(tmp_path / "in.journal", header)
    plan = UploadPlan(journal, session_key, b"hub", temp)
    return plan, sorted(parts, key=lambda part: part.number)


def _count_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record the bytes of every pread/preadv."""
    counted: list[int] = []
    real_pread, real_preadv = os.pread, os.preadv

    def pread(fd: int, size: int, offset: int) -> bytes:
        data = real_pread(fd, size, offset)
        counted.append(len(data))
        return data

    def preadv(fd: int, buffers: Any, offset: int) -> int:
        got = real_preadv(fd, buffers, offset)
        counted.append(got)
        return got

    monkeypatch.setattr(os, "pread", pread)
    monkeypatch.setattr(os, "preadv", preadv)
    return counted


def test_hash_kept_part_reads_each_part_once_and_matches_encryption(
    tmp_path: Path,
    user_keys: KeyPair,
    hub_keys: KeyPair,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plan, encrypted = _kept_upload(tmp_path, user_keys, hub_keys)
    fd = os.open(plan.temp, os.O_RDONLY)
    try:
        for part in encrypted:
            counted = _count_reads(monkeypatch)
            kept = plan.parts[part.number - 1]
            assert hash_kept_part(fd, plan, kept) == (part.md5, part.sha256)
            # the part once, plus the two segments it shares with its neighbours
            assert sum(counted) <= part.size + 2 * CIPHER_SEGMENT_SIZE
    finally:
        os.close(fd)


def _flip_byte(path: str, offset: int) -> None:
    with open(path, "r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)[0]
        handle.seek(offset)
        handle.write(bytes([byte ^ 0xFF]))


@pytest.mark.parametrize("where", ["inside", "shared_with_next_part"])
def test_hash_kept_part_damaged_segment_is_refused(
    tmp_path: Path, user_keys: KeyPair, hub_keys: KeyPair, where: str
) -> None:
    plan, _ = _kept_upload(tmp_path, user_keys, hub_keys)
    first = plan.parts[0]
    # the segment crossing the end of part 1 is damaged where part 2 holds it
    offset = first.end + 10 if where == "shared_with_next_part" else first.size // 2
    _flip_byte(plan.temp, offset)
    fd = os.open(plan.temp, os.O_RDONLY)
    try:
        with pytest.raises(InputFileError, match="damaged in part 1"):
            hash_kept_part(fd, plan, first)
    finally:
        os.close(fd)


class FakeEngine:
    """Hands out futures that were cancelled before they ran (engine closed)."""

    stopped = False

    def submit(self, func: Callable[..., None], *args: Any) -> "Future[None]":
        future: Future[None] = Future()
        future.cancel()
        return future


def test_wait_with_a_cancelled_put_raises_cancelled(
    tmp_path: Path, user_keys: KeyPair, hub_keys: KeyPair
) -> None:
    plan, encrypted = _kept_upload(tmp_path, user_keys, hub_keys)
    ctx = cast(RunContext, SimpleNamespace(engine=FakeEngine(), api=None))
    uploads = PartUploads(ctx, plan, fd=-1)
    uploads.submit(encrypted[0])
    with pytest.raises(Cancelled, match=r"upload of in\.bin: cancelled"):
        uploads.wait()


class BlockingEngine:
    """One worker; each PUT runs until the file is cancelled; records start and end."""

    stopped = False

    def __init__(self) -> None:
        self.executor = ThreadPoolExecutor(1)
        self.started = threading.Event()
        self.ran: list[int] = []
        self.ended: list[int] = []

    def submit(self, func: Callable[..., None], *args: Any) -> "Future[None]":
        return self.executor.submit(func, *args)

    def put_part(
        self, label: str, fd: int, part: Any, urls: Any, cancel: Any, *_: Any
    ) -> None:
        self.ran.append(part.number)
        self.started.set()
        cancel.wait(10)
        self.ended.append(part.number)
        raise Cancelled(f"{label}: cancelled")


def test_stop_cancels_queued_puts_waits_for_running_and_refuses_new_ones(
    tmp_path: Path, user_keys: KeyPair, hub_keys: KeyPair
) -> None:
    plan, encrypted = _kept_upload(tmp_path, user_keys, hub_keys)
    engine = BlockingEngine()
    ctx = cast(RunContext, SimpleNamespace(engine=engine, api=None))
    uploads = PartUploads(ctx, plan, fd=-1)
    uploads.submit(encrypted[0])
    uploads.submit(encrypted[1])  # queued behind part 1
    assert engine.started.wait(10)

    uploads.stop()

    assert engine.ran == engine.ended == [1]  # part 1 ended; part 2 never started
    with pytest.raises(Cancelled):
        uploads.submit(encrypted[2])
    engine.executor.shutdown()
