"""The sandbox's state directory: a JSON document, secrets and data, shared safely.

Imports only the stdlib and `records`. Every change happens in a transaction
that holds a thread lock and an `flock` on DIR/.lock, so the server, its
background threads and separate `ghga-transfer sandbox token …` processes can
share one directory. Writes go to a temp file that is fsynced and renamed, so
a crash leaves either the old or the new document, never a torn one.
"""

import contextlib
import copy
import fcntl
import json
import os
import secrets
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import cast

from .records import StateData, empty_state

__all__ = ["StateStore", "read_or_create_secret", "write_atomic"]

_STATE_FILE = "state.json"
_LOCK_FILE = ".lock"


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write `data` to `path` via a fsynced temp file and a rename."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def read_or_create_secret(path: Path, create: Callable[[], bytes]) -> bytes:
    """Return the secret in `path`, creating it (mode 0600) on first use."""
    if not path.exists():
        with _file_lock(path.with_name(_LOCK_FILE)):
            if not path.exists():
                write_atomic(path, create(), mode=0o600)
    return path.read_bytes()


@contextlib.contextmanager
def _file_lock(lock_path: Path) -> Iterator[None]:
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the flock


class StateStore:
    """The JSON state document of one sandbox directory, with transactions."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir
        self.dir.mkdir(parents=True, exist_ok=True)
        self._path = state_dir / _STATE_FILE
        self._lock = threading.Lock()
        self._cached: StateData | None = None
        self._cached_stamp: tuple[int, int, int] | None = None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[StateData]:
        """Yield the current state; write it back if the block changed it.

        Raises:
            OSError: the state directory is not writable.
        """
        with self._lock, _file_lock(self.dir / _LOCK_FILE):
            state = self._load()
            before = json.dumps(state, sort_keys=True)
            try:
                yield state
            except BaseException:
                self._cached = None  # discard partial in-memory changes
                raise
            after = json.dumps(state, sort_keys=True)
            if after != before:
                write_atomic(self._path, after.encode())
                self._remember_stamp()

    def snapshot(self) -> StateData:
        """Return a deep copy of the current state, for reading outside a lock."""
        with self.transaction() as state:
            return copy.deepcopy(state)

    def _load(self) -> StateData:
        stamp = self._stamp()
        if self._cached is not None and stamp == self._cached_stamp:
            return self._cached
        if stamp is None:
            self._cached = empty_state()
        else:
            self._cached = cast(StateData, json.loads(self._path.read_bytes()))
        self._cached_stamp = stamp
        return self._cached

    def _stamp(self) -> tuple[int, int, int] | None:
        try:
            st = self._path.stat()
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _remember_stamp(self) -> None:
        self._cached_stamp = self._stamp()
