"""The download of one staged file: ranged GETs decrypted straight to disk.

In ``transfer``: imports ``crypt4gh``, ``config``, ``transfer.parts``,
``transfer.journal``, ``transfer.engine``, ``transfer.futures``, ``files.private``,
``files.locks`` and ``transfer.context``. The header-less ciphertext is fetched in
segment-aligned ranges; each range is decrypted on arrival (which checks every segment's
MAC) and written with ``crypt4gh.pwrite_all`` at its plaintext offset into a 0600 temp
file beside the output (``.c4gh`` output keeps the checked ciphertext). The temp file is
created exclusively and reopened only if it is a file of ours, never through a symlink;
a lock in the private state dir keeps a second download to the same output from sharing
it. Completed parts go to a journal, so a rerun fetches only the missing ones. An
interrupted run (Ctrl-C, retries exhausted, no fresh URL to be had) keeps the temp file
and journal; any other failure (a local write error, ciphertext that stays corrupt, a
checksum mismatch) removes both, so no partial plaintext remains. A file the archive
gives no SHA-256 for fails before its first GET (unless ``allow_unverified``): nothing
else would show that it is whole, since Crypt4GH has no end marker and the size comes
from the same server. The whole-file SHA-256 is computed in file order as parts complete
(reading back the page-cached output; on resume the GETs of the missing parts start
before the finished ones are read back) and compared with the DRS checksum before the
temp file is renamed onto the output name. The read-back stops at its next block once a
part failed or the engine was stopped (Ctrl-C): finished parts of a resumed download can
be tens of GiB, and the file thread, which Ctrl-C joins, waits for whichever thread is
hashing.
"""

import contextlib
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from snakemake_ghga import crypt4gh as crypt
from snakemake_ghga.config import BUFFER_BYTES
from snakemake_ghga.errors import (
    ApiError,
    DecryptionError,
    IntegrityError,
    PartFailedError,
    writing,
)
from snakemake_ghga.files import locks
from snakemake_ghga.files.freespace import allocated_bytes, require_free_space
from snakemake_ghga.files.private import (
    create_private,
    open_own,
    state_dir,
)
from snakemake_ghga.ghga.models import DrsObject
from snakemake_ghga.transfer.context import DownloadResult, RunContext
from snakemake_ghga.transfer.engine import Cancelled
from snakemake_ghga.transfer.futures import PartFutures
from snakemake_ghga.transfer.journal import DownloadHeader, Journal
from snakemake_ghga.transfer.parts import (
    CIPHER_SEGMENT_SIZE,
    Part,
    PartPlan,
    download_part_size,
    plain_offset_of,
    plan_parts,
    requested_part_size,
)

__all__ = ["DrsUrls", "FileDownloader"]

logger = logging.getLogger(__name__)


class DrsUrls:
    """The DRS presigned URL of one file, refreshed on 403 or expiry."""

    def __init__(self, ctx: RunContext, drs: DrsObject) -> None:
        self._ctx = ctx
        self._lock = threading.Lock()
        self._set(drs)

    def _set(self, drs: DrsObject) -> None:
        self.drs = drs
        age = drs.max_age_s if drs.max_age_s is not None else 50.0
        self._expires = time.monotonic() + max(age - 1.0, age / 2)

    def url_for(self, part: Part) -> str:
        with self._lock:
            if time.monotonic() >= self._expires:
                fresh = self._ctx.api.drs_object(self.drs.accession)
                if not isinstance(fresh, DrsObject):
                    raise ApiError(f"file {self.drs.accession} is being staged again")
                self._set(fresh)
            return self.drs.url

    def invalidate(self, url: str) -> None:
        with self._lock:
            if url == self.drs.url:  # concurrent 403s refresh once
                self._expires = 0.0


class _OrderedHasher:
    """SHA-256 of the plaintext, fed in file order as parts complete.

    One thread at a time reads back and hashes the parts that are next in
    file order; a thread whose part arrives meanwhile returns at once to
    fetch more. Read-back goes through two buffers reused for every read.
    Once ``is_stopped()`` is true, hashing ends at the next block for good.
    """

    def __init__(
        self,
        fd: int,
        plan: PartPlan,
        header_size: int,
        decryptor: crypt.SegmentDecryptor | None,
        is_stopped: Callable[[], bool],
    ) -> None:
        self._fd, self._plan = fd, plan
        self._header_size, self._decryptor = header_size, decryptor
        self._is_stopped = is_stopped
        self._sha = hashlib.sha256()
        self._next = 1
        self._done: set[int] = set()
        self._hashing = False
        self._stopped = False
        self._lock = threading.Lock()
        self._read_buffer = memoryview(bytearray(BUFFER_BYTES))
        self._plain_buffer = memoryview(bytearray(BUFFER_BYTES))

    def part_done(self, number: int) -> None:
        """Note part ``number`` as written; hash what is now next in file order."""
        with self._lock:
            self._done.add(number)
            if self._hashing:
                return  # the thread that is hashing will reach this part
            self._hashing = True
        while (part := self._next_to_hash()) is not None:
            self._hash_part(part)
            if self._stopped:
                return  # keeps the hashing role: no thread hashes on past a gap

    def _next_to_hash(self) -> Part | None:
        with self._lock:
            if self._next not in self._done:
                self._hashing = False
                return None
            self._next += 1
            return self._plan.part(self._next - 1)

    def _hash_part(self, part: Part) -> None:
        for start in range(part.offset, part.end, BUFFER_BYTES):
            if self._is_stopped():
                self._stopped = True  # the digest is unusable from now on
                return
            size = min(BUFFER_BYTES, part.end - start)
            self._sha.update(self._plaintext(start, size))
        self._start_writeback(part)

    def _start_writeback(self, part: Part) -> None:
        """Start writing the hashed part to disk, so that the fsync before the
        rename finds little left to write (512 MiB took it 0.6 s at the end).

        Linux's DONTNEED starts the writeback of dirty pages without waiting
        for it; it drops only pages that are already clean.
        """
        if self._decryptor is None:
            offset = plain_offset_of(part.offset)
            size = crypt.plain_size_of(part.size)
        else:
            offset, size = self._header_size + part.offset, part.size
        with contextlib.suppress(OSError, AttributeError):  # advice only
            os.posix_fadvise(self._fd, offset, size, os.POSIX_FADV_DONTNEED)

    def _plaintext(self, cipher_offset: int, cipher_size: int) -> memoryview:
        """Read back the plaintext of ``cipher_size`` bytes of the body."""
        if self._decryptor is None:
            plain_size = crypt.plain_size_of(cipher_size)
            return self._read(plain_size, plain_offset_of(cipher_offset))
        cipher = self._read(cipher_size, self._header_size + cipher_offset)
        first = cipher_offset // CIPHER_SEGMENT_SIZE
        count = self._decryptor.decrypt_into(cipher, self._plain_buffer, first)
        return self._plain_buffer[:count]

    def _read(self, size: int, offset: int) -> memoryview:
        view = self._read_buffer[:size]
        return view[: os.preadv(self._fd, [view], offset)]

    def hexdigest(self) -> str:
        """Return the SHA-256 of the whole plaintext.

        Raises:
            Cancelled: hashing was stopped (e.g. Ctrl-C after the last GET),
                so the download keeps its resume state.
        """
        if self._stopped:
            raise Cancelled("the read-back for the checksum was stopped")
        return self._sha.hexdigest()


class _Sink:
    """Writes arriving ciphertext: decrypted at its plaintext offset, or as is."""

    def __init__(
        self,
        fd: int,
        path: str,
        decryptor: crypt.SegmentDecryptor,
        keep_encrypted: bool,
        header_size: int,
        scratch: Callable[[], memoryview],
    ) -> None:
        self._fd, self._path, self._decryptor = fd, path, decryptor
        self._keep, self._header_size = keep_encrypted, header_size
        self._scratch = scratch  # the engine's: one per part in flight

    def write(self, cipher_offset: int, data: memoryview) -> None:
        """Store ``data``; a corrupt segment raises DecryptionError, writing nothing.

        Raises:
            DecryptionError: a segment failed its MAC check (the engine refetches).
            LocalFileError: the temp file could not be written (e.g. disk full).
        """
        out = self._scratch()
        first = cipher_offset // CIPHER_SEGMENT_SIZE
        # also for kept ciphertext: a corrupt segment must fail before the
        # part is journaled, so that it is fetched again
        count = self._decryptor.decrypt_into(data, out, first)
        if self._keep:
            self.write_at(data, self._header_size + cipher_offset)
        else:
            self.write_at(out[:count], plain_offset_of(cipher_offset))

    def write_at(self, data: memoryview | bytes, offset: int) -> None:
        """Write all of ``data`` at ``offset`` of the temp file."""
        with writing(self._path):
            crypt.pwrite_all(self._fd, data, offset)


class FileDownloader:
    """Downloads one staged file to ``destination``."""

    def __init__(self, ctx: RunContext) -> None:
        self._ctx = ctx

    def download(
        self, drs: DrsObject, destination: Path, *, keep_encrypted: bool
    ) -> DownloadResult:
        """Fetch, decrypt, verify and rename into place.

        Raises:
            GhgaError: the download failed; interrupted or retry-exhausted
                downloads keep their temp file and journal for a rerun.
        """
        lock = _lock_path(self._ctx.config.tmp_dir, destination)
        with locks.hold(lock, f"the download of {drs.accession} to {destination}"):
            return self._download(drs, destination, keep_encrypted)

    def _download(
        self, drs: DrsObject, destination: Path, keep_encrypted: bool
    ) -> DownloadResult:
        ctx = self._ctx
        _require_checksum(drs, ctx.config.allow_unverified)
        envelope = ctx.api.envelope(drs.accession)
        header = crypt.parse_header(envelope, ctx.my_secret_key)
        if header.edit_list is not None:
            raise DecryptionError(
                f"the envelope of {drs.accession} carries an edit list, "
                "which GHGA does not use",
                "Nothing was downloaded; report it to GHGA",
            )
        decryptor = crypt.SegmentDecryptor(header.session_keys)
        _require_output_space(drs, destination, len(envelope), keep_encrypted)
        journal = self._journal(drs, destination, keep_encrypted)
        temp = _temp_path(destination)  # derived, as the journal's was checked
        try:
            received = self._fetch(drs, journal, envelope, decryptor, keep_encrypted)
        except (KeyboardInterrupt, PartFailedError, Cancelled):
            raise  # keep the temp file and journal for a rerun
        except BaseException:
            temp.unlink(missing_ok=True)
            journal.remove()
            raise
        crypt.publish(temp, destination)
        journal.remove()
        return DownloadResult(
            drs.accession,
            destination,
            "downloaded",
            crypt.plain_size_of(drs.size),
            drs.sha256,
            received,
        )

    def _journal(self, drs: DrsObject, destination: Path, keep: bool) -> Journal:
        temp = _temp_path(destination)
        journal_path = destination.with_name(f".{destination.name}.journal")
        config = self._ctx.config
        part_size = download_part_size(requested_part_size(drs.size, config))
        wanted = DownloadHeader(
            drs.accession, str(temp), drs.size, drs.sha256, part_size, keep
        )
        journal = Journal.load(journal_path)
        if journal is not None and journal.header == wanted and temp.is_file():
            done = len(journal.records)
            self._ctx.progress.file_notice(
                drs.accession, f"resuming: {done} parts already downloaded"
            )
            return journal
        if journal is not None:
            self._ctx.progress.file_notice(
                drs.accession,
                "discarding a resume journal that does not match "
                "this download; starting over",
            )
        with writing(destination.parent):
            try:
                # a link planted there is removed, not followed
                temp.unlink(missing_ok=True)
                os.close(create_private(temp))
                return Journal.create(journal_path, wanted)
            except OSError:
                temp.unlink(missing_ok=True)
                raise

    def _fetch(
        self,
        drs: DrsObject,
        journal: Journal,
        envelope: bytes,
        decryptor: crypt.SegmentDecryptor,
        keep: bool,
    ) -> int:
        header = journal.header
        assert isinstance(header, DownloadHeader)
        plan = plan_parts(drs.size, header.part_size)
        total = len(envelope) + drs.size if keep else crypt.plain_size_of(drs.size)
        with writing(header.temp_path):
            fd = open_own(Path(header.temp_path))
        try:
            sink = _Sink(
                fd,
                header.temp_path,
                decryptor,
                keep,
                len(envelope),
                self._ctx.engine.scratch,
            )
            with writing(header.temp_path):
                os.ftruncate(fd, total)
            if keep:
                sink.write_at(envelope, 0)
            parts = PartFutures(f"download of {drs.accession}")
            hasher = _OrderedHasher(
                fd,
                plan,
                len(envelope),
                decryptor if keep else None,
                lambda: parts.cancel.is_set() or self._ctx.engine.stopped,
            )
            received = self._run_parts(drs, plan, journal, sink, hasher, parts)
            with writing(header.temp_path):
                os.fsync(fd)
        finally:
            os.close(fd)
        _verify(drs, hasher.hexdigest())
        return received

    def _run_parts(
        self,
        drs: DrsObject,
        plan: PartPlan,
        journal: Journal,
        sink: _Sink,
        hasher: _OrderedHasher,
        parts: PartFutures,
    ) -> int:
        """Fetch the parts the journal lacks; return the bytes fetched."""
        ctx, name = self._ctx, drs.accession
        urls = DrsUrls(ctx, drs)
        missing = [part for part in plan if part.number not in journal.records]
        fetched = sum(part.size for part in missing)
        ctx.progress.file_started(name, drs.size)
        ctx.progress.file_progress(name, drs.size - fetched)
        try:
            for part in missing:
                parts.add(
                    ctx.engine.submit(
                        self._get_part, part, urls, sink, hasher, journal, parts.cancel
                    )
                )
            for number in sorted(journal.records):  # read back while the GETs run
                hasher.part_done(number)
        except BaseException:  # e.g. Ctrl-C: no part may write after the fd closes
            parts.stop()
            raise
        parts.wait()
        return fetched

    def _get_part(
        self,
        part: Part,
        urls: DrsUrls,
        sink: _Sink,
        hasher: _OrderedHasher,
        journal: Journal,
        cancel: threading.Event,
    ) -> None:
        name = urls.drs.accession
        self._ctx.engine.get_part(
            f"download of {name}",
            part,
            urls,
            sink,
            cancel,
            lambda delta: self._ctx.progress.file_progress(name, delta),
            urls.drs.size,
            lambda: journal.confirm(part.number),  # LocalFileError if it cannot
        )
        hasher.part_done(part.number)


def _temp_path(destination: Path) -> Path:
    """The 0600 file the download is written to before its rename."""
    return destination.with_name(f".{destination.name}.part")


def _require_output_space(
    drs: DrsObject, destination: Path, header_size: int, keep: bool
) -> None:
    """Fail before the first GET if the output cannot fit beside what a resumed
    ``.part`` holds (a mismatched one is removed, which frees its space too)."""
    total = header_size + drs.size if keep else crypt.plain_size_of(drs.size)
    held = allocated_bytes(_temp_path(destination))
    require_free_space(
        destination.parent,
        total - held,
        f"the download of {drs.accession}",
        "Free space there or choose another --output-dir",
    )


def _require_checksum(drs: DrsObject, allow_unverified: bool) -> None:
    """Refuse a file without a SHA-256 unless unverified downloads are allowed."""
    if drs.sha256 is not None:
        return
    if not allow_unverified:
        raise IntegrityError(
            f"the archive gave no SHA-256 for {drs.accession}, so its download "
            "could not be verified",
            "Nothing was downloaded; report it to GHGA, or pass --allow-unverified "
            "to take it unverified",
        )
    logger.warning("%s: the archive gave no SHA-256; not verified", drs.accession)


def _lock_path(tmp_dir: Path | None, destination: Path) -> Path:
    """The lock file of downloads to ``destination``, in the private state dir."""
    key = hashlib.sha256(str(destination.resolve()).encode()).hexdigest()[:20]
    return state_dir(tmp_dir) / f"download-{key}.lock"


def _verify(drs: DrsObject, actual: str) -> None:
    if drs.sha256 is None:
        return  # allowed by _require_checksum; the result says "not verified"
    if actual != drs.sha256:
        raise IntegrityError(
            f"SHA-256 mismatch for {drs.accession}: expected {drs.sha256}, "
            f"got {actual}",
            "The download was discarded; run the command again",
        )
