"""The upload of one file: create, encrypt while PUTting parts, close; resume.

In ``transfer``: imports ``crypt4gh``, ``transfer.parts``, ``transfer.journal``,
``transfer.engine``, ``transfer.context``, ``files.private``, ``files.locks`` and
``transfer.part_uploads`` (the PUTs of one file). Encryption writes the Crypt4GH temp
file (0600) and reports each part as soon as its bytes are on disk; the part is then PUT
from the temp file by the shared engine while encryption goes on. Every confirmed part
is appended to a journal beside the temp file, so after a kill the same command
continues with the same server-side upload, the same temp file and the same session key
(kept in the journal as a Crypt4GH header sealed to the user's own key).

State: the temp file, the journal and a lock file live in the user's private
state dir (``private_files.state_dir``, 0700) under names derived from the
input path and alias (``UploadState``); no path is ever read from a journal.
The lock (``locks.hold``) keeps a second run of the same upload from touching
the first one's state: it fails at once, naming the process that holds it.

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
input re-hashed, if the kill came before the note). So the temp file is not
needed then: it is removed before the close, and its absence does not make
such a journal stale. Each confirmed part is punched out of the temp file as
it goes (``PartUploads``), so it shrinks on disk while the upload runs.

Failure policy (``_keeps_state``): an interruption, exhausted retries, or a
service that is unreachable or answers 5xx/401/403/408/429 (e.g. a token that
expired during a long upload, at any step including the close) keep the
upload, the temp file and the journal for a rerun, which sends no confirmed
part again. A definitive answer (the server refused the upload or its close:
checksum or size mismatch, the upload is gone), a changed input, a damaged
temp file and a local write error (the temp file or the journal: a full disk,
a removed file; the rerun may well use another ``--tmp-dir``, where kept state
would only block the alias) delete the upload on the server, as the official
client does, and remove the local state, so the rerun starts over.

What happens to an alias already in the box is decided by ``decide`` alone;
``--dry-run`` asks ``FileUploader.preview``, which goes through the same
journal checks and ``decide`` without changing anything, so the plan it prints
is what a real run then does.
"""

import base64
import dataclasses
import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from snakemake_ghga import crypt4gh as crypt
from snakemake_ghga.errors import (
    ApiError,
    GhgaError,
    InputFileError,
    PartFailedError,
    UnfinishedUploadError,
    local_write_error,
)
from snakemake_ghga.files import locks
from snakemake_ghga.files.freespace import require_free_space
from snakemake_ghga.files.private import open_private, state_dir, state_dir_path
from snakemake_ghga.ghga.models import FileUpload, UploadChecksums
from snakemake_ghga.transfer.context import RunContext, UploadResult
from snakemake_ghga.transfer.engine import Cancelled
from snakemake_ghga.transfer.journal import Fingerprint, Journal, UploadHeader
from snakemake_ghga.transfer.part_uploads import (
    PartUploads,
    UploadPlan,
    every_part_confirmed,
)
from snakemake_ghga.transfer.parts import (
    plan_parts,
    requested_part_size,
    upload_part_size,
)

__all__ = ["FileUploader", "UploadDecision", "UploadState", "decide", "upload_state"]

logger = logging.getLogger(__name__)
SOON_DONE_BYTES = 16 * 1024 * 1024
LIVE_STATES = frozenset(
    {"init", "inbox", "interrogated", "awaiting_archival", "archived"}
)


# Answers that may change on a rerun; other 4xx are definitive.
_TRANSIENT_STATUS = frozenset({401, 403, 408, 429})


@dataclass(frozen=True, slots=True)
class UploadState:
    """Where one upload keeps its state: files in the private state dir."""

    temp: Path
    journal: Path
    lock: Path


def upload_state(tmp_dir: Path | None, source: Path, alias: str) -> UploadState:
    """Return the state files of an upload: stable across runs, never shared.

    The names derive from the input's absolute path and the alias only; the
    directory is ``private_files.state_dir_path(tmp_dir)``.
    """
    key = hashlib.sha256(f"{source.resolve()}\0{alias}".encode()).hexdigest()[:20]
    base = state_dir_path(tmp_dir) / f"upload-{key}"
    return UploadState(
        base.with_suffix(".c4gh"),
        base.with_suffix(".journal"),
        base.with_suffix(".lock"),
    )


_CLOSED = "the interrupted upload was already closed"
_UNFINISHED_HINT = "Pass --overwrite to replace it, or remove it first"


@dataclass(frozen=True, slots=True)
class UploadDecision:
    """What an upload does with one alias; the real run and the dry run share it.

    ``action``: ``upload`` (no live upload of the alias), ``resume`` (our
    interrupted upload), ``replace`` (``--overwrite``, or our own unfinished
    upload), ``skip`` (already in the box) or ``refuse`` (another client's
    unfinished upload; for ``preview``, also an input ``upload`` would refuse).
    ``reason`` says why for skip and refuse.
    """

    action: Literal["upload", "resume", "replace", "skip", "refuse"]
    reason: str = ""
    delete_first: bool = False


def decide(
    alias: str, known: FileUpload | None, *, overwrite: bool, ours: bool = False
) -> UploadDecision:
    """Decide what to do with ``alias`` given its upload in the box (or None).

    Args:
        alias: the alias to upload.
        known: the box's upload of that alias, if any.
        overwrite: the user asked to replace what is there.
        ours: a journal of ours shows that an unfinished upload of it is ours.
    """
    if known is None or known.state not in LIVE_STATES:  # cancelled or failed
        return UploadDecision("upload")
    if known.state == "init":
        if overwrite or ours:  # the create replaces an unfinished upload itself
            return UploadDecision("replace")
        return UploadDecision(
            "refuse", f"an unfinished upload named '{alias}' is in the box"
        )
    if not overwrite:
        return UploadDecision("skip", f"already in the box ({known.state})")
    # The UCS replaces only unfinished and inbox uploads; others are deleted.
    return UploadDecision("replace", delete_first=known.state != "inbox")


class FileUploader:
    """Uploads single files within a run; ``existing`` is the box listing."""

    def __init__(self, ctx: RunContext, existing: dict[str, FileUpload]) -> None:
        self._ctx = ctx
        self._existing = existing

    def upload(
        self,
        path: Path,
        alias: str,
        *,
        overwrite: bool,
        replace_unfinished: bool = False,
    ) -> UploadResult:
        """Upload ``path`` as ``alias``; skip it if the box has it already.

        ``replace_unfinished``: treat an unfinished upload of the alias without
        local resume state as ours (replace it) instead of refusing it.

        Raises:
            GhgaError: the file could not be uploaded (see the failure policy).
        """
        plain_size = crypt.check_plaintext_input(path)
        state_dir(self._ctx.config.tmp_dir)  # ours and private, or refused
        state = upload_state(self._ctx.config.tmp_dir, path, alias)
        with locks.hold(state.lock, f"the upload of {path} as '{alias}'"):
            return self._upload(
                path, alias, plain_size, state, overwrite, replace_unfinished
            )

    def _upload(
        self,
        path: Path,
        alias: str,
        plain_size: int,
        state: UploadState,
        overwrite: bool,
        replace_unfinished: bool,
    ) -> UploadResult:
        journal = Journal.load(state.journal)
        orphan = _remove_pending(journal)
        plan = self._resume(path, alias, state, None if orphan else journal)
        if plan is not None:
            return self._run(path, plan)
        known = self._existing.get(alias)
        orphan = orphan or replace_unfinished
        decision = decide(alias, known, overwrite=overwrite, ours=orphan)
        if decision.action == "refuse":
            raise UnfinishedUploadError(decision.reason, _UNFINISHED_HINT)
        if known is not None and decision.action == "skip":
            return UploadResult(
                path,
                alias,
                "skipped",
                known.file_id,
                known.decrypted_size,
                known.encrypted_size,
                error=decision.reason,
            )
        if known is not None and decision.delete_first:
            self._ctx.api.delete_upload(known.file_id)
        plan = self._start(
            path, alias, plain_size, state, overwrite=overwrite or orphan
        )
        return self._run(path, plan)

    def preview(self, path: Path, alias: str, *, overwrite: bool) -> UploadDecision:
        """Return what ``upload`` would do with ``path`` now; change nothing."""
        try:  # upload() checks the input first, too
            crypt.check_plaintext_input(path)
        except InputFileError as err:
            return UploadDecision("refuse", str(err))
        state = upload_state(self._ctx.config.tmp_dir, path, alias)
        journal = Journal.load(state.journal)
        header = journal.header if journal is not None else None
        if not isinstance(header, UploadHeader):
            header = None
        known = self._existing.get(alias)
        if journal is not None and header is not None and header.file_id:
            if self._stale_reason(path, header, state.temp, journal) is None:
                return UploadDecision("resume")
            if self._owns_unfinished(header):  # upload() deletes it, then decides
                known = None
        pending = header is not None and not header.file_id
        return decide(alias, known, overwrite=overwrite, ours=pending)

    def _start(
        self,
        path: Path,
        alias: str,
        plain_size: int,
        state: UploadState,
        overwrite: bool,
    ) -> UploadPlan:
        """Create the server-side upload; a pending journal covers the gap."""
        ctx = self._ctx
        encrypted = crypt.encrypted_size(plain_size)
        _require_temp_space(state.temp, encrypted, alias)
        requested = requested_part_size(encrypted, ctx.config)
        part_size = upload_part_size(encrypted, requested)
        session_key = os.urandom(32)
        sealed = crypt.make_header(session_key, ctx.my_secret_key, ctx.my_public_key)
        state.temp.unlink(missing_ok=True)
        pending = _pending_header(path, alias, part_size, encrypted, sealed)
        journal_path = state.journal
        Journal.create(journal_path, pending)
        try:
            created = ctx.api.create_upload(
                alias, plain_size, encrypted, part_size, overwrite=overwrite
            )
        except GhgaError:  # refused: nothing was created, nothing to resume
            journal_path.unlink(missing_ok=True)
            raise
        if encrypted <= SOON_DONE_BYTES:  # its close comes within the WOT's life
            ctx.api.prefetch_close_token(created.file_id)
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
        return UploadPlan(journal, session_key, hub_key, state.temp)

    def _resume(
        self, path: Path, alias: str, state: UploadState, journal: Journal | None
    ) -> UploadPlan | None:
        if journal is None or not isinstance(journal.header, UploadHeader):
            state.temp.unlink(missing_ok=True)
            return None
        header = journal.header
        reason = self._stale_reason(path, header, state.temp, journal)
        if reason is not None:
            closed = reason.startswith(_CLOSED)
            self._ctx.progress.file_notice(
                alias,
                f"{reason}; dropping its resume journal"
                if closed
                else f"discarding the resume journal: {reason}; starting over",
            )
            self._discard(journal, header, state.temp)
            return None
        # what the resumed encryption writes (confirmed parts left holes)
        parts = plan_parts(header.encrypted_size, header.part_size)
        last = max(journal.records, default=0)
        rest = sum(part.size for part in parts if part.number > last)
        _require_temp_space(state.temp, rest, alias)
        opened = crypt.parse_header(
            base64.b64decode(header.sealed_session_key), self._ctx.my_secret_key
        )
        count = parts.count
        done = sum(1 for number in journal.records if 1 <= number <= count)
        self._ctx.progress.file_notice(
            alias, f"resuming: {done} of {count} parts already uploaded"
        )
        hub_key = self._ctx.hub_key(header.storage_alias)
        return UploadPlan(journal, opened.session_keys[0], hub_key, state.temp)

    def _stale_reason(
        self, path: Path, header: UploadHeader, temp: Path, journal: Journal
    ) -> str | None:
        known = self._existing.get(header.alias)
        if header.fingerprint != Fingerprint.of(path):
            return "the input file changed since the interrupted upload"
        if not temp.is_file() and not every_part_confirmed(journal):
            return "its encrypted temp file is gone"
        if known is not None and known.file_id == header.file_id:
            if known.state != "init":
                return f"{_CLOSED} ({known.state})"
            return None
        return "the server no longer holds the unfinished upload"

    def _owns_unfinished(self, header: UploadHeader) -> bool:
        known = self._existing.get(header.alias)
        return (
            known is not None
            and known.file_id == header.file_id
            and known.state == "init"
        )

    def _discard(self, journal: Journal, header: UploadHeader, temp: Path) -> None:
        if self._owns_unfinished(header):
            self._delete_quietly(header.file_id)
            self._existing.pop(header.alias, None)
        temp.unlink(missing_ok=True)
        journal.remove()

    def _delete_quietly(self, file_id: str) -> None:
        try:
            self._ctx.api.delete_upload(file_id)
        except GhgaError as err:
            logger.warning("could not delete the failed upload %s: %s", file_id, err)

    # -- transfer -------------------------------------------------------------

    def _run(self, path: Path, plan: UploadPlan) -> UploadResult:
        header = plan.header
        try:
            result = self._transfer(path, plan)
        except BaseException as err:
            if _keeps_state(err):
                if isinstance(err, GhgaError):
                    self._ctx.progress.file_notice(header.alias, _KEPT_NOTICE)
                raise
            self._delete_quietly(header.file_id)
            plan.temp.unlink(missing_ok=True)
            plan.journal.remove()
            raise
        plan.temp.unlink(missing_ok=True)
        plan.journal.remove()
        return result

    def _transfer(self, path: Path, plan: UploadPlan) -> UploadResult:
        header, ctx = plan.header, self._ctx
        already = sum(p.size for p in plan.parts if p.number in plan.journal.records)
        ctx.progress.file_started(header.alias, header.encrypted_size)
        ctx.progress.file_progress(header.alias, already)
        if every_part_confirmed(plan.journal):  # an earlier run sent them all
            bytes_sent = 0
            plain_sha256 = plan.journal.notes.get("plain_sha256") or _sha256_of(path)
        else:
            bytes_sent, plain_sha256 = self._send_parts(path, plan)
        _remove_quietly(plan.temp)  # every part is confirmed: the close needs none
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
            bytes_sent,
        )

    def _send_parts(self, path: Path, plan: UploadPlan) -> tuple[int, str]:
        """PUT the kept parts and encrypt and PUT the rest.

        Returns:
            The bytes sent and the plaintext SHA-256 of the whole file.
        """
        try:
            fd = open_private(plan.temp)
        except OSError as err:
            raise local_write_error(plan.temp, err) from None
        parts = PartUploads(self._ctx, plan, fd)
        try:
            for part in plan.kept_parts():
                parts.submit_kept(part)
            first_new = plan.resume_after + 1
            if first_new <= len(plan.parts):
                plain_sha256 = self._encrypt(path, plan, parts, first_new)
                plan.journal.note(plain_sha256=plain_sha256)
            else:  # parts were missing below the last confirmed one only
                plain_sha256 = plan.journal.notes.get("plain_sha256") or _sha256_of(
                    path
                )
            parts.wait()
        except BaseException:
            # A PUT still reading the fd after the close would read whatever file
            # next gets that fd number, and send it to this upload's URL.
            parts.stop()
            raise
        finally:
            os.close(fd)
        return parts.bytes_sent, plain_sha256

    def _encrypt(
        self, path: Path, plan: UploadPlan, parts: "PartUploads", first_part: int
    ) -> str:
        """Encrypt from ``first_part`` on, PUTting parts as they appear.

        Returns:
            The plaintext SHA-256 of the whole file.
        """
        header = plan.header
        try:
            encrypted = crypt.encrypt_file(
                path,
                plan.temp,
                writer_secret_key=self._ctx.my_secret_key,
                recipient_public_key=plan.hub_key,
                part_size=header.part_size,
                on_part=parts.submit,
                workers=2,
                session_key=plan.session_key,
                first_part=first_part,
                stopped=lambda: self._ctx.engine.stopped,  # Ctrl-C: within a block
            )
        except Cancelled:
            parts.wait()  # raises the part error that caused the cancel
            raise
        assert encrypted.plain_sha256 is not None  # hash_plaintext defaults on
        return encrypted.plain_sha256


def _require_temp_space(temp: Path, needed: int, alias: str) -> None:
    """Fail before the create (or resumed encryption) if the temp file cannot fit."""
    require_free_space(
        temp.parent.parent,  # the --tmp-dir, not our private dir inside it
        needed,
        f"the encrypted temp file of '{alias}'",
        "Free space there or choose another directory with --tmp-dir",
    )


def _pending_header(
    path: Path, alias: str, part_size: int, encrypted: int, sealed: bytes
) -> UploadHeader:
    """A journal header written before the create: no file id yet."""
    return UploadHeader(
        str(path.resolve()),
        alias,
        Fingerprint.of(path),
        "",
        "",
        part_size,
        encrypted,
        base64.b64encode(sealed).decode(),
    )


_KEPT_NOTICE = (
    "the upload is kept: rerun the same command to finish it "
    "(parts already sent are not sent again)"
)


def _keeps_state(err: BaseException) -> bool:
    """Whether a failed upload keeps its server upload, temp file and journal.

    Only an answer that may change on a rerun keeps them (see the module's
    failure policy).
    """
    if isinstance(err, (KeyboardInterrupt, PartFailedError, Cancelled)):
        return True
    if isinstance(err, ApiError):
        status = err.status
        return status is None or status >= 500 or status in _TRANSIENT_STATUS
    return False


def _remove_pending(journal: Journal | None) -> bool:
    """Drop a journal written just before a create that may not have happened.

    Returns:
        True if it was one: an ``init`` upload of the alias is then ours.
    """
    if journal is None or not isinstance(journal.header, UploadHeader):
        return False
    if journal.header.file_id:
        return False
    journal.remove()
    return True


def _remove_quietly(temp: Path) -> None:
    """Remove a temp file no longer needed; a failure leaves it to the next run."""
    try:
        temp.unlink(missing_ok=True)
    except OSError as err:
        logger.warning("could not remove %s: %s", temp, err)


def _sha256_of(path: Path) -> str:
    """The SHA-256 of the (unchanged, fingerprint-checked) plaintext."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _checksums(plan: UploadPlan, plain_sha256: str) -> UploadChecksums:
    records = plan.journal.records
    parts = [
        crypt.EncryptedPart(
            p.number,
            p.offset,
            p.size,
            records[p.number]["md5"],
            records[p.number]["sha256"],
        )
        for p in plan.parts
    ]
    return UploadChecksums(
        plain_sha256,
        crypt.multipart_etag(parts),
        [p.md5 for p in parts],
        [p.sha256 for p in parts],
    )
