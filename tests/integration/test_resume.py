"""kill -9 mid-upload and mid-download, then rerun the same command: it resumes."""

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from snakemake_ghga import crypt4gh as crypt
from snakemake_ghga.cli import main
from snakemake_ghga.config import MiB
from snakemake_ghga.files.private import state_dir_path
from snakemake_ghga.sandbox.app import Sandbox
from tests.conftest import KeyPair
from tests.support.signals import default_signals

from .conftest import (
    body_bytes,
    cli_args,
    random_file,
    request_counts,
    upload_and_archive,
)

SLOW_CLI = Path(__file__).with_name("slow_cli.py")
REPO = Path(__file__).parents[2]


def _common(sandbox: Sandbox, keys: KeyPair, token_file: Path) -> list[str]:
    return [*cli_args(sandbox, keys, token_file), "--max-workers", "1"]


def _upload_argv(
    sandbox: Sandbox, keys: KeyPair, token_file: Path, source: Path, temp_dir: Path
) -> list[str]:
    """The upload command for ``source``: writes its token, makes ``temp_dir``."""
    token_file.write_text(sandbox.upload_token(keys.public))
    temp_dir.mkdir()
    return [
        "upload",
        *_common(sandbox, keys, token_file),
        "--tmp-dir",
        str(temp_dir),
        str(source),
    ]


def _s3_ok(sandbox: Sandbox, method: str, since: int) -> int:
    return sum(
        1
        for e in sandbox.request_log()[since:]
        if e["method"] == method
        and e["path"].startswith("/s3")
        and e["status"] in (200, 206)
    )


def _run_and_kill(
    argv: list[str], until: Callable[[], bool], signum: int = signal.SIGKILL
) -> int:
    """Run the slowed CLI, send ``signum`` once ``until()`` holds; return its code."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [sys.executable, str(SLOW_CLI), "0.5", *argv],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=default_signals,  # SIGINT may be ignored in a background job
    )
    deadline = time.monotonic() + 60
    try:
        while not until():
            assert process.poll() is None, "the transfer ended before the kill"
            assert time.monotonic() < deadline, "the transfer never got going"
            time.sleep(0.02)
    finally:
        process.send_signal(signum)
        code = process.wait(timeout=60)
    return code


def _journal_has_upload(temp_dir: Path) -> bool:
    """True once a journal names its server-side upload (after the create)."""
    for path in state_dir_path(temp_dir).glob("*.journal"):
        try:
            if json.loads(path.read_text().splitlines()[0])["file_id"]:
                return True
        except (OSError, IndexError, ValueError):
            continue
    return False


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    return tmp_path / "token"


@pytest.mark.parametrize("kill_after_parts", [0, 2])
def test_upload_killed_then_rerun_resumes(
    sandbox: Sandbox,
    user_keys: KeyPair,
    tmp_path: Path,
    token_file: Path,
    capsys: pytest.CaptureFixture[str],
    kill_after_parts: int,
) -> None:
    source = random_file(tmp_path / "in", "r.bin", 26 * MiB)
    temp_dir = tmp_path / "tmp"
    argv = _upload_argv(sandbox, user_keys, token_file, source, temp_dir)
    _run_and_kill(
        argv,
        lambda: (
            _s3_ok(sandbox, "PUT", 0) >= kill_after_parts
            and _journal_has_upload(temp_dir)
        ),
    )
    before = len(sandbox.request_log())
    assert main(argv) == 0
    assert "resuming: " in capsys.readouterr().err
    assert request_counts(sandbox, before)["POST ucs"] == 0  # same server upload
    if kill_after_parts:
        sent_again = body_bytes(sandbox, "PUT", before, answered=True)
        assert sent_again < crypt.encrypted_size(source.stat().st_size)
    assert sandbox.wait_interrogated("r.bin").state == "interrogated"
    assert list(state_dir_path(temp_dir).iterdir()) == []


def test_download_killed_then_rerun_resumes(
    sandbox: Sandbox, user_keys: KeyPair, tmp_path: Path, token_file: Path
) -> None:
    source = random_file(tmp_path / "in", "d.bin", 26 * MiB)
    accession = upload_and_archive(sandbox, user_keys, [source])["d.bin"]
    token_file.write_text(sandbox.download_token(user_keys.public))
    out = tmp_path / "out"
    argv = [
        "download",
        *_common(sandbox, user_keys, token_file),
        "--output-dir",
        str(out),
        accession,
    ]
    start = len(sandbox.request_log())
    _run_and_kill(argv, lambda: _s3_ok(sandbox, "GET", start) >= 2)
    before = len(sandbox.request_log())
    assert main(argv) == 0
    received_again = body_bytes(sandbox, "GET", before)
    assert 0 < received_again < crypt.encrypted_size(source.stat().st_size) - 3 * MiB
    assert (out / f"{accession}.bin").read_bytes() == source.read_bytes()
    assert sorted(p.name for p in out.iterdir()) == [f"{accession}.bin"]


def test_upload_journal_of_changed_input_is_discarded(
    sandbox: Sandbox,
    user_keys: KeyPair,
    tmp_path: Path,
    token_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = random_file(tmp_path / "in", "c.bin", 16 * MiB)
    temp_dir = tmp_path / "tmp"
    argv = _upload_argv(sandbox, user_keys, token_file, source, temp_dir)
    _run_and_kill(argv, lambda: _s3_ok(sandbox, "PUT", 0) >= 1)
    random_file(tmp_path / "in", "c.bin", 16 * MiB + 5)  # the input changed
    assert main(argv) == 0
    assert "input file changed" in capsys.readouterr().err
    info = sandbox.wait_interrogated("c.bin")
    assert (info.state, info.decrypted_size) == ("interrogated", 16 * MiB + 5)
    states = sorted(u.state for u in sandbox.uploads())
    assert states == ["cancelled", "interrogated"]  # the stale upload was deleted


def test_upload_ctrl_c_keeps_resume_state_and_exits_130(
    sandbox: Sandbox,
    user_keys: KeyPair,
    tmp_path: Path,
    token_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = random_file(tmp_path / "in", "i.bin", 21 * MiB)
    temp_dir = tmp_path / "tmp"
    argv = _upload_argv(sandbox, user_keys, token_file, source, temp_dir)
    code = _run_and_kill(
        argv,
        lambda: _s3_ok(sandbox, "PUT", 0) >= 1 and _journal_has_upload(temp_dir),
        signal.SIGINT,
    )
    assert code == 130
    assert _journal_has_upload(temp_dir)
    assert [u.state for u in sandbox.uploads()] == ["init"]
    before = len(sandbox.request_log())
    assert main(argv) == 0
    assert "resuming: " in capsys.readouterr().err
    assert request_counts(sandbox, before)["POST ucs"] == 0
