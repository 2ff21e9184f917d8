"""The Crypt4GH v1 format: header, segment ciphers, sizes, detection.

In ``crypt4gh``: imports `errors`, `files.private` and the crypt4gh/cryptography
libraries only.

Implementation notes:
- Headers are built and parsed by the `crypt4gh` library (one data-key packet,
  no edit list: 124 bytes for one recipient).
- Bulk segments use `cryptography`'s ChaCha20Poly1305, which releases the GIL
  (crypt4gh's own libsodium binding does not), with `encrypt_into` /
  `decrypt_into` on reused buffers; ciphertext is byte-compatible.
"""

import errno
import io
import logging
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from crypt4gh import header as _c4gh_header
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from snakemake_ghga.errors import DecryptionError, InputFileError, local_write_error
from snakemake_ghga.files.private import open_own, private_temp

__all__ = [
    "BLOCK_SEGMENTS",
    "CIPHER_SEGMENT_SIZE",
    "HEADER_SIZE",
    "MAGIC",
    "SEGMENT_SIZE",
    "Header",
    "SegmentCipher",
    "SegmentDecryptor",
    "check_plaintext_input",
    "encrypted_size",
    "is_crypt4gh",
    "make_header",
    "parse_header",
    "plain_size_of",
    "private_output",
    "publish",
    "pwrite_all",
]

logger = logging.getLogger(__name__)
logging.getLogger("crypt4gh").setLevel(logging.CRITICAL)  # it logs keys at DEBUG

MAGIC = b"crypt4gh\x01\x00\x00\x00"
SEGMENT_SIZE = 65_536
NONCE_SIZE = 12
MAC_SIZE = 16
SESSION_KEY_SIZE = 32  # ChaCha20-Poly1305
SEGMENT_OVERHEAD = NONCE_SIZE + MAC_SIZE
CIPHER_SEGMENT_SIZE = SEGMENT_SIZE + SEGMENT_OVERHEAD
HEADER_SIZE = 124
C4GH_SUFFIX = ".c4gh"
# Segments per unit of work: 1 MiB of plaintext keeps Python overhead small.
BLOCK_SEGMENTS = 16
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def encrypted_size(plain_size: int, header_size: int = HEADER_SIZE) -> int:
    """Size of a Crypt4GH file: d + 28 * ceil(d / 65536) + header."""
    segments = -(-plain_size // SEGMENT_SIZE)
    return plain_size + SEGMENT_OVERHEAD * segments + header_size


def plain_size_of(cipher_body_size: int) -> int:
    """Plaintext size of a ciphertext body (no header)."""
    full, rest = divmod(cipher_body_size, CIPHER_SEGMENT_SIZE)
    if rest and rest <= SEGMENT_OVERHEAD:
        raise DecryptionError(
            f"ciphertext body of {cipher_body_size} bytes ends in a truncated segment"
        )
    return full * SEGMENT_SIZE + (rest - SEGMENT_OVERHEAD if rest else 0)


def is_crypt4gh(path: str | os.PathLike[str]) -> bool:
    """True if the file starts with the Crypt4GH v1 magic or ends in `.c4gh`."""
    file_path = Path(path)
    if file_path.suffix.lower() == C4GH_SUFFIX:
        return True
    with open(file_path, "rb") as handle:
        return handle.read(len(MAGIC)) == MAGIC


def check_plaintext_input(path: str | os.PathLike[str]) -> int:
    """Check that a file can be encrypted for GHGA and return its size.

    Raises:
        InputFileError: missing, a directory, unreadable, empty, or already
            Crypt4GH (by magic bytes or the `.c4gh` ending).
    """
    file_path = Path(path)
    try:
        status = file_path.stat()
        size = status.st_size
        if stat.S_ISDIR(status.st_mode):
            raise InputFileError(
                f"{file_path} is a directory", "Pass the files inside it instead"
            )
        encrypted = is_crypt4gh(file_path)
    except FileNotFoundError:
        raise InputFileError(
            f"input file not found: {file_path}", "Check the path"
        ) from None
    except PermissionError:
        raise InputFileError(
            f"cannot read input file {file_path}: permission denied",
            "Make it readable (chmod u+r) or run as its owner",
        ) from None
    if encrypted:
        raise InputFileError(
            f"{file_path} is already Crypt4GH-encrypted (magic bytes or .c4gh ending)",
            "Pass the plaintext file; GHGA encrypts uploads itself and double "
            "encryption would make the data unreadable",
        )
    if size == 0:
        raise InputFileError(
            f"{file_path} is empty", "GHGA accepts only files of at least 1 byte"
        )
    return size


def make_header(
    session_key: bytes, writer_secret_key: bytes, recipient_public_key: bytes
) -> bytes:
    """Build a one-recipient header: one data-key packet, no edit list."""
    packet = _c4gh_header.make_packet_data_enc(0, session_key)
    packets = _c4gh_header.encrypt(
        packet, [(0, writer_secret_key, recipient_public_key)]
    )
    return bytes(_c4gh_header.serialize(list(packets)))


@dataclass(frozen=True, slots=True)
class Header:
    """A parsed header: its data keys, optional edit list and byte size."""

    session_keys: list[bytes]
    edit_list: list[int] | None
    size: int

    def __repr__(self) -> str:  # never show key material
        return f"Header(keys={len(self.session_keys)}, size={self.size})"


def parse_header(source: bytes | BinaryIO, reader_secret_key: bytes) -> Header:
    """Decrypt a header with the reader's secret key (any sender).

    Raises:
        DecryptionError: not Crypt4GH, or no packet is encrypted for this key.
    """
    stream = io.BytesIO(source) if isinstance(source, bytes) else source
    start = stream.tell()
    try:
        keys, edits = _c4gh_header.deconstruct(stream, [(0, reader_secret_key, None)])
    except ValueError as err:
        if "No supported encryption method" in str(err):
            raise DecryptionError(
                "no header packet is encrypted for this private key",
                "Use the private key whose public key was given when the file "
                "was encrypted or the token was issued",
            ) from None
        raise DecryptionError(f"not a valid Crypt4GH header ({err})") from None
    session_keys = [bytes(k) for k in keys]
    if any(len(key) != SESSION_KEY_SIZE for key in session_keys):
        raise DecryptionError(
            f"the header's data key is not {SESSION_KEY_SIZE} bytes long",
            "The header is malformed; fetch or copy the file again",
        )
    edit_list = list(edits) if edits is not None else None
    return Header(session_keys, edit_list, stream.tell() - start)


class SegmentCipher:
    """Encrypts whole 64 KiB segments with one session key (GIL released)."""

    def __init__(self, session_key: bytes) -> None:
        self._aead = ChaCha20Poly1305(session_key)

    def __repr__(self) -> str:
        return "SegmentCipher(<key redacted>)"

    def encrypt_into(self, plain: memoryview, out: memoryview) -> int:
        """Encrypt `plain` (segments; the last may be short) into `out`.

        Returns:
            The number of ciphertext bytes written.
        """
        written = 0
        for start in range(0, len(plain), SEGMENT_SIZE):
            segment = plain[start : start + SEGMENT_SIZE]
            end = written + NONCE_SIZE + len(segment) + MAC_SIZE
            nonce = os.urandom(NONCE_SIZE)
            out[written : written + NONCE_SIZE] = nonce
            self._aead.encrypt_into(
                nonce, segment, None, out[written + NONCE_SIZE : end]
            )
            written = end
        return written


class SegmentDecryptor:
    """Decrypts whole cipher segments, trying each session key in turn."""

    def __init__(self, session_keys: list[bytes]) -> None:
        if not session_keys:
            raise DecryptionError("the header carries no data key")
        self._aeads = [ChaCha20Poly1305(key) for key in session_keys]

    def __repr__(self) -> str:
        return f"SegmentDecryptor(<{len(self._aeads)} key(s) redacted>)"

    def decrypt_into(
        self, cipher: memoryview, out: memoryview, first_segment: int = 0
    ) -> int:
        """Decrypt `cipher` (segments; the last may be short) into `out`.

        Returns:
            The number of plaintext bytes written.

        Raises:
            DecryptionError: a segment is truncated or fails authentication.
        """
        written = 0
        for index, start in enumerate(range(0, len(cipher), CIPHER_SEGMENT_SIZE)):
            segment = cipher[start : start + CIPHER_SEGMENT_SIZE]
            size = len(segment) - SEGMENT_OVERHEAD
            if size <= 0:
                raise _segment_error(first_segment + index, "is truncated")
            self._open(segment, out[written : written + size], first_segment + index)
            written += size
        return written

    def _open(self, segment: memoryview, out: memoryview, number: int) -> None:
        nonce = bytes(segment[:NONCE_SIZE])
        for aead in self._aeads:
            try:
                aead.decrypt_into(nonce, segment[NONCE_SIZE:], None, out)
                return
            except InvalidTag:
                continue
        raise _segment_error(number, "failed authentication (MAC mismatch)")


def _segment_error(number: int, what: str) -> DecryptionError:
    return DecryptionError(
        f"segment {number} (cipher bytes from {number * CIPHER_SEGMENT_SIZE} after "
        f"the header) {what}",
        "The ciphertext is corrupted or truncated; fetch or copy it again",
    )


def pwrite_all(fd: int, data: memoryview | bytes, offset: int) -> None:
    """pwrite every byte; a short write (e.g. a full disk) becomes ENOSPC."""
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        if written <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view, offset = view[written:], offset + written


def publish(temp: Path, destination: Path) -> None:
    """Give a finished private temp file the usual mode and rename it into place.

    The mode is set through an fd of the temp file, which must be a file of
    ours (never a symlink planted in its place); a symlink at `destination`
    is replaced, not followed.
    """
    fd = open_own(temp, os.O_RDONLY)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)
    finally:
        os.close(fd)
    os.replace(temp, destination)


@contextmanager
def private_output(destination: Path) -> Iterator[tuple[int, Path]]:
    """Yield (fd, temp path) of a new 0600 file beside `destination`.

    The temp file gets a random name and is created exclusively, never
    through a link. On success it is renamed onto `destination` and given the
    usual umask-derived mode; on any error it is removed, so no partial file
    remains.
    """
    try:
        fd, temp = private_temp(destination.parent, f".{destination.name}.", ".part")
    except OSError as err:
        raise local_write_error(destination.parent, err) from None
    try:
        yield fd, temp
        os.fchmod(fd, 0o666 & ~_UMASK)
        os.close(fd)
        fd = -1
        os.replace(temp, destination)
    except OSError as err:
        _discard(fd, temp)
        raise local_write_error(destination, err) from None
    except BaseException:
        _discard(fd, temp)
        raise


def _discard(fd: int, temp: Path) -> None:
    if fd >= 0:
        os.close(fd)
    temp.unlink(missing_ok=True)
