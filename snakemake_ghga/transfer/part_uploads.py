"""The PUTs of one upload: its plan, fresh part URLs, and parts read back on resume.

Private to `transfer.upload`: imports ``crypt4gh``, ``config``,
``transfer.parts``, ``transfer.journal``, ``transfer.engine``, ``transfer.futures`` and
``transfer.context``. Parts are submitted to the shared engine as the encryption reports
them (or, on resume, as kept parts are read back from the temp file and MAC-checked);
the first failure cancels the file's other parts. A part is journaled after its PUT; a
journal that cannot be written (disk full, file removed) fails the part with the
``LocalFileError`` that ``Journal.confirm`` raises, like any part error.
"""

import hashlib
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from snakemake_ghga import crypt4gh as crypt
from snakemake_ghga.config import BUFFER_BYTES
from snakemake_ghga.errors import GhgaError, InputFileError
from snakemake_ghga.files.freespace import release_range
from snakemake_ghga.transfer.context import RunContext
from snakemake_ghga.transfer.engine import Cancelled, UploadPart
from snakemake_ghga.transfer.futures import PartFutures
from snakemake_ghga.transfer.journal import Journal, UploadHeader
from snakemake_ghga.transfer.parts import Part, plan_parts

__all__ = ["PartUploads", "UploadPlan", "every_part_confirmed", "hash_kept_part"]


@dataclass(frozen=True, slots=True)
class UploadPlan:
    """One upload under way: its journal, keys and encrypted temp file."""

    journal: Journal
    session_key: bytes
    hub_key: bytes
    temp: Path

    @property
    def header(self) -> UploadHeader:
        assert isinstance(self.journal.header, UploadHeader)
        return self.journal.header

    @property
    def parts(self) -> list[Part]:
        header = self.header
        return list(plan_parts(header.encrypted_size, header.part_size))

    @property
    def resume_after(self) -> int:
        """The last confirmed part: encryption continues after it."""
        return max(self.journal.records, default=0)

    def kept_parts(self) -> list[Part]:
        """Unconfirmed parts before the last confirmed one (already on disk)."""
        last, done = self.resume_after, self.journal.records
        return [p for p in self.parts if p.number < last and p.number not in done]


def every_part_confirmed(journal: Journal) -> bool:
    """Whether the journal confirms every part: only the close is left."""
    header = journal.header
    assert isinstance(header, UploadHeader)
    count = plan_parts(header.encrypted_size, header.part_size).count
    return all(number in journal.records for number in range(1, count + 1))


class _UploadUrls:
    """A fresh presigned URL per attempt, as S3 part URLs are cheap to sign.

    The last part's URL also fetches the close's WOT in the background: the
    close then follows the last PUT without a round trip to the WPS.
    """

    def __init__(self, ctx: RunContext, file_id: str, last_part: int) -> None:
        self._ctx, self._file_id, self._last_part = ctx, file_id, last_part

    def url_for(self, part: Part) -> str:
        if part.number == self._last_part:
            self._ctx.api.prefetch_close_token(self._file_id)
        return self._ctx.api.part_upload_url(self._file_id, part.number)

    def invalidate(self, url: str) -> None:
        """Nothing to forget: every attempt asks for a new URL."""


class PartUploads:
    """The PUTs of one file: submitted as parts appear, first error cancels."""

    def __init__(self, ctx: RunContext, plan: UploadPlan, fd: int) -> None:
        self._ctx, self._plan, self._fd = ctx, plan, fd
        self._urls = _UploadUrls(ctx, plan.header.file_id, len(plan.parts))
        self._parts = PartFutures(f"upload of {plan.header.alias}")
        self._lock = threading.Lock()  # guards bytes_sent; submits against stop
        self.bytes_sent = 0

    def submit(self, part: crypt.EncryptedPart) -> None:
        """PUT a freshly encrypted part (unless the journal has it already)."""
        if part.number in self._plan.journal.records:
            return  # confirmed by an earlier run: never sent twice
        self._submit(self._put, part)

    def submit_kept(self, part: Part) -> None:
        """PUT a part whose bytes an earlier run left complete in the temp file."""
        self._submit(self._put_kept, part)

    def _submit(self, func: Callable[[Any], None], part: object) -> None:
        with self._lock:
            if self._parts.cancel.is_set() or self._ctx.engine.stopped:
                raise Cancelled(f"{self._parts.label}: cancelled")
            self._parts.add(self._ctx.engine.submit(func, part))

    def _put_kept(self, part: Part) -> None:
        md5, sha256 = hash_kept_part(self._fd, self._plan, part)
        self._put(crypt.EncryptedPart(part.number, part.offset, part.size, md5, sha256))

    def _put(self, part: crypt.EncryptedPart) -> None:
        alias = self._plan.header.alias
        self._ctx.engine.put_part(
            self._parts.label,
            self._fd,
            UploadPart(part.number, part.offset, part.size, part.md5),
            self._urls,
            self._parts.cancel,
            lambda delta: self._ctx.progress.file_progress(alias, delta),
        )
        self._plan.journal.confirm(part.number, md5=part.md5, sha256=part.sha256)
        self._release(part)
        with self._lock:
            self.bytes_sent += part.size

    def _release(self, part: crypt.EncryptedPart) -> None:
        """Free the temp file's blocks under a confirmed part: it is never sent
        again, and pages freed before the kernel's writeback never reach the
        disk. The segments it shares with its neighbours stay: a resumed upload
        reads them to check a kept part and to continue the encryption.
        """
        span = Part(part.number, part.offset, part.size)
        _, start, end = _segment_span(span, self._plan.header.encrypted_size)
        inner = start + crypt.CIPHER_SEGMENT_SIZE
        release_range(self._fd, inner, end - crypt.CIPHER_SEGMENT_SIZE - inner)

    def wait(self) -> None:
        """Wait for every PUT; raise the first real error (not a cancellation)."""
        self._parts.wait()

    def stop(self) -> None:
        """Cancel the queued PUTs and wait for the running ones; raise nothing.

        Afterwards no part reads the fd, so the caller may close it.
        """
        with self._lock:  # a part the encryption submits later sees the cancel
            self._parts.cancel.set()
        self._parts.stop()


def hash_kept_part(fd: int, plan: UploadPlan, part: Part) -> tuple[str, str]:
    """MD5 and SHA-256 of a part left in the temp file; its segments must be intact.

    One read pass hashes the part and MAC-checks every segment overlapping it
    (so the bytes the server gets decrypt), including those it shares with
    its neighbours.

    Raises:
        InputFileError: the temp file is short or a segment fails its MAC.
    """
    md5, sha256 = hashlib.md5(), hashlib.sha256()
    segment, start, end = _segment_span(part, plan.header.encrypted_size)
    for _, data in _read_range(fd, part.offset, start):  # part 1: the header
        md5.update(data)
        sha256.update(data)
    decryptor = crypt.SegmentDecryptor([plan.session_key])
    out = memoryview(bytearray(BUFFER_BYTES))
    for offset, data in _read_range(fd, start, end):
        inside = data[max(0, part.offset - offset) : max(0, part.end - offset)]
        md5.update(inside)
        sha256.update(inside)
        try:
            decryptor.decrypt_into(data, out, segment)
        except GhgaError:
            raise InputFileError(
                f"the encrypted temp file {plan.temp} is damaged in part {part.number}",
                "Rerun the same command: the upload of this file starts over",
            ) from None
        segment += -(-len(data) // crypt.CIPHER_SEGMENT_SIZE)
    return md5.hexdigest(), sha256.hexdigest()


def _segment_span(part: Part, total: int) -> tuple[int, int, int]:
    """The first segment overlapping ``part``, and the file bytes of all of them."""
    size, header = crypt.CIPHER_SEGMENT_SIZE, crypt.HEADER_SIZE
    first = max(0, part.offset - header) // size
    last = (part.end - 1 - header) // size
    return first, header + first * size, min(total, header + (last + 1) * size)


def _read_range(fd: int, start: int, end: int) -> Iterator[tuple[int, memoryview]]:
    """(offset, block) pairs of [start, end), in whole segments from ``start``."""
    buffer = memoryview(bytearray(BUFFER_BYTES))
    offset = start
    while offset < end:
        want = min(BUFFER_BYTES, end - offset)
        got = os.preadv(fd, [buffer[:want]], offset)
        if got != want:
            raise InputFileError(
                "the encrypted temp file is shorter than its journal says",
                "Rerun the same command: the upload of this file starts over",
            )
        yield offset, buffer[:got]
        offset += got
