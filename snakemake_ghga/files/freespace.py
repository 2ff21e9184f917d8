"""Free-space checks before a large local write; layer 1, imports only ``errors``.

An upload writes its whole Crypt4GH temp file and a download its whole
output before either is done, so a full disk would otherwise be found
half-way, after minutes or hours of transfer. Both check first and fail at
once, naming the directory, the space needed and the space free.

Each file is checked on its own: files transferred at the same time into the
same directory are not added up (their temp files grow while they run, so a
sum would count what they already wrote twice).
"""

import ctypes
import functools
import os
from collections.abc import Callable
from pathlib import Path

from snakemake_ghga.errors import LocalFileError

__all__ = ["allocated_bytes", "free_bytes", "release_range", "require_free_space"]

_KEEP_SIZE_PUNCH_HOLE = 0x01 | 0x02  # FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE


def free_bytes(directory: Path) -> int:
    """Bytes an unprivileged writer may still use in ``directory``'s file system."""
    stats = os.statvfs(directory)
    return stats.f_bavail * stats.f_frsize


def allocated_bytes(path: Path) -> int:
    """Bytes ``path`` occupies on disk (0 if missing); holes are not counted."""
    try:
        return os.stat(path).st_blocks * 512
    except FileNotFoundError:
        return 0


def release_range(fd: int, offset: int, length: int) -> bool:
    """Give back the disk blocks and cached pages of bytes never read again.

    The file keeps its size; the range reads as zeros. Pages freed before the
    kernel writes them back never reach the disk. Linux only (``fallocate``
    punching a hole); elsewhere, or on a file system without holes, nothing
    happens and False is returned.
    """
    fallocate = _fallocate()
    if fallocate is None or length <= 0:
        return False
    return fallocate(fd, _KEEP_SIZE_PUNCH_HOLE, offset, length) == 0


@functools.cache
def _fallocate() -> Callable[[int, int, int, int], int] | None:
    try:
        function = ctypes.CDLL(None, use_errno=True).fallocate
    except (OSError, AttributeError):  # not glibc/musl on Linux
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    function.restype = ctypes.c_int
    return function


def require_free_space(directory: Path, needed: int, what: str, hint: str) -> None:
    """Raise unless ``directory`` has ``needed`` bytes free.

    Args:
        directory: an existing directory the bytes will be written to.
        needed: bytes still to be written there.
        what: what needs the space, e.g. "the encrypted temp file of 'a.bam'".
        hint: the remedy, e.g. which option chooses another directory.

    Raises:
        LocalFileError: not enough free space.
    """
    if needed <= 0:
        return
    free = free_bytes(directory)
    if needed > free:
        raise LocalFileError(
            f"not enough free space in {directory}: {what} needs "
            f"{_size(needed)}, {_size(free)} free",
            hint,
        )


def _size(count: int) -> str:
    """``count`` bytes for people, exact below 1 KiB: '512 bytes', '8.00 GiB'."""
    if count < 1024:
        return f"{count} bytes"
    value = count / 1024
    for unit in ("KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.2f} {unit}"
        value /= 1024
    return f"{value:.2f} TiB"
