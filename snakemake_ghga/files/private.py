"""Files that are ours: a private per-user state dir; opens that never follow links.

In ``files``: imports the stdlib and ``errors`` only. On a multi-user host the
temp dir is shared and project directories are group-writable, so another
user can plant a file, a symlink or a hard link under a name we are about to
use. Every file this package creates or reopens goes through this module:

- ``state_dir`` is ``<tmp>/ghga-transfer-<uid>/``, mode 0700 and owned by us;
  one that is not ours (or is a link) is refused, never used;
- ``create_private`` creates a new 0600 file and fails if anything exists at
  that name (``O_EXCL``, ``O_NOFOLLOW``);
- ``open_own`` reopens a file only if it is a regular file that we own with a
  single link, never through a symlink (``O_NOFOLLOW``), and never truncates
  before that check (no ``O_TRUNC``).
"""

import errno
import logging
import os
import stat
import tempfile
from pathlib import Path

from snakemake_ghga.errors import LocalFileError

__all__ = [
    "create_private",
    "open_own",
    "open_private",
    "private_temp",
    "state_dir",
    "state_dir_path",
]

logger = logging.getLogger(__name__)

_NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC
_NOT_OURS_HINT = (
    "Remove it (another user may have planted it to make ghga-transfer write "
    "elsewhere), or choose another output or --tmp-dir"
)


def state_dir_path(tmp_dir: Path | None) -> Path:
    """Where this user's transfer state lives under ``tmp_dir`` (system temp: None)."""
    base = Path(tmp_dir) if tmp_dir is not None else Path(tempfile.gettempdir())
    return base / f"ghga-transfer-{os.getuid()}"


def state_dir(tmp_dir: Path | None) -> Path:
    """Return this user's private state directory, creating it (0700) if needed.

    Raises:
        LocalFileError: the name is taken by something that is not a
            directory of ours (e.g. planted by another user), or it cannot
            be created.
    """
    path = state_dir_path(tmp_dir)
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        pass
    except OSError as err:
        raise LocalFileError(
            f"cannot create the private state directory {path}: {err.strerror}",
            "Choose a writable --tmp-dir",
        ) from None
    _check_own_dir(path)
    return path


def _check_own_dir(path: Path) -> None:
    """Accept only a real directory that we own; make it 0700 if it is wider."""
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        kind = "a symlink" if stat.S_ISLNK(info.st_mode) else "not a directory"
        owner = f"owned by uid {info.st_uid}"
        what = owner if stat.S_ISDIR(info.st_mode) else kind
        raise LocalFileError(
            f"the state directory {path} is not a private directory of yours ({what})",
            "Ask its owner or an admin to remove it, or pass --tmp-dir with a "
            "directory of your own",
        )
    if stat.S_IMODE(info.st_mode) != 0o700:
        logger.warning("making %s private (mode 0700)", path)
        os.chmod(path, 0o700, follow_symlinks=False)


def create_private(path: Path) -> int:
    """Create ``path`` as a new 0600 file and return a read-write fd.

    Raises:
        FileExistsError: something (a file, a link) is already there.
        OSError: it could not be created.
    """
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | _NOFOLLOW
    return os.open(path, flags, 0o600)


def open_own(path: Path, flags: int = os.O_RDWR) -> int:
    """Reopen ``path``: a regular file of ours with one link, never a symlink.

    ``flags`` must not contain ``O_CREAT`` or ``O_TRUNC``; truncate after
    this check with ``os.ftruncate``.

    Raises:
        FileNotFoundError: there is no file at ``path``.
        LocalFileError: it is a symlink, not a regular file, not ours, or
            has other hard links.
        OSError: it could not be opened.
    """
    assert not flags & (os.O_CREAT | os.O_TRUNC), "check before truncating"
    try:
        fd = os.open(path, flags | _NOFOLLOW | os.O_NONBLOCK)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise _not_ours(path, "a symlink") from None
        raise
    try:
        _check_own_file(path, os.fstat(fd))
    except BaseException:
        os.close(fd)
        raise
    os.set_blocking(fd, True)
    return fd


def open_private(path: Path) -> int:
    """Create ``path`` (0600), or reopen it if it is a file of ours; read-write."""
    try:
        return create_private(path)
    except FileExistsError:
        return open_own(path)


def private_temp(directory: Path, prefix: str, suffix: str) -> tuple[int, Path]:
    """Create a new 0600 file with a random name in ``directory``: (fd, path)."""
    fd, name = tempfile.mkstemp(suffix=suffix, prefix=prefix, dir=directory)
    return fd, Path(name)


def _check_own_file(path: Path, info: os.stat_result) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise _not_ours(path, "not a regular file")
    if info.st_uid != os.getuid():
        raise _not_ours(path, f"owned by uid {info.st_uid}")
    if info.st_nlink != 1:  # a hard link could alias a file we must not touch
        raise _not_ours(path, f"it has {info.st_nlink} hard links")


def _not_ours(path: Path, why: str) -> LocalFileError:
    return LocalFileError(
        f"{path} is not a file of yours that ghga-transfer may write ({why})",
        _NOT_OURS_HINT,
    )
