"""One-pass encryption of a file to Crypt4GH with every checksum GHGA wants; layer 1.

A single read of the plaintext yields the Crypt4GH file, the plaintext SHA-256
and, per upload part, the MD5 and SHA-256 of the encrypted bytes, from which
the S3 multipart ETag follows. Nothing re-reads the output. The threads doing
it live in `encryption_stages`.

Resuming: encryption can restart at a later part of an existing output (same
session key); the bytes of the segment that straddles the part boundary are
read back from the file, since re-encrypting them would change the part before.
"""

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from snakemake_ghga.crypt4gh.format import (
    CIPHER_SEGMENT_SIZE,
    HEADER_SIZE,
    SEGMENT_SIZE,
    SegmentDecryptor,
    check_plaintext_input,
    make_header,
    pwrite_all,
)
from snakemake_ghga.crypt4gh.stages import (
    EncryptedPart,
    Layout,
    multipart_etag,
    plan_layout,
    run_stages,
)
from snakemake_ghga.errors import DecryptionError, InputFileError, local_write_error
from snakemake_ghga.files.private import open_own, open_private

__all__ = [
    "EncryptedPart",
    "EncryptionResult",
    "encrypt_file",
    "encrypted_temp_file",
    "multipart_etag",
]


@dataclass(frozen=True, slots=True)
class EncryptionResult:
    """What one encryption produced; `parts` is empty when no part size was given,
    and holds only the new parts when encryption resumed at a later part."""

    path: Path
    plain_size: int
    encrypted_size: int
    plain_sha256: str | None
    part_size: int | None
    parts: tuple[EncryptedPart, ...]

    @property
    def multipart_etag(self) -> str:
        """The S3 multipart ETag over `parts`."""
        return multipart_etag(self.parts)


def encrypt_file(
    source: str | os.PathLike[str],
    destination: str | os.PathLike[str],
    *,
    writer_secret_key: bytes,
    recipient_public_key: bytes,
    part_size: int | None = None,
    on_part: Callable[[EncryptedPart], None] | None = None,
    workers: int = 2,
    session_key: bytes | None = None,
    first_part: int = 1,
    hash_plaintext: bool = True,
    stopped: Callable[[], bool] = lambda: False,
) -> EncryptionResult:
    """Encrypt `source` into the Crypt4GH file `destination` in one pass.

    Args:
        source: the plaintext file; refused if empty or already Crypt4GH.
        destination: an existing file is overwritten, or continued when
            `first_part` > 1 (then `session_key` must be the one used before).
        writer_secret_key: the user's secret key (the header's writer).
        recipient_public_key: the reader's public key (GHGA's for uploads).
        part_size: cipher-file bytes per upload part; None skips part hashes.
        on_part: called from a hashing thread as each part is complete on disk.
        workers: encryption threads.
        session_key: the data key; random when None.
        first_part: resume at this 1-based part of an existing destination.
        hash_plaintext: compute the plaintext SHA-256 (None in the result
            otherwise; plain encryption does not need it).
        stopped: checked every block; once true, encryption ends with
            ``Cancelled`` (Ctrl-C during an upload).

    Returns:
        Sizes, the plaintext SHA-256 and the parts hashed by this call.

    Raises:
        InputFileError: unusable input; ValueError: bad resume arguments.
    """
    plain_size = check_plaintext_input(source)
    if first_part > 1 and session_key is None:
        raise ValueError("resuming needs the session key used before")
    layout = plan_layout(plain_size, part_size, first_part)
    key = session_key or os.urandom(32)
    header = make_header(key, writer_secret_key, recipient_public_key)
    src = os.open(source, os.O_RDONLY)
    try:
        dst = _open_destination(Path(destination), resume=first_part > 1)
    except BaseException:
        os.close(src)
        raise
    try:
        if first_part == 1:
            os.ftruncate(dst, 0)
            pwrite_all(dst, header, 0)
        prefix = _read_prefix(dst, layout)
        if first_part > 1:
            _check_straddling_segment(dst, layout, key)
        plain_sha256, parts = run_stages(
            src,
            dst,
            layout,
            key,
            prefix,
            part_size,
            on_part,
            workers,
            hash_plaintext,
            stopped,
        )
        os.ftruncate(dst, layout.total)
    except OSError as err:
        raise local_write_error(destination, err) from None
    finally:
        os.close(src)
        os.close(dst)
    return EncryptionResult(
        Path(destination), plain_size, layout.total, plain_sha256, part_size, parts
    )


def _open_destination(destination: Path, *, resume: bool) -> int:
    """Open the output: a new 0600 file, or one of ours (never through a link)."""
    try:
        return open_own(destination) if resume else open_private(destination)
    except OSError as err:
        raise local_write_error(destination, err) from None


def _read_prefix(dst: int, layout: Layout) -> bytes:
    """Bytes between where hashing starts and where encryption starts."""
    end = layout.cipher_offset(0) if layout.blocks else layout.total
    prefix = os.pread(dst, end - layout.hash_start, layout.hash_start)
    if len(prefix) != end - layout.hash_start:
        raise InputFileError("the encrypted temp file is shorter than its journal says")
    return prefix


def _check_straddling_segment(dst: int, layout: Layout, key: bytes) -> None:
    """Before resuming, prove the kept segment across the part boundary is intact."""
    if layout.first_segment == 0:
        return
    number = layout.first_segment - 1
    start = HEADER_SIZE + number * CIPHER_SEGMENT_SIZE
    segment = os.pread(dst, CIPHER_SEGMENT_SIZE, start)
    try:
        SegmentDecryptor([key]).decrypt_into(
            memoryview(segment), memoryview(bytearray(SEGMENT_SIZE)), number
        )
    except DecryptionError:
        raise InputFileError(
            "the encrypted temp file is damaged before the resume point",
            "Start the upload of this file from the beginning",
        ) from None


@contextmanager
def encrypted_temp_file(
    source: str | os.PathLike[str],
    *,
    tmp_dir: str | os.PathLike[str] | None = None,
    keep: bool = False,
    **kwargs: Any,
) -> Iterator[EncryptionResult]:
    """Encrypt `source` to a 0600 temp file and yield the result.

    The temp file (`ghga-<name>-XXXXXXXX.c4gh` in `tmp_dir`, default the system
    temp dir) is removed when the block exits, on success and on failure,
    unless `keep` is true. Other keyword arguments go to `encrypt_file`.
    """
    check_plaintext_input(source)
    fd, name = tempfile.mkstemp(
        prefix=f"ghga-{Path(source).name}-", suffix=".c4gh", dir=tmp_dir
    )
    os.close(fd)
    path = Path(name)
    try:
        yield encrypt_file(source, path, **kwargs)
    finally:
        if not keep:
            path.unlink(missing_ok=True)
