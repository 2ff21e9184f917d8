"""An upload that fails mid-encryption stops its PUTs before it closes the temp fd.

A PUT still reading after the close would read whatever file the process opens
next under the same fd number, and send it to this upload's presigned URL.
"""

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from snakemake_ghga import crypt4gh as crypt
from snakemake_ghga.errors import InputFileError
from snakemake_ghga.files import private as private_files
from snakemake_ghga.sandbox.app import Sandbox
from snakemake_ghga.transfer import upload
from snakemake_ghga.transfer.engine import _RangeReader
from tests.conftest import KeyPair

from .conftest import PART, make_client, random_file

OTHER = b"another file's plaintext\n"


class _RecordingOs:
    """``os`` for the upload module: records the temp fd's open and close.

    Right after the close it opens another file, as any thread of the process
    might, which takes the freed fd number.
    """

    def __init__(self, other: Path, events: list[tuple[str, int]]) -> None:
        self._other, self._events = other, events
        self.temp_fds: list[int] = []
        self.other_fds: list[int] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    def open_private(self, path: Path) -> int:
        """Stands in for ``upload.open_private``, which opens the temp file."""
        fd = private_files.open_private(path)
        self.temp_fds.append(fd)
        return fd

    def close(self, fd: int) -> None:
        os.close(fd)
        self._events.append(("close", fd))
        self.other_fds.append(os.open(self._other, os.O_RDONLY))


@pytest.mark.parametrize(
    "error", [InputFileError("input changed"), KeyboardInterrupt()]
)
def test_upload_failing_mid_encryption_reads_no_part_after_closing_the_temp_fd(
    sandbox: Sandbox,
    user_keys: KeyPair,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    error: BaseException,
) -> None:
    source = random_file(tmp_path / "in", "f.bin", 3 * PART)
    other = tmp_path / "other.txt"
    other.write_bytes(OTHER * (2 * PART // len(OTHER)))
    events: list[tuple[str, int]] = []
    sent: list[bytes] = []
    recording_os = _RecordingOs(other, events)
    failed, reading = threading.Event(), threading.Event()
    real_encrypt, real_read = crypt.encrypt_file, _RangeReader.read

    def encrypt_failing_after_part_1(*args: Any, on_part: Any, **kwargs: Any) -> Any:
        def submit_then_fail(part: crypt.EncryptedPart) -> None:
            on_part(part)
            if part.number == 1:
                reading.wait(10)  # part 1's PUT is under way
                failed.set()
                raise error

        return real_encrypt(*args, on_part=submit_then_fail, **kwargs)

    def read_late(self: _RangeReader, amount: int = -1) -> memoryview:
        if not events:  # the first read of part 1 waits until encryption failed
            reading.set()
            failed.wait(10)
            time.sleep(0.3)
        events.append(("read", self._fd))
        data = real_read(self, amount)
        sent.append(bytes(data))
        return data

    monkeypatch.setattr(crypt, "encrypt_file", encrypt_failing_after_part_1)
    monkeypatch.setattr(_RangeReader, "read", read_late)
    monkeypatch.setattr(upload, "os", recording_os)
    monkeypatch.setattr(upload, "open_private", recording_os.open_private)
    (tmp_path / "tmp").mkdir()
    token = sandbox.upload_token(user_keys.public)
    try:
        with (
            make_client(sandbox, user_keys, token, tmp_dir=tmp_path / "tmp") as c,
            pytest.raises(type(error)),
        ):
            c.upload_file(source, "f.bin")
    finally:
        for fd in recording_os.other_fds:
            os.close(fd)

    [temp_fd] = recording_os.temp_fds
    kinds = [kind for kind, fd in events if fd == temp_fd]
    assert kinds.count("close") == 1
    assert "read" in kinds
    assert kinds[-1] == "close", kinds  # every part read happened before the close
    assert not any(OTHER in data for data in sent)
