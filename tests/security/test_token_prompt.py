"""The token prompt: no echo on a terminal, piped standard input still works."""

import os
import pty
import select
import subprocess
import time
from pathlib import Path

from snakemake_ghga.sandbox.app import Sandbox
from tests.conftest import KeyPair
from tests.support.signals import default_signals
from tests.support.tools import tool


def _ls_argv(sandbox: Sandbox, keys: KeyPair) -> list[str]:
    return [
        tool("ghga-transfer"),
        "ls",
        "--wkvs-url",
        sandbox.wkvs_url,
        "--my-private-key",
        str(keys.secret_path),
        "--my-public-key",
        str(keys.public_path),
    ]


def _read_until(fd: int, seen: bytes, want: bytes | None, timeout_s: float) -> bytes:
    """Read the pty until ``want`` appears (None: until it closes)."""
    deadline = time.monotonic() + timeout_s
    while want is None or want not in seen:
        ready, _, _ = select.select([fd], [], [], deadline - time.monotonic())
        assert ready, f"no {want!r} on the terminal; so far: {seen!r}"
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the child closed the terminal
            chunk = b""
        if not chunk:
            assert want is None, f"the terminal closed before {want!r}: {seen!r}"
            return seen
        seen += chunk
    return seen


def test_token_typed_at_a_terminal_is_not_echoed(
    user_keys: KeyPair, tmp_path: Path
) -> None:
    with Sandbox(tmp_path / "sandbox") as sandbox:
        token = sandbox.upload_token(user_keys.public)
        pid, fd = pty.fork()
        if pid == 0:  # child: ghga-transfer on a terminal, no token anywhere else
            os.execv(_ls_argv(sandbox, user_keys)[0], _ls_argv(sandbox, user_keys))
        try:
            seen = _read_until(fd, b"", b"data portal: ", 60)
            os.write(fd, token.encode() + b"\n")
            seen = _read_until(fd, seen, None, 60)
        finally:
            _, status = os.waitpid(pid, 0)
            os.close(fd)

    secret = token.split(":", 1)[1]
    assert secret[:20].encode() not in seen, "the token was echoed to the terminal"
    assert os.waitstatus_to_exitcode(status) == 0, seen
    assert b"ALIAS" in seen  # the listing ran with the typed token


def test_token_piped_on_standard_input_still_works(
    user_keys: KeyPair, tmp_path: Path
) -> None:
    with Sandbox(tmp_path / "sandbox") as sandbox:
        token = sandbox.upload_token(user_keys.public)
        done = subprocess.run(
            _ls_argv(sandbox, user_keys),
            input=token + "\n",
            capture_output=True,
            text=True,
            timeout=120,
            preexec_fn=default_signals,
        )

    assert done.returncode == 0, done.stderr
    assert "ALIAS" in done.stdout
    assert token.split(":", 1)[1] not in done.stdout + done.stderr
