"""locks.hold: one transfer per file; the second names the holder."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from snakemake_ghga.errors import InUseError
from snakemake_ghga.files.locks import hold

REPO = Path(__file__).parents[2]
HOLDER = """
import sys, time
from pathlib import Path
from snakemake_ghga.files.locks import hold
with hold(Path(sys.argv[1]), "test"):
    print("held", flush=True)
    time.sleep(60)
"""


def test_a_second_hold_fails_naming_the_holder_and_release_frees_it(
    tmp_path: Path,
) -> None:
    lock = tmp_path / "x.lock"
    with hold(lock, "the upload of x"):
        with pytest.raises(InUseError) as caught, hold(lock, "the upload of x"):
            pass  # pragma: no cover
        assert f"already running in process {os.getpid()}" in str(caught.value)
        assert "nothing was sent" in str(caught.value)
    assert not lock.exists()
    with hold(lock, "the upload of x"):
        assert lock.read_text() == f"{os.getpid()}\n"


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path) -> None:
    lock = tmp_path / "x.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(lock)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        busy = f"process {holder.pid} "
        with pytest.raises(InUseError, match=busy), hold(lock, "the download of y"):
            pass  # pragma: no cover
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.communicate()
    deadline = time.monotonic() + 5
    while True:  # the kernel released the flock with the process
        try:
            with hold(lock, "the download of y"):
                break
        except InUseError:
            assert time.monotonic() < deadline
            time.sleep(0.05)
