"""Decryption of whole Crypt4GH files on several threads; layer 1.

Blocks of 16 segments are read with pread, decrypted with a GIL-releasing
cipher into per-thread buffers and written with pwrite at their plaintext
offset, so the work spreads over the cores and memory stays a few MiB.
Files with an edit list (GHGA never writes them) go through the crypt4gh
library itself. Output is atomic: a 0600 temp file renamed on success.
"""

import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

from crypt4gh import lib as _c4gh_lib

from snakemake_ghga.crypt4gh.format import (
    BLOCK_SEGMENTS,
    CIPHER_SEGMENT_SIZE,
    SEGMENT_SIZE,
    Header,
    SegmentDecryptor,
    parse_header,
    plain_size_of,
    private_output,
    pwrite_all,
)
from snakemake_ghga.errors import DecryptionError

__all__ = ["decrypt_file", "run_bounded"]

BLOCK_CIPHER_BYTES = BLOCK_SEGMENTS * CIPHER_SEGMENT_SIZE
BLOCK_PLAIN_BYTES = BLOCK_SEGMENTS * SEGMENT_SIZE


def run_bounded(
    pool: ThreadPoolExecutor,
    task: Callable[[int], None],
    items: Iterable[int],
    in_flight: int,
) -> None:
    """Run task(item) on the pool, at most `in_flight` pending; raise first error."""
    pending: list[Future[None]] = []
    try:
        for item in items:
            pending.append(pool.submit(task, item))
            if len(pending) >= in_flight:
                pending.pop(0).result()
        for future in pending:
            future.result()
    finally:
        for future in pending:
            future.cancel()


def decrypt_file(
    source: str | os.PathLike[str],
    destination: str | os.PathLike[str],
    reader_secret_key: bytes,
    workers: int = 2,
) -> int:
    """Decrypt a Crypt4GH file atomically; nothing is left behind on failure.

    Returns:
        The plaintext size in bytes.

    Raises:
        DecryptionError: wrong key, corrupted or truncated ciphertext; the
            message names the file and the segment.
    """
    source_path, destination_path = Path(source), Path(destination)
    with open(source_path, "rb") as handle:
        try:
            header = parse_header(handle, reader_secret_key)
            body_size = os.fstat(handle.fileno()).st_size - header.size
            with private_output(destination_path) as (fd, _):
                if header.edit_list is not None:
                    return _decrypt_with_library(handle, fd, reader_secret_key)
                return _decrypt_body(handle.fileno(), header, body_size, fd, workers)
        except DecryptionError as err:
            raise DecryptionError(f"{source_path}: {err.message}", err.hint) from None


def _decrypt_body(
    in_fd: int, header: Header, body_size: int, out_fd: int, workers: int
) -> int:
    """Decrypt all blocks of the body into out_fd and return the plaintext size."""
    plain_size = plain_size_of(body_size)
    decryptor = SegmentDecryptor(header.session_keys)
    local = threading.local()

    def run(block: int) -> None:
        if not hasattr(local, "cipher"):
            local.cipher = memoryview(bytearray(BLOCK_CIPHER_BYTES))
            local.plain = memoryview(bytearray(BLOCK_PLAIN_BYTES))
        offset = block * BLOCK_CIPHER_BYTES
        length = min(BLOCK_CIPHER_BYTES, body_size - offset)
        cipher = local.cipher[:length]
        if os.preadv(in_fd, [cipher], header.size + offset) != length:
            raise DecryptionError(f"ciphertext changed while reading at {offset}")
        done = decryptor.decrypt_into(cipher, local.plain, block * BLOCK_SEGMENTS)
        pwrite_all(out_fd, local.plain[:done], block * BLOCK_PLAIN_BYTES)

    blocks = -(-body_size // BLOCK_CIPHER_BYTES)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        run_bounded(pool, run, range(blocks), in_flight=2 * max(1, workers))
    os.ftruncate(out_fd, plain_size)
    return plain_size


def _decrypt_with_library(handle: BinaryIO, out_fd: int, secret_key: bytes) -> int:
    """Decrypt a file with an edit list through the crypt4gh library."""
    handle.seek(0)
    with os.fdopen(os.dup(out_fd), "wb") as out:
        try:
            _c4gh_lib.decrypt([(0, secret_key, None)], handle, out)
        except ValueError as err:
            raise DecryptionError(f"decryption failed ({err})") from None
        return out.tell()
