"""Another user on the same host: planted state, symlinks, two runs at once.

Issue 13, points 1-3. The attacker is uid 65534 (``as_other_user``) and works
in a shared sticky directory (like /tmp) or a group-writable one (a project
directory). We run as root, which no permission check stops, so each attack
shows what the code itself does with what it finds.
"""

import dataclasses
import hashlib
import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from snakemake_ghga import crypt4gh as crypt
from snakemake_ghga.cli import main
from snakemake_ghga.config import MiB
from snakemake_ghga.errors import LocalFileError
from snakemake_ghga.files.private import state_dir, state_dir_path
from snakemake_ghga.ghga.models import DrsObject
from snakemake_ghga.sandbox.app import Sandbox
from snakemake_ghga.transfer.journal import DownloadHeader
from snakemake_ghga.transfer.parts import download_part_size
from snakemake_ghga.transfer.upload import upload_state
from tests.conftest import KeyPair
from tests.integration.conftest import (
    PART,
    body_bytes,
    cli_args,
    make_client,
    random_file,
    request_counts,
    upload_and_archive,
)

from .conftest import as_other_user

SLOW_CLI = Path(__file__).parents[1] / "integration" / "slow_cli.py"
REPO = Path(__file__).parents[2]
SECRET = b"ssh-ed25519 AAAA... the victim's authorized key\n"


def _victim(directory: Path, name: str = "authorized_keys") -> Path:
    """A file of ours that an attacker wants us to delete or overwrite."""
    path = directory / name
    path.write_bytes(SECRET)
    path.chmod(0o600)
    return path


def _intact(victim: Path) -> bool:
    info = victim.lstat()
    return (
        stat.S_ISREG(info.st_mode)
        and stat.S_IMODE(info.st_mode) == 0o600
        and victim.read_bytes() == SECRET
    )


def _old_upload_key(source: Path, alias: str) -> str:
    """The name the state of an upload had in the shared temp dir before."""
    return hashlib.sha256(f"{source.resolve()}\0{alias}".encode()).hexdigest()[:20]


# -- point 1: planted resume state ---------------------------------------------


def test_a_planted_journal_never_deletes_a_file_it_names(
    sandbox: Sandbox, user_keys: KeyPair, tmp_path: Path, shared_dir: Path
) -> None:
    """A stale upload journal named the file that discarding it deleted."""
    source = random_file(tmp_path / "src", "in.bin", 1 * MiB)
    victim = _victim(tmp_path)
    key = _old_upload_key(source, "in.bin")
    planted = {
        "version": 1,
        "source": str(source),
        "alias": "in.bin",
        "fingerprint": {"size": 1, "mtime_ns": 1, "inode": 1},  # stale: discarded
        "temp_path": str(victim),
        "file_id": "planted",
        "storage_alias": "HD01",
        "part_size": PART,
        "encrypted_size": 1,
        "sealed_session_key": "AAAA",
        "kind": "upload",
    }
    line = json.dumps(planted) + "\n"
    as_other_user(
        "sh",
        "-c",
        'cat > "$1"',
        "-",
        f"{shared_dir}/ghga-upload-{key}.journal",
        stdin=line,
    )
    as_other_user(
        "sh", "-c", 'echo garbage > "$1"', "-", f"{shared_dir}/ghga-upload-{key}.c4gh"
    )
    # our own private dir, with a journal of the old format naming the victim
    state_dir(shared_dir)
    upload_state(shared_dir, source, "in.bin").journal.write_text(line)

    token = sandbox.upload_token(user_keys.public)
    with make_client(sandbox, user_keys, token, tmp_dir=shared_dir) as client:
        result = client.upload_file(source, "in.bin")

    assert result.status == "uploaded", result
    assert _intact(victim)
    assert list(state_dir_path(shared_dir).iterdir()) == []
    # the other user's files are not ours to remove
    assert (shared_dir / f"ghga-upload-{key}.journal").exists()


@pytest.mark.parametrize("planted", ["directory", "symlink", "file"])
def test_a_state_dir_planted_by_another_user_is_refused(
    sandbox: Sandbox,
    user_keys: KeyPair,
    tmp_path: Path,
    shared_dir: Path,
    planted: str,
) -> None:
    """Whoever creates <tmp>/ghga-transfer-<uid> first would own our state."""
    source = random_file(tmp_path / "src", "in.bin", 1 * MiB)
    victim = _victim(tmp_path)
    name = state_dir_path(shared_dir)
    theirs = shared_dir / "theirs"
    as_other_user("mkdir", "-m", "777", str(theirs))
    temp_name = upload_state(shared_dir, source, "in.bin").temp.name
    as_other_user("ln", "-s", str(victim), str(theirs / temp_name))
    if planted == "directory":
        as_other_user("mkdir", "-m", "777", str(name))
        as_other_user("ln", "-s", str(victim), str(name / temp_name))
    elif planted == "symlink":
        as_other_user("ln", "-s", str(theirs), str(name))
    else:
        as_other_user("touch", str(name))

    token = sandbox.upload_token(user_keys.public)
    mark = len(sandbox.request_log())
    with make_client(sandbox, user_keys, token, tmp_dir=shared_dir) as client:
        [result] = client.upload([(source, "in.bin")])

    assert result.status == "failed"
    error = result.error or ""
    assert str(name) in error and "not a private directory of yours" in error
    assert "--tmp-dir" in error and "\n" not in error
    assert _intact(victim)
    assert request_counts(sandbox, mark)["POST ucs"] == 0  # nothing created


def test_the_state_dir_is_private_and_ours(
    sandbox: Sandbox, user_keys: KeyPair, tmp_path: Path, shared_dir: Path
) -> None:
    name = state_dir_path(shared_dir)
    name.mkdir(mode=0o755)
    name.chmod(0o755)  # ours, but readable by others: made private again
    source = random_file(tmp_path / "src", "in.bin", 1 * MiB)
    token = sandbox.upload_token(user_keys.public)
    with make_client(sandbox, user_keys, token, tmp_dir=shared_dir) as client:
        assert client.upload_file(source, "in.bin").status == "uploaded"
    info = name.lstat()
    assert stat.S_ISDIR(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o700
    assert info.st_uid == os.getuid()


# -- point 2: symlinks and other users' files where we write -----------------------


def _project_dir(shared_dir: Path) -> Path:
    """A group-writable project directory: no sticky bit, anyone may rename."""
    project = shared_dir / "project"
    project.mkdir()
    project.chmod(0o777)
    return project


def test_download_follows_no_planted_part_file_or_journal(
    sandbox: Sandbox, user_keys: KeyPair, tmp_path: Path, shared_dir: Path
) -> None:
    """A matching journal plus `.NAME.part -> victim` made us resume into it."""
    source = random_file(tmp_path / "src", "d.bin", 7 * MiB)
    accession = upload_and_archive(sandbox, user_keys, [source])["d.bin"]
    project = _project_dir(shared_dir)
    destination = project / "d.bin"
    victim = _victim(tmp_path)
    token = sandbox.download_token(user_keys.public)
    with make_client(sandbox, user_keys, token, tmp_dir=tmp_path) as client:
        drs = client.api.drs_object(accession)
        assert isinstance(drs, DrsObject)
        part = project / ".d.bin.part"
        header = DownloadHeader(
            accession,
            str(part),
            drs.size,
            drs.sha256,
            download_part_size(PART),
            False,
        )
        fields = {"version": 1, **dataclasses.asdict(header)}
        lines = json.dumps(fields) + "\n" + json.dumps({"part": 1}) + "\n"
        as_other_user(
            "sh", "-c", 'cat > "$1"', "-", str(project / ".d.bin.journal"), stdin=lines
        )
        as_other_user("ln", "-s", str(victim), str(part))
        result = client.download_file(accession, destination)

    assert result.status == "downloaded"
    assert destination.read_bytes() == source.read_bytes()
    assert not destination.is_symlink()
    assert _intact(victim)
    assert sorted(p.name for p in project.iterdir()) == ["d.bin"]


def test_a_journal_temp_name_planted_as_a_link_is_not_followed(
    sandbox: Sandbox, user_keys: KeyPair, tmp_path: Path, shared_dir: Path
) -> None:
    """The journal's temp sibling was `..NAME.journal.PID.tmp`: easy to guess."""
    source = random_file(tmp_path / "src", "j.bin", 1 * MiB)
    accession = upload_and_archive(sandbox, user_keys, [source])["j.bin"]
    project = _project_dir(shared_dir)
    victim = _victim(tmp_path)
    guessed = project / f"..j.bin.journal.{os.getpid()}.tmp"
    as_other_user("ln", "-s", str(victim), str(guessed))
    token = sandbox.download_token(user_keys.public)
    with make_client(sandbox, user_keys, token, tmp_dir=tmp_path) as client:
        result = client.download_file(accession, project / "j.bin")
    assert result.status == "downloaded"
    assert _intact(victim)
    assert guessed.is_symlink()  # another user's link: left alone


def test_decrypt_output_temp_planted_as_a_link_is_not_followed(
    user_keys: KeyPair, hub_keys: KeyPair, tmp_path: Path, shared_dir: Path
) -> None:
    """`private_output` (decrypt, encrypt, receipts) used `.NAME.PID.part`."""
    plain = random_file(tmp_path / "src", "p.bin", 300_000)
    encrypted = tmp_path / "p.bin.c4gh"
    crypt.encrypt_file(
        plain,
        encrypted,
        writer_secret_key=hub_keys.secret,
        recipient_public_key=user_keys.public,
    )
    project = _project_dir(shared_dir)
    victim = _victim(tmp_path)
    guessed = project / f".p.bin.{os.getpid()}.part"
    as_other_user("ln", "-s", str(victim), str(guessed))

    crypt.decrypt_file(encrypted, project / "p.bin", user_keys.secret)

    assert _intact(victim)
    assert (project / "p.bin").read_bytes() == plain.read_bytes()
    assert not (project / "p.bin").is_symlink()


@pytest.mark.parametrize("kind", ["symlink", "other-owner", "hard-link"])
def test_encrypting_onto_a_file_that_is_not_ours_is_refused(
    user_keys: KeyPair, hub_keys: KeyPair, tmp_path: Path, shared_dir: Path, kind: str
) -> None:
    """The temp file is reopened by name: what sits there must be our own file."""
    plain = random_file(tmp_path / "src", "e.bin", 1000)
    project = _project_dir(shared_dir)
    victim = _victim(tmp_path)
    target = project / "e.bin.c4gh"
    if kind == "symlink":
        as_other_user("ln", "-s", str(victim), str(target))
    elif kind == "other-owner":
        as_other_user("touch", str(target))
    else:
        os.link(victim, target)
    with pytest.raises(LocalFileError, match="not a file of yours"):
        crypt.encrypt_file(
            plain,
            target,
            writer_secret_key=user_keys.secret,
            recipient_public_key=hub_keys.public,
        )
    assert _intact(victim)


# -- point 3: two runs of the same transfer --------------------------------------


def _slow_cli(argv: list[str]) -> "subprocess.Popen[bytes]":
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, str(SLOW_CLI), "0.5", *argv],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _wait_for(condition: object, first: "subprocess.Popen[bytes]") -> None:
    deadline = time.monotonic() + 60
    while not condition():  # type: ignore[operator]
        assert first.poll() is None, "the first run ended too early"
        assert time.monotonic() < deadline, "the first run never got going"
        time.sleep(0.02)


def test_a_second_upload_of_a_running_upload_refuses_and_sends_nothing(
    sandbox: Sandbox,
    user_keys: KeyPair,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = random_file(tmp_path / "in", "twice.bin", 21 * MiB)
    token_file = tmp_path / "token"
    token_file.write_text(sandbox.upload_token(user_keys.public))
    (tmp_path / "tmp").mkdir()
    argv = [
        "upload",
        *cli_args(sandbox, user_keys, token_file),
        "--max-workers",
        "1",
        "--tmp-dir",
        str(tmp_path / "tmp"),
        str(source),
    ]
    first = _slow_cli(argv)
    try:
        _wait_for(lambda: body_bytes(sandbox, "PUT") > 0, first)
        mark = len(sandbox.request_log())
        assert main(argv) != 0
        err = capsys.readouterr().err
        assert f"already running in process {first.pid}" in err
        counts = request_counts(sandbox, mark)
        assert counts["PUT s3"] == 0 and counts["POST ucs"] == 0
        assert first.wait(timeout=120) == 0  # the first run was not disturbed
    finally:
        first.kill()
        first.wait()
    info = sandbox.wait_interrogated("twice.bin", timeout_s=120)
    assert info.state == "interrogated"
    assert [u.state for u in sandbox.uploads()] == ["interrogated"]


def test_a_second_download_to_the_same_output_refuses(
    sandbox: Sandbox,
    user_keys: KeyPair,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = random_file(tmp_path / "in", "d2.bin", 21 * MiB)
    accession = upload_and_archive(sandbox, user_keys, [source])["d2.bin"]
    token_file = tmp_path / "token"
    token_file.write_text(sandbox.download_token(user_keys.public))
    (tmp_path / "tmp").mkdir()
    out = tmp_path / "out"
    argv = [
        "download",
        *cli_args(sandbox, user_keys, token_file),
        "--max-workers",
        "1",
        "--tmp-dir",
        str(tmp_path / "tmp"),
        "--output-dir",
        str(out),
        accession,
    ]
    first = _slow_cli(argv)
    try:
        start = len(sandbox.request_log())
        _wait_for(lambda: request_counts(sandbox, start)["GET s3"] > 0, first)
        mark = len(sandbox.request_log())
        assert main(argv) != 0
        assert f"already running in process {first.pid}" in capsys.readouterr().err
        assert request_counts(sandbox, mark)["GET s3"] == 0
        assert first.wait(timeout=120) == 0
    finally:
        first.kill()
        first.wait()
    assert (out / f"{accession}.bin").read_bytes() == source.read_bytes()
