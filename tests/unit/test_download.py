"""download's sink and ordered hasher on a local temp file (no sockets)."""

import hashlib
import os
import threading
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from snakemake_ghga import crypt4gh as crypt
from snakemake_ghga.config import BUFFER_BYTES
from snakemake_ghga.errors import DecryptionError
from snakemake_ghga.transfer.download import _OrderedHasher, _Sink
from snakemake_ghga.transfer.engine import Cancelled
from snakemake_ghga.transfer.parts import CIPHER_SEGMENT_SIZE, plan_parts

SESSION_KEY = bytes(range(32))
HEADER = b"h" * 124
PART_SIZE = 80 * CIPHER_SEGMENT_SIZE


def _ciphertext(plain: bytes) -> bytes:
    out = bytearray(len(plain) + 28 * -(-len(plain) // crypt.SEGMENT_SIZE))
    count = crypt.SegmentCipher(SESSION_KEY).encrypt_into(
        memoryview(plain), memoryview(out)
    )
    return bytes(out[:count])


@pytest.fixture
def temp_fd(tmp_path: Path) -> Iterator[int]:
    fd = os.open(tmp_path / "out.part", os.O_RDWR | os.O_CREAT, 0o600)
    yield fd
    os.close(fd)


def _sink(fd: int, keep: bool) -> _Sink:
    decryptor = crypt.SegmentDecryptor([SESSION_KEY])
    scratch = memoryview(bytearray(16 * BUFFER_BYTES))  # these tests write whole files
    return _Sink(fd, "out.part", decryptor, keep, len(HEADER), lambda: scratch)


@pytest.mark.parametrize("keep", [False, True])
def test_sink_corrupt_segment_raises_and_writes_nothing(
    temp_fd: int, keep: bool
) -> None:
    cipher = bytearray(_ciphertext(os.urandom(3 * crypt.SEGMENT_SIZE)))
    cipher[CIPHER_SEGMENT_SIZE + 500] ^= 0xFF  # segment 1
    with pytest.raises(DecryptionError, match="segment 1 "):
        _sink(temp_fd, keep).write(0, memoryview(cipher))
    assert os.fstat(temp_fd).st_size == 0


def test_sink_keep_encrypted_writes_checked_ciphertext_after_header(
    temp_fd: int,
) -> None:
    cipher = _ciphertext(os.urandom(2 * crypt.SEGMENT_SIZE + 7))
    _sink(temp_fd, keep=True).write(0, memoryview(cipher))
    assert os.pread(temp_fd, len(cipher) + 10, len(HEADER)) == cipher


def _written(
    fd: int, plain: bytes, keep: bool, is_stopped: Callable[[], bool] = lambda: False
) -> tuple[_OrderedHasher, int]:
    """Write ``plain`` as the sink would; return a hasher and the part count."""
    cipher = _ciphertext(plain)
    sink = _sink(fd, keep)
    if keep:
        sink.write_at(HEADER, 0)
    for start in range(0, len(cipher), PART_SIZE):
        sink.write(start, memoryview(cipher[start : start + PART_SIZE]))
    plan = plan_parts(len(cipher), PART_SIZE)
    decryptor = crypt.SegmentDecryptor([SESSION_KEY]) if keep else None
    return _OrderedHasher(fd, plan, len(HEADER), decryptor, is_stopped), plan.count


@pytest.mark.parametrize("keep", [False, True])
def test_hasher_out_of_order_parts_hash_in_file_order(temp_fd: int, keep: bool) -> None:
    plain = os.urandom(3 * PART_SIZE)
    hasher, count = _written(temp_fd, plain, keep)
    for number in reversed(range(1, count + 1)):
        hasher.part_done(number)
    assert hasher.hexdigest() == hashlib.sha256(plain).hexdigest()


@pytest.mark.parametrize("keep", [False, True])
def test_hasher_reads_back_without_allocating_per_read(
    temp_fd: int, keep: bool
) -> None:
    hasher, count = _written(temp_fd, os.urandom(2 * PART_SIZE), keep)
    tracemalloc.start()
    try:
        for number in range(1, count + 1):
            hasher.part_done(number)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024  # reads of ~1 MiB each: none may be a new buffer


def test_hasher_cancelled_mid_part_stops_within_one_block(
    temp_fd: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    cancel = threading.Event()
    hasher, count = _written(temp_fd, os.urandom(3 * PART_SIZE), False, cancel.is_set)
    real_plaintext = hasher._plaintext
    reads: list[int] = []

    def plaintext(cipher_offset: int, cipher_size: int) -> memoryview:
        reads.append(cipher_offset)
        cancel.set()  # another part failed while part 1 is read back
        return real_plaintext(cipher_offset, cipher_size)

    monkeypatch.setattr(hasher, "_plaintext", plaintext)
    for number in range(1, count + 1):  # later parts do not restart hashing
        hasher.part_done(number)
    assert reads == [0]  # of 5 blocks in each of 3 parts
    with pytest.raises(Cancelled, match="read-back"):
        hasher.hexdigest()
