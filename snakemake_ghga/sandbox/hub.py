"""The sandbox's Data Hub: interrogates closed uploads and archives files for download.

Imports the stdlib, `snakemake_ghga.crypt4gh`/`keys`/`errors` and the sandbox's
`state`, `objects` and `records`; nothing from the client side.

What a GHGA Data Hub does with an upload in the inbox, and so what this does:
read the envelope, whose length follows from the declared sizes
(`encrypted_size − (decrypted_size + 28·ceil(decrypted_size/65536))`), open it
with the hub key (exactly one data key, no edit list), decrypt the body while
hashing the plaintext, compare with `decrypted_sha256`, re-encrypt under a
fresh data key into the outbox (ciphertext only, no header), and register a
`GHGAF…` accession. Any mismatch leaves the upload `failed` with a reason.
"""

import base64
import copy
import hashlib
import logging
import os
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from io import BufferedIOBase
from pathlib import Path

from snakemake_ghga import crypt4gh as crypt
from snakemake_ghga.crypt4gh import keys
from snakemake_ghga.errors import DecryptionError

from .objects import ObjectStore
from .records import AccessionRecord, UploadRecord
from .state import StateStore

__all__ = ["HubKeys", "InterrogationError", "Interrogator", "load_or_create_hub_keys"]

logger = logging.getLogger(__name__)

_BLOCK_SEGMENTS = 64  # 4 MiB of plaintext per step
_CIPHER_BLOCK_BYTES = _BLOCK_SEGMENTS * crypt.CIPHER_SEGMENT_SIZE
_PLAIN_BLOCK_BYTES = _BLOCK_SEGMENTS * crypt.SEGMENT_SIZE


class InterrogationError(Exception):
    """An upload that a Data Hub would reject; the message is the reason."""


class HubKeys:
    """The hub's Crypt4GH key pair (DIR/hub.sec, DIR/hub.pub)."""

    def __init__(self, secret_key: bytes, public_key: bytes) -> None:
        self.secret_key = secret_key
        self.public_key = public_key

    def __repr__(self) -> str:
        return "HubKeys(<secret redacted>)"


def load_or_create_hub_keys(state_dir: Path) -> HubKeys:
    """Load the hub key pair from the state directory, creating it on first use."""
    secret_path, public_path = state_dir / "hub.sec", state_dir / "hub.pub"
    if not secret_path.exists():
        secret, public = keys.generate_key_pair()
        temp = state_dir / f".hub.sec.{os.getpid()}.tmp"
        keys.write_private_key(temp, secret)
        keys.write_public_key(public_path, public)
        os.replace(temp, secret_path)
    secret = keys.load_private_key(secret_path)
    public = keys.public_key_of(secret)
    if not public_path.exists():
        keys.write_public_key(public_path, public)
    return HubKeys(secret, public)


def outbox_key(download_file_id: str) -> str:
    """The object key of an archived file's ciphertext."""
    return f"outbox/{download_file_id}"


def extension_of(name: str) -> str:
    """The file extension the official client appends (`.bam`, `.fastq.gz`)."""
    suffixes = Path(name).suffixes[-2:]
    if any(not s[1:].isalnum() or len(s) > 8 for s in suffixes):
        suffixes = suffixes[-1:]
    return "".join(s for s in suffixes if s[1:].isalnum() and len(s) <= 8)


def _read_full(source: BufferedIOBase, view: memoryview) -> int:
    filled = 0
    while filled < len(view):
        got = source.readinto(view[filled:])
        if not got:
            break
        filled += got
    return filled


class _Reencryption:
    """Streams ciphertext from one key to another while hashing the plaintext."""

    def __init__(self, out_fd: int) -> None:
        self.session_key = os.urandom(32)
        self.sha256 = hashlib.sha256()
        self.plain_bytes = 0
        self.cipher_bytes = 0
        self._cipher = crypt.SegmentCipher(self.session_key)
        self._out_fd = out_fd
        self._plain = memoryview(bytearray(_PLAIN_BLOCK_BYTES))
        self._out = memoryview(bytearray(_CIPHER_BLOCK_BYTES))

    def run(self, source: BufferedIOBase, decryptor: crypt.SegmentDecryptor) -> None:
        """Re-encrypt everything left in `source`, block by block."""
        block = memoryview(bytearray(_CIPHER_BLOCK_BYTES))
        segment = 0
        while filled := _read_full(source, block):
            plain = decryptor.decrypt_into(block[:filled], self._plain, segment)
            self.add_plain(self._plain[:plain])
            segment += _BLOCK_SEGMENTS

    def add_plain(self, plain: memoryview) -> None:
        """Hash, encrypt and write one block of plaintext."""
        self.sha256.update(plain)
        self.plain_bytes += len(plain)
        written = self._cipher.encrypt_into(plain, self._out)
        _write_all(self._out_fd, self._out[:written])
        self.cipher_bytes += written


def _write_all(fd: int, data: memoryview) -> None:
    done = 0
    while done < len(data):
        done += os.write(fd, data[done:])


class Interrogator:
    """Interrogates closed uploads on a background thread and registers accessions."""

    def __init__(self, state: StateStore, store: ObjectStore, hub: HubKeys) -> None:
        self._state = state
        self._store = store
        self._hub = hub
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def submit(self, file_id: str) -> None:
        """Queue the interrogation of a closed (`inbox`) upload."""
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(1, thread_name_prefix="sandbox-hub")
            self._executor.submit(self._interrogate_logged, file_id)

    def resume(self) -> None:
        """Queue every upload left in `inbox` by an earlier run."""
        with self._state.transaction() as state:
            pending = [
                u["id"] for u in state["uploads"].values() if u["state"] == "inbox"
            ]
        for file_id in pending:
            self.submit(file_id)

    def shutdown(self) -> None:
        """Finish queued interrogations and stop the worker (submit restarts it)."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)

    def _interrogate_logged(self, file_id: str) -> None:
        try:
            self.interrogate(file_id)
        except Exception:
            logger.exception("interrogation of upload %s crashed", file_id)

    def interrogate(self, file_id: str) -> None:
        """Decrypt, check and re-encrypt one upload; set `interrogated` or `failed`."""
        with self._state.transaction() as state:
            upload = copy.copy(state["uploads"][file_id])
        if upload["state"] != "inbox":
            return
        download_id = str(uuid.uuid4())
        temp = self._store.temp_dir / f"{download_id}.outbox"
        try:
            result = self._reencrypt(upload, temp)
        except (InterrogationError, DecryptionError) as err:
            temp.unlink(missing_ok=True)
            self._set_failed(file_id, str(err))
            return
        self._store.store_object(outbox_key(download_id), temp)
        accession = self.register(
            download_id, upload["alias"], upload["decrypted_size"], result
        )
        self._store.delete_object(f"inbox/{file_id}")
        with self._state.transaction() as state:
            record = state["uploads"][file_id]
            if record["state"] == "inbox":  # not cancelled meanwhile
                record["state"], record["accession"] = "interrogated", accession
        logger.info("upload %s interrogated as %s", upload["alias"], accession)

    def _reencrypt(self, upload: UploadRecord, temp: Path) -> _Reencryption:
        envelope_size = upload["encrypted_size"] - (
            crypt.encrypted_size(upload["decrypted_size"], header_size=0)
        )
        if envelope_size <= 0:
            raise InterrogationError(
                f"declared sizes leave {envelope_size} bytes for the envelope"
            )
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with self._store.open_object(f"inbox/{upload['id']}") as source:
                decryptor = self._open_envelope(source, envelope_size)
                job = _Reencryption(fd)
                job.run(source, decryptor)
        finally:
            os.close(fd)
        _check_plaintext(upload, job)
        return job

    def _open_envelope(
        self, source: BufferedIOBase, size: int
    ) -> crypt.SegmentDecryptor:
        envelope = source.read(size)
        header = crypt.parse_header(envelope, self._hub.secret_key)
        if len(header.session_keys) != 1:
            raise InterrogationError(
                f"envelope holds {len(header.session_keys)} data keys, not exactly 1"
            )
        if header.edit_list is not None:
            raise InterrogationError("envelope carries an edit list; not accepted")
        if header.size != size:
            raise InterrogationError(
                f"envelope is {header.size} bytes but the declared sizes imply {size}"
            )
        return crypt.SegmentDecryptor(header.session_keys)

    def register(
        self, download_id: str, name: str, plain_size: int, job: _Reencryption
    ) -> str:
        """Register an outbox object as a new accession; return the accession."""
        with self._state.transaction() as state:
            number = state["next_accession_number"]
            state["next_accession_number"] = number + 1
            accession = f"GHGAF{number:014d}"
            state["accessions"][accession] = AccessionRecord(
                accession=accession,
                file_id=download_id,
                name=name,
                extension=extension_of(name),
                decrypted_size=plain_size,
                decrypted_sha256=job.sha256.hexdigest(),
                object_size=job.cipher_bytes,
                session_key=base64.b64encode(job.session_key).decode("ascii"),
                created=time.time(),
            )
        return accession

    def _set_failed(self, file_id: str, reason: str) -> None:
        logger.warning("upload %s failed interrogation: %s", file_id, reason)
        with self._state.transaction() as state:
            record = state["uploads"][file_id]
            if record["state"] == "inbox":
                record["state"], record["failure_reason"] = "failed", reason

    def add_file(self, path: Path) -> str:
        """Archive a plaintext file directly, as if uploaded and ingested."""
        download_id = str(uuid.uuid4())
        temp = self._store.temp_dir / f"{download_id}.outbox"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            job = _Reencryption(fd)
            with open(path, "rb") as source:
                block = memoryview(bytearray(_PLAIN_BLOCK_BYTES))
                while filled := _read_full(source, block):
                    job.add_plain(block[:filled])
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        finally:
            os.close(fd)
        self._store.store_object(outbox_key(download_id), temp)
        return self.register(download_id, path.name, job.plain_bytes, job)

    def envelope(self, accession: AccessionRecord, user_public_key: bytes) -> bytes:
        """A personal Crypt4GH header for an accession, hub key → user key."""
        session_key = base64.b64decode(accession["session_key"])
        return crypt.make_header(session_key, self._hub.secret_key, user_public_key)


def _check_plaintext(upload: UploadRecord, job: _Reencryption) -> None:
    if job.plain_bytes != upload["decrypted_size"]:
        raise InterrogationError(
            f"decrypted {job.plain_bytes} bytes, declared {upload['decrypted_size']}"
        )
    actual = job.sha256.hexdigest()
    if actual != upload["decrypted_sha256"]:
        raise InterrogationError(
            f"plaintext SHA-256 is {actual}, declared {upload['decrypted_sha256']}"
        )
