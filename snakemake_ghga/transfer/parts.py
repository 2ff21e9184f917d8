"""Part plans: how a file is cut into transfer requests. Pure, no I/O.

Imports only ``errors`` and ``config``. Upload parts follow the UCS rules
(ghga-connector.md §2, §8.9): the part size is a whole number of 65,564-byte
cipher segments, 5 MiB ≤ part ≤ 5 GiB, at most 10,000 parts, every part but
the last exactly ``part_size``. Download parts are ranges of the header-less
ciphertext, each a whole number of cipher segments, so every range decrypts on
its own and lands at a known plaintext offset.
"""

from collections.abc import Iterator
from dataclasses import dataclass

from snakemake_ghga.config import (
    DEFAULT_PART_SIZE_BYTES,
    MAX_PART_SIZE_BYTES,
    TransferConfig,
)
from snakemake_ghga.errors import ConfigError

__all__ = [
    "CIPHER_SEGMENT_SIZE",
    "MAX_PARTS",
    "MAX_UPLOAD_PART_SIZE",
    "MIN_UPLOAD_PART_SIZE",
    "PARTS_PER_WORKER",
    "SEGMENT_SIZE",
    "Part",
    "PartPlan",
    "auto_part_size",
    "download_part_size",
    "plain_offset_of",
    "plan_parts",
    "requested_part_size",
    "upload_part_size",
]

SEGMENT_SIZE = 65_536
CIPHER_SEGMENT_SIZE = 65_564
MAX_PARTS = 10_000
_PARTS_WITH_SLACK = 9_995  # as the official client: room for rounding
MIN_UPLOAD_PART_SIZE = 80 * CIPHER_SEGMENT_SIZE  # 5,245,120 ≥ 5 MiB
PARTS_PER_WORKER = 3  # so parts that finish early leave no connection idle
MAX_UPLOAD_PART_SIZE = (
    MAX_PART_SIZE_BYTES // CIPHER_SEGMENT_SIZE
) * CIPHER_SEGMENT_SIZE


@dataclass(frozen=True, slots=True)
class Part:
    """One transfer request: ``size`` bytes at ``offset`` (1-based ``number``)."""

    number: int
    offset: int
    size: int

    @property
    def end(self) -> int:
        """The offset one past the last byte."""
        return self.offset + self.size

    @property
    def byte_range(self) -> str:
        """Inclusive range as in an HTTP Range header, e.g. ``0-1023``."""
        return f"{self.offset}-{self.end - 1}"


@dataclass(frozen=True, slots=True)
class PartPlan:
    """``total_size`` bytes cut into parts of ``part_size`` (the last may be short)."""

    total_size: int
    part_size: int

    @property
    def count(self) -> int:
        """Number of parts; an empty file still has no parts."""
        return -(-self.total_size // self.part_size)

    def part(self, number: int) -> Part:
        """Return part ``number`` (1-based)."""
        if not 1 <= number <= self.count:
            raise IndexError(f"part {number} is not in 1..{self.count}")
        offset = (number - 1) * self.part_size
        return Part(number, offset, min(self.part_size, self.total_size - offset))

    def __iter__(self) -> Iterator[Part]:
        return (self.part(number) for number in range(1, self.count + 1))


def _round_up_to_segments(size: int) -> int:
    return -(-size // CIPHER_SEGMENT_SIZE) * CIPHER_SEGMENT_SIZE


def auto_part_size(total_size: int, workers: int) -> int:
    """A part size that spreads one file over ``workers`` connections.

    About ``PARTS_PER_WORKER`` parts per worker, in whole cipher segments,
    at least ``MIN_UPLOAD_PART_SIZE`` (the UCS minimum; smaller ranges would
    spend more on requests than they gain) and at most the 64 MiB that
    serves large files well. It depends on the file and the cap of workers
    only, never on the concurrency of the moment, so a rerun plans the same
    parts and can resume.
    """
    wanted = _round_up_to_segments(-(-total_size // (PARTS_PER_WORKER * workers)))
    largest = _round_up_to_segments(DEFAULT_PART_SIZE_BYTES)
    return max(MIN_UPLOAD_PART_SIZE, min(largest, wanted))


def requested_part_size(total_size: int, config: TransferConfig) -> int:
    """The configured part size, or the automatic one for this file."""
    if config.part_size_bytes is not None:
        return config.part_size_bytes
    return auto_part_size(total_size, config.worker_cap)


def upload_part_size(encrypted_size: int, requested: int) -> int:
    """Return the part size the UCS accepts for a Crypt4GH file of that size.

    Args:
        encrypted_size: size of the whole Crypt4GH file, header included.
        requested: the configured part size in bytes.

    Raises:
        ConfigError: the file is too large for 10,000 parts of at most 5 GiB.
    """
    size = _round_up_to_segments(requested)
    if -(-encrypted_size // size) >= MAX_PARTS:
        size = _round_up_to_segments(-(-encrypted_size // _PARTS_WITH_SLACK))
    size = max(MIN_UPLOAD_PART_SIZE, min(size, MAX_UPLOAD_PART_SIZE))
    if -(-encrypted_size // size) > MAX_PARTS:
        raise ConfigError(
            f"a file of {encrypted_size} encrypted bytes does not fit in "
            f"{MAX_PARTS} parts of at most {MAX_UPLOAD_PART_SIZE} bytes",
            "Split the file; GHGA accepts objects up to about 50 TB",
        )
    return size


def download_part_size(requested: int) -> int:
    """Return ``requested`` rounded up to whole cipher segments (at least one)."""
    return max(CIPHER_SEGMENT_SIZE, _round_up_to_segments(requested))


def plan_parts(total_size: int, part_size: int) -> PartPlan:
    """Cut ``total_size`` bytes into parts of ``part_size``.

    Raises:
        ValueError: a negative size or a part size below one byte.
    """
    if total_size < 0 or part_size < 1:
        raise ValueError(f"cannot plan {total_size} bytes in parts of {part_size}")
    return PartPlan(total_size, part_size)


def plain_offset_of(cipher_offset: int) -> int:
    """Map a segment-aligned offset in header-less ciphertext to plaintext."""
    segments, rest = divmod(cipher_offset, CIPHER_SEGMENT_SIZE)
    if rest:
        raise ValueError(f"offset {cipher_offset} is not segment-aligned")
    return segments * SEGMENT_SIZE
