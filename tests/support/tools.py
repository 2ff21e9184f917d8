"""Installed tools the tests run: console scripts beside this interpreter and
the reference `crypt4gh-keygen` behind a terminal."""

import os
import pty
import select
import shutil
import sys
from pathlib import Path

__all__ = ["BIN", "run_keygen", "tool"]

BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    """Path of a console script installed beside this interpreter."""
    found = shutil.which(name, path=str(BIN)) or shutil.which(name)
    assert found, f"{name} is not installed"
    return found


def run_keygen(secret_path: Path, public_path: Path, passphrase: str) -> None:
    """Run the reference `crypt4gh-keygen`, answering its passphrase prompts."""
    pid, fd = pty.fork()
    if pid == 0:  # child: the prompts need a terminal
        args = ["--sk", str(secret_path), "--pk", str(public_path), "-f"]
        if not passphrase:
            args.append("--nocrypt")
        os.execv(tool("crypt4gh-keygen"), ["crypt4gh-keygen", *args])
    seen = b""
    while True:
        ready, _, _ = select.select([fd], [], [], 30)
        assert ready, f"crypt4gh-keygen hung; output so far: {seen!r}"
        try:
            chunk = os.read(fd, 1024)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
        if seen.rstrip().endswith(b":"):
            os.write(fd, passphrase.encode() + b"\n")
            seen = b""
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, seen
