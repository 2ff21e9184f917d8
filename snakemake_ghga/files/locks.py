"""One transfer per file at a time: an exclusive lock in the private state dir.

In ``files``: imports the stdlib, ``errors`` and ``files.private``. Two runs of the
same upload (or download to the same output) would share a temp file and a
journal, and each would spoil the other's work. ``hold`` takes a
non-blocking ``flock`` on ``<state dir>/<name>.lock`` and writes the holder's
PID into it, so a second run fails at once with a message naming the process
and sends nothing. The kernel drops the lock when its holder dies (kill -9
included), so a crash never leaves a stale lock. The lock covers this host,
and other hosts where ``flock`` works on the shared file system (NFSv4, Lustre
mounted with ``flock``) when ``--tmp-dir`` is on it.
"""

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from snakemake_ghga.errors import InUseError
from snakemake_ghga.files.private import open_private

__all__ = ["hold"]


@contextmanager
def hold(path: Path, what: str) -> Iterator[None]:
    """Hold the lock file ``path`` while the block runs.

    Args:
        path: the lock file, in the private state dir.
        what: the transfer in words, e.g. "the upload of a.bam as 'a'".

    Raises:
        InUseError: another process holds the lock.
    """
    fd = _acquire(path, what)
    try:
        yield
    finally:
        path.unlink(missing_ok=True)  # while still holding it: see _acquire
        os.close(fd)


def _acquire(path: Path, what: str) -> int:
    while True:
        fd = open_private(path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            raise InUseError(
                f"{what} is already running in process {holder or '(starting)'} "
                "on this host",
                "Wait for that run to finish, or stop it, before starting "
                "this one again; nothing was sent",
            ) from None
        if _still_named(fd, path):
            break
        os.close(fd)  # the holder before us removed it after we opened it
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _still_named(fd: int, path: Path) -> bool:
    """True if ``path`` still names the file we locked (it is removed on release)."""
    try:
        named = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (mine.st_dev, mine.st_ino)
