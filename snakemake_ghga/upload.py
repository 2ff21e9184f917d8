"""The upload of one file: create, encrypt while PUTting parts, close; resume.

Layer 4: imports ``crypt``, ``parts``, ``journal``, ``transfer``, ``context``.
Encryption writes the Crypt4GH temp file (0600) and reports each part as soon
as its bytes are on disk; the part is then PUT from the temp file by the
shared engine while encryption goes on. Every confirmed part is appended to
a journal beside the temp file, so after a kill the same command continues
with the same server-side upload, the same temp file and the same session key
(kept in the journal as a Crypt4GH header sealed to the user's own key).

Resume: parts in the journal are never sent again. Parts finish out of order
with several workers, so a journal can have gaps below its last confirmed
part; those parts' bytes are already complete in the temp file (parts are
hashed, and so handed to the uploader, in file order), so they are read back,
checked (every segment's MAC) and PUT as they are. Encryption resumes after
the last confirmed part only; it re-encrypts nothing before it, because
segments get random nonces and the segments that straddle a part boundary
must stay identical to what the server already holds. When every part is
confirmed (a kill during the close), nothing is encrypted: the close uses the
journal's checksums and the plaintext SHA-256 noted in the journal (or the
input re-hashed, if the kill came before the note).

Failure policy: an interruption or exhausted retries keep the upload, the temp
file and the journal for a rerun; any other failure (refused by the server,
checksum mismatch, input changed) deletes the upload on the server, as the
official client does, and removes the local state.
"""

import base64
import dataclasses
import hashlib
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from snakemake_ghga import crypt
from snakemake_ghga.api_models import FileUpload, UploadChecksums
from snakemake_ghga.context import RunContext, UploadResult
from snakemake_ghga.errors import ApiError, GhgaError, InputFileError, PartFailedError
from snakemake_ghga.journal import Fingerprint, Journal, UploadHeader
from snakemake_ghga.parts import Part, plan_parts, upload_part_size
from snakemake_ghga.transfer import Cancelled, UploadPart

__all__ = ["FileUploader", "upload_state_paths"]

logger = logging.getLogger(__name__)
LIVE_STATES = frozenset(
    {"init", "inbox", "interrogated", "awaiting_archival", "archived"}
)


def upload_state_paths(
    tmp_dir: Path | None, source: Path, alias: str
) -> tuple[Path, Path]:
    """Return (temp file, journal) paths for an upload: stable across runs."""
    key = hashlib.sha256(f"{source.resolve()}\0{alias}".encode()).hexdigest()[:20]
    base = Path(tmp_dir or tempfile.gettempdir()) / f"ghga-upload-{key}"
    return base.with_suffix(".c4gh"), base.with_suffix(".journal")


_CLOSED = "the interrupted upload was already closed"
_READ_BLOCK = 16 * crypt.CIPHER_SEGMENT_SIZE  # read-back granularity (~1 MiB)


@dataclass(frozen=True, slots=True)
class _Plan:
    journal: Journal
    session_key: bytes
    hub_key: bytes

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


class _UploadUrls:
    """A fresh presigned URL per attempt, as S3 part URLs are cheap to sign."""

    def __init__(self, ctx: RunContext, file_id: str) -> None:
        self._ctx, self._file_id = ctx, file_id

    def url_for(self, part: Part) -> str:
        return self._ctx.api.part_upload_url(self._file_id, part.number)

    def invalidate(self, url: str) -> None:
        """Nothing to forget: every attempt asks for a new URL."""


class FileUploader:
    """Uploads single files within a run; ``existing`` is the box listing."""

    def __init__(self, ctx: RunContext, existing: dict[str, FileUpload]) -> None:
        self._ctx = ctx
        self._existing = existing

    def upload(self, path: Path, alias: str, *, overwrite: bool) -> UploadResult:
        """Upload ``path`` as ``alias``; skip it if the box has it already.

        Raises:
            GhgaError: the file could not be uploaded (see the failure policy).
        """
        plain_size = crypt.check_plaintext_input(path)
        temp, journal_path = upload_state_paths(self._ctx.config.tmp_dir, path, alias)
        orphan = _remove_pending(journal_path)
        plan = self._resume(path, alias, temp, journal_path)
        if plan is not None:
            return self._run(path, plan)
        known = self._existing.get(alias)
        if known is not None and known.state in LIVE_STATES:
            if known.state == "init" and not (overwrite or orphan):
                raise ApiError(
                    f"an unfinished upload named '{alias}' is in the box",
                    "Pass --overwrite to replace it, or remove it first",
                )
            if not overwrite and known.state != "init":
                return UploadResult(
                    path,
                    alias,
                    "skipped",
                    known.file_id,
                    known.decrypted_size,
                    known.encrypted_size,
                    error=f"already in the box ({known.state})",
                )
            if known.state not in ("init", "inbox"):
                self._ctx.api.delete_upload(known.file_id)  # UCS won't replace it
        plan = self._start(
            path, alias, plain_size, temp, journal_path, overwrite=overwrite or orphan
        )
        return self._run(path, plan)

    def _start(
        self,
        path: Path,
        alias: str,
        plain_size: int,
        temp: Path,
        journal_path: Path,
        overwrite: bool,
    ) -> _Plan:
        """Create the server-side upload; a pending journal covers the gap."""
        ctx = self._ctx
        encrypted = crypt.encrypted_size(plain_size)
        part_size = upload_part_size(encrypted, ctx.config.part_size_bytes)
        session_key = os.urandom(32)
        sealed = crypt.make_header(session_key, ctx.my_secret_key, ctx.my_public_key)
        temp.unlink(missing_ok=True)
        pending = _pending_header(path, alias, temp, part_size, encrypted, sealed)
        Journal.create(journal_path, pending)
        try:
            created = ctx.api.create_upload(
                alias, plain_size, encrypted, part_size, overwrite=overwrite
            )
        except GhgaError:  # refused: nothing was created, nothing to resume
            journal_path.unlink(missing_ok=True)
            raise
        try:
            hub_key = ctx.hub_key(created.storage_alias)
            header = dataclasses.replace(
                pending, file_id=created.file_id, storage_alias=created.storage_alias
            )
            journal = Journal.create(journal_path, header)
        except BaseException:
            self._delete_quietly(created.file_id)
            journal_path.unlink(missing_ok=True)
            raise
        return _Plan(journal, session_key, hub_key)

    def _resume(
        self, path: Path, alias: str, temp: Path, journal_path: Path
    ) -> _Plan | None:
        journal = Journal.load(journal_path)
        if journal is None or not isinstance(journal.header, UploadHeader):
            temp.unlink(missing_ok=True)
            return None
        header = journal.header
        reason = self._stale_reason(path, header)
        if reason is not None:
            closed = reason.startswith(_CLOSED)
            self._ctx.progress.file_notice(
                alias,
                f"{reason}; dropping its resume journal"
                if closed
                else f"discarding the resume journal: {reason}; starting over",
            )
            self._discard(journal, header)
            return None
        opened = crypt.parse_header(
            base64.b64decode(header.sealed_session_key), self._ctx.my_secret_key
        )
        count = plan_parts(header.encrypted_size, header.part_size).count
        done = sum(1 for number in journal.records if 1 <= number <= count)
        self._ctx.progress.file_notice(
            alias, f"resuming: {done} of {count} parts already uploaded"
        )
        hub_key = self._ctx.hub_key(header.storage_alias)
        return _Plan(journal, opened.session_keys[0], hub_key)

    def _stale_reason(self, path: Path, header: UploadHeader) -> str | None:
        known = self._existing.get(header.alias)
        if header.fingerprint != Fingerprint.of(path):
            return "the input file changed since the interrupted upload"
        if not Path(header.temp_path).is_file():
            return "its encrypted temp file is gone"
        if known is not None and known.file_id == header.file_id:
            if known.state != "init":
                return f"{_CLOSED} ({known.state})"
            return None
        return "the server no longer holds the unfinished upload"

    def _discard(self, journal: Journal, header: UploadHeader) -> None:
        known = self._existing.get(header.alias)
        owned = known is not None and known.file_id == header.file_id
        if owned and known is not None and known.state == "init":
            self._delete_quietly(header.file_id)
            self._existing.pop(header.alias, None)
        Path(header.temp_path).unlink(missing_ok=True)
        journal.remove()

    def _delete_quietly(self, file_id: str) -> None:
        try:
            self._ctx.api.delete_upload(file_id)
        except GhgaError as err:
            logger.warning("could not delete the failed upload %s: %s", file_id, err)

    # -- transfer -------------------------------------------------------------

    def _run(self, path: Path, plan: _Plan) -> UploadResult:
        header = plan.header
        try:
            result = self._transfer(path, plan)
        except (KeyboardInterrupt, PartFailedError, Cancelled):
            raise  # keep the upload, temp file and journal for a rerun
        except BaseException:
            self._delete_quietly(header.file_id)
            Path(header.temp_path).unlink(missing_ok=True)
            plan.journal.remove()
            raise
        Path(header.temp_path).unlink(missing_ok=True)
        plan.journal.remove()
        return result

    def _transfer(self, path: Path, plan: _Plan) -> UploadResult:
        header, ctx = plan.header, self._ctx
        already = sum(p.size for p in plan.parts if p.number in plan.journal.records)
        ctx.progress.file_started(header.alias, header.encrypted_size)
        ctx.progress.file_progress(header.alias, already)
        first_new = plan.resume_after + 1
        fd = os.open(header.temp_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            parts = _PartUploads(ctx, plan, fd)
            for part in plan.kept_parts():
                parts.submit_kept(part)
            if first_new <= len(plan.parts):
                plain_sha256 = self._encrypt(path, plan, parts, first_new)
                plan.journal.note(plain_sha256=plain_sha256)
            else:  # every part was sent before: nothing to encrypt
                plain_sha256 = plan.journal.notes.get("plain_sha256") or _sha256_of(
                    path
                )
            parts.wait()
        finally:
            os.close(fd)
        checksums = _checksums(plan, plain_sha256)
        ctx.api.complete_upload(header.file_id, checksums)
        return UploadResult(
            path,
            header.alias,
            "uploaded",
            header.file_id,
            header.fingerprint.size,
            header.encrypted_size,
            plain_sha256,
            checksums.encrypted_md5,
            parts.bytes_sent,
        )

    def _encrypt(
        self, path: Path, plan: _Plan, parts: "_PartUploads", first_part: int
    ) -> str:
        """Encrypt from ``first_part`` on, PUTting parts as they appear.

        Returns:
            The plaintext SHA-256 of the whole file.
        """
        header = plan.header
        try:
            encrypted = crypt.encrypt_file(
                path,
                header.temp_path,
                writer_secret_key=self._ctx.my_secret_key,
                recipient_public_key=plan.hub_key,
                part_size=header.part_size,
                on_part=parts.submit,
                workers=2,
                session_key=plan.session_key,
                first_part=first_part,
            )
        except Cancelled:
            parts.wait()  # raises the part error that caused the cancel
            raise
        assert encrypted.plain_sha256 is not None  # hash_plaintext defaults on
        return encrypted.plain_sha256


class _PartUploads:
    """The PUTs of one file: submitted as parts appear, first error cancels."""

    def __init__(self, ctx: RunContext, plan: _Plan, fd: int) -> None:
        self._ctx, self._plan, self._fd = ctx, plan, fd
        self._urls = _UploadUrls(ctx, plan.header.file_id)
        self._cancel = threading.Event()
        self._futures: list[Future[None]] = []
        self._lock = threading.Lock()
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
        if self._cancel.is_set() or self._ctx.engine.stopped:
            raise Cancelled(f"{self._plan.header.alias}: cancelled")
        future = self._ctx.engine.submit(func, part)
        future.add_done_callback(self._on_done)
        with self._lock:
            self._futures.append(future)

    def _on_done(self, future: "Future[None]") -> None:
        if future.cancelled() or future.exception() is not None:
            self._cancel.set()

    def _put_kept(self, part: Part) -> None:
        md5, sha256 = _hash_kept_part(self._fd, self._plan, part)
        self._put(crypt.EncryptedPart(part.number, part.offset, part.size, md5, sha256))

    def _put(self, part: crypt.EncryptedPart) -> None:
        alias = self._plan.header.alias
        self._ctx.engine.put_part(
            f"upload of {alias}",
            self._fd,
            UploadPart(part.number, part.offset, part.size, part.md5),
            self._urls,
            self._cancel,
            lambda delta: self._ctx.progress.file_progress(alias, delta),
        )
        self._plan.journal.confirm(part.number, md5=part.md5, sha256=part.sha256)
        with self._lock:
            self.bytes_sent += part.size

    def wait(self) -> None:
        """Wait for every PUT; raise the first real error (not a cancellation)."""
        with self._lock:
            futures = list(self._futures)
        errors = [f.exception() for f in futures]
        real = [e for e in errors if e is not None and not isinstance(e, Cancelled)]
        if real:
            raise real[0]
        if any(errors):
            raise Cancelled(f"{self._plan.header.alias}: cancelled")


def _pending_header(
    path: Path, alias: str, temp: Path, part_size: int, encrypted: int, sealed: bytes
) -> UploadHeader:
    """A journal header written before the create: no file id yet."""
    return UploadHeader(
        str(path.resolve()),
        alias,
        Fingerprint.of(path),
        str(temp),
        "",
        "",
        part_size,
        encrypted,
        base64.b64encode(sealed).decode(),
    )


def _remove_pending(journal_path: Path) -> bool:
    """Drop a journal written just before a create that may not have happened.

    Returns:
        True if there was one: an ``init`` upload of the alias is then ours.
    """
    journal = Journal.load(journal_path)
    if journal is None or not isinstance(journal.header, UploadHeader):
        return False
    if journal.header.file_id:
        return False
    journal.remove()
    return True


def _hash_kept_part(fd: int, plan: _Plan, part: Part) -> tuple[str, str]:
    """MD5 and SHA-256 of a part left in the temp file; its segments must be intact.

    Raises:
        InputFileError: the temp file is short or a segment fails its MAC.
    """
    total = plan.header.encrypted_size
    md5, sha256 = hashlib.md5(), hashlib.sha256()
    for data in _read_range(fd, part.offset, part.end):
        md5.update(data)
        sha256.update(data)
    # every segment overlapping the part, so the bytes the server gets decrypt
    size, header = crypt.CIPHER_SEGMENT_SIZE, crypt.HEADER_SIZE
    first = max(0, part.offset - header) // size
    last = (part.end - 1 - header) // size if part.end > header else -1
    decryptor = crypt.SegmentDecryptor([plan.session_key])
    out = memoryview(bytearray(_READ_BLOCK))
    segment = first
    start = header + first * size
    end = min(total, header + (last + 1) * size)
    try:
        for data in _read_range(fd, start, end):
            decryptor.decrypt_into(data, out, segment)
            segment += -(-len(data) // size)
    except GhgaError:
        raise InputFileError(
            f"the encrypted temp file {plan.header.temp_path} is damaged in "
            f"part {part.number}",
            "Rerun the same command: the upload of this file starts over",
        ) from None
    return md5.hexdigest(), sha256.hexdigest()


def _read_range(fd: int, start: int, end: int) -> Iterator[memoryview]:
    """Blocks of whole cipher segments (relative to ``start``) in [start, end)."""
    buffer = memoryview(bytearray(_READ_BLOCK))
    offset = start
    while offset < end:
        want = min(_READ_BLOCK, end - offset)
        got = os.preadv(fd, [buffer[:want]], offset)
        if got != want:
            raise InputFileError(
                "the encrypted temp file is shorter than its journal says",
                "Rerun the same command: the upload of this file starts over",
            )
        yield buffer[:got]
        offset += got


def _sha256_of(path: Path) -> str:
    """The SHA-256 of the (unchanged, fingerprint-checked) plaintext."""
    digest = hashlib.sha256()
    buffer = memoryview(bytearray(_READ_BLOCK))
    with path.open("rb", buffering=0) as handle:
        while got := handle.readinto(buffer):
            digest.update(buffer[:got])
    return digest.hexdigest()


def _checksums(plan: _Plan, plain_sha256: str) -> UploadChecksums:
    header = plan.header
    records = plan.journal.records
    parts = [
        crypt.EncryptedPart(
            p.number,
            p.offset,
            p.size,
            records[p.number]["md5"],
            records[p.number]["sha256"],
        )
        for p in plan_parts(header.encrypted_size, header.part_size)
    ]
    return UploadChecksums(
        plain_sha256,
        crypt.multipart_etag(parts),
        [p.md5 for p in parts],
        [p.sha256 for p in parts],
    )
