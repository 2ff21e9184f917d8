"""Upload resume corner cases: every part already sent, gaps, journal leftovers."""

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from snakemake_ghga import crypt4gh as crypt
from snakemake_ghga.errors import PartFailedError
from snakemake_ghga.files.private import state_dir, state_dir_path
from snakemake_ghga.ghga.api import GhgaApi
from snakemake_ghga.sandbox.app import Sandbox
from snakemake_ghga.transfer.journal import Journal
from snakemake_ghga.transfer.part_uploads import PartUploads
from snakemake_ghga.transfer.parts import plan_parts
from snakemake_ghga.transfer.upload import upload_state
from tests.conftest import KeyPair

from .conftest import MiB, body_bytes, make_client, random_file

SIZE = 33 * MiB  # 7 parts of 5 MiB


def _archived_sha256(sandbox: Sandbox, alias: str) -> str | None:
    info = sandbox.wait_interrogated(alias, timeout_s=120)
    assert info.state == "interrogated", info
    found = [a for a in sandbox.accessions() if a.accession == info.accession]
    return found[0].decrypted_sha256 if found else None


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _records(journal_path: Path) -> set[int]:
    journal = Journal.load(journal_path)
    assert journal is not None
    return set(journal.records)


def _part_size(journal_path: Path) -> int:
    return int(json.loads(journal_path.read_text().splitlines()[0])["part_size"])


@pytest.mark.parametrize("noted", [True, False], ids=["sha-noted", "sha-rehashed"])
def test_resume_when_every_part_was_sent_only_closes(
    sandbox: Sandbox,
    user_keys: KeyPair,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    noted: bool,
) -> None:
    """A kill after the last part is journaled but before the close landed."""
    source = random_file(tmp_path / "src", "all.bin", SIZE)
    tmp_dir = tmp_path / "tmp"
    tmp_dir.mkdir()
    token = sandbox.upload_token(user_keys.public)
    original = GhgaApi.complete_upload

    def interrupted_close(self: GhgaApi, *args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(GhgaApi, "complete_upload", interrupted_close)
    with (
        pytest.raises(KeyboardInterrupt),
        make_client(sandbox, user_keys, token, tmp_dir=tmp_dir) as client,
    ):
        client.upload_file(source, "all.bin")
    monkeypatch.setattr(GhgaApi, "complete_upload", original)

    journal_path = upload_state(tmp_dir, source, "all.bin").journal
    count = plan_parts(crypt.encrypted_size(SIZE), _part_size(journal_path)).count
    assert len(_records(journal_path)) == count
    if not noted:  # a kill between the last part and the note: re-hash the input
        lines = journal_path.read_text().splitlines(keepends=True)
        kept = [line for line in lines if '"note"' not in line]
        assert len(kept) < len(lines)
        journal_path.write_text("".join(kept))

    mark = len(sandbox.request_log())
    with make_client(sandbox, user_keys, token, tmp_dir=tmp_dir) as client:
        result = client.upload_file(source, "all.bin")

    assert result.status == "uploaded", result
    assert result.plain_sha256 == _sha256(source)
    assert result.plain_size == SIZE
    assert body_bytes(sandbox, "PUT", mark) == 0  # nothing sent twice
    assert list(state_dir_path(tmp_dir).iterdir()) == []
    assert _archived_sha256(sandbox, "all.bin") == _sha256(source)


def _upload_losing_part_2(
    sandbox: Sandbox,
    user_keys: KeyPair,
    token: str,
    tmp_dir: Path,
    source: Path,
    alias: str,
    confirmed_first: set[int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An upload whose part 2 fails once ``confirmed_first`` are journaled.

    The failure is a PartFailedError, so the journal (with a gap at part 2)
    and the temp file are kept for the rerun.
    """
    original = PartUploads._put

    def put_with_part_2_lost(self: PartUploads, part: crypt.EncryptedPart) -> None:
        if part.number != 2:
            original(self, part)
            return
        deadline = time.monotonic() + 30
        while not confirmed_first <= set(self._plan.journal.records):
            assert time.monotonic() < deadline, f"{confirmed_first} never confirmed"
            time.sleep(0.01)
        raise PartFailedError("test: part 2 lost")

    monkeypatch.setattr(PartUploads, "_put", put_with_part_2_lost)
    with (
        pytest.raises(PartFailedError),
        make_client(sandbox, user_keys, token, tmp_dir=tmp_dir) as client,
    ):
        client.upload_file(source, alias)
    monkeypatch.setattr(PartUploads, "_put", original)


def test_resume_after_a_gap_sends_only_the_missing_parts(
    sandbox: Sandbox,
    user_keys: KeyPair,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Parts 1, 3 and 4 confirmed, part 2 lost: the rerun sends 2 and the rest."""
    source = random_file(tmp_path / "src", "gap.bin", SIZE)
    tmp_dir = tmp_path / "tmp"
    tmp_dir.mkdir()
    token = sandbox.upload_token(user_keys.public)
    _upload_losing_part_2(
        sandbox, user_keys, token, tmp_dir, source, "gap.bin", {1, 3, 4}, monkeypatch
    )

    journal_path = upload_state(tmp_dir, source, "gap.bin").journal
    confirmed = _records(journal_path)
    assert 2 not in confirmed and {1, 3, 4} <= confirmed
    parts = plan_parts(crypt.encrypted_size(SIZE), _part_size(journal_path))
    missing = sum(p.size for p in parts if p.number not in confirmed)

    mark = len(sandbox.request_log())
    with make_client(sandbox, user_keys, token, tmp_dir=tmp_dir) as client:
        result = client.upload_file(source, "gap.bin")

    assert result.status == "uploaded", result
    # no confirmed part again (the first run's cut PUTs may be logged late)
    assert body_bytes(sandbox, "PUT", mark, answered=True) == missing
    assert result.bytes_sent == missing
    assert list(state_dir_path(tmp_dir).iterdir()) == []
    # the kept segments across part boundaries still match: the hub decrypts it
    assert _archived_sha256(sandbox, "gap.bin") == _sha256(source)


def test_resume_refuses_a_damaged_kept_part_and_starts_over(
    sandbox: Sandbox,
    user_keys: KeyPair,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A gap part whose bytes were damaged on disk is not sent as is."""
    source = random_file(tmp_path / "src", "bad.bin", SIZE)
    tmp_dir = tmp_path / "tmp"
    tmp_dir.mkdir()
    token = sandbox.upload_token(user_keys.public)
    _upload_losing_part_2(
        sandbox, user_keys, token, tmp_dir, source, "bad.bin", {1, 3}, monkeypatch
    )
    temp = upload_state(tmp_dir, source, "bad.bin").temp
    with temp.open("r+b") as handle:  # flip a byte in the middle of part 2
        handle.seek(5 * MiB + 2 * MiB)
        byte = handle.read(1)
        handle.seek(-1, 1)
        handle.write(bytes([byte[0] ^ 0xFF]))

    with make_client(sandbox, user_keys, token, tmp_dir=tmp_dir) as client:
        results = client.upload([(source, "bad.bin")])
    assert results[0].status == "failed"
    assert "damaged in part 2" in (results[0].error or "")
    assert (
        list(state_dir_path(tmp_dir).iterdir()) == []
    )  # the rerun after this starts over
    with make_client(sandbox, user_keys, token, tmp_dir=tmp_dir) as client:
        again = client.upload_file(source, "bad.bin")
    assert again.status == "uploaded"
    assert _archived_sha256(sandbox, "bad.bin") == _sha256(source)


def _dead_pid() -> int:
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout)


def test_journal_temp_left_by_a_killed_process_is_removed(tmp_path: Path) -> None:
    path = tmp_path / "ghga-upload-x.journal"
    dead = tmp_path / f".{path.name}.{_dead_pid()}.tmp"
    alive = tmp_path / f".{path.name}.{os.getppid()}.tmp"
    other = tmp_path / ".other.journal.1.tmp"
    for leftover in (dead, alive, other):
        leftover.write_text('{"version": 1')

    assert Journal.load(path) is None
    assert not dead.exists()
    assert alive.exists() and other.exists()  # a running writer, another journal

    dead.write_text("{")
    path.write_text("x")
    assert Journal.load(path) is None  # unreadable, but leftovers still go
    assert not dead.exists()


def test_upload_removes_a_journal_temp_left_by_a_kill(
    sandbox: Sandbox, user_keys: KeyPair, tmp_path: Path
) -> None:
    source = random_file(tmp_path / "src", "left.bin", 1 * MiB)
    tmp_dir = tmp_path / "tmp"
    tmp_dir.mkdir()
    state_dir(tmp_dir)
    journal_path = upload_state(tmp_dir, source, "left.bin").journal
    leftover = journal_path.parent / f".{journal_path.name}.{_dead_pid()}.tmp"
    leftover.write_text(json.dumps({"version": 1})[:5])
    leftover.chmod(0o600)

    token = sandbox.upload_token(user_keys.public)
    with make_client(sandbox, user_keys, token, tmp_dir=tmp_dir) as client:
        result = client.upload_file(source, "left.bin")

    assert result.status == "uploaded"
    assert list(state_dir_path(tmp_dir).iterdir()) == []


def test_journal_notes_survive_a_reload(tmp_path: Path) -> None:
    from snakemake_ghga.transfer.journal import DownloadHeader

    path = tmp_path / "d.journal"
    journal = Journal.create(path, DownloadHeader("GHGAF1", "t", 10, None, 5, False))
    journal.confirm(1, sha256="a")
    journal.note(plain_sha256="abc")
    journal.confirm(2, sha256="b")
    with path.open("a") as handle:
        handle.write('{"part": 3, "sha')  # torn last line
    loaded = Journal.load(path)
    assert loaded is not None
    assert loaded.records == {1: {"sha256": "a"}, 2: {"sha256": "b"}}
    assert loaded.notes == {"plain_sha256": "abc"}


def test_rerun_after_a_close_that_landed_skips_and_cleans_up(
    sandbox: Sandbox,
    user_keys: KeyPair,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Killed after the close succeeded but before the journal was removed."""
    source = random_file(tmp_path / "src", "closed.bin", 1 * MiB)
    tmp_dir = tmp_path / "tmp"
    tmp_dir.mkdir()
    token = sandbox.upload_token(user_keys.public)
    original = GhgaApi.complete_upload

    def close_then_interrupt(self: GhgaApi, *args: object, **kwargs: object) -> None:
        original(self, *args, **kwargs)  # type: ignore[arg-type]
        raise KeyboardInterrupt

    monkeypatch.setattr(GhgaApi, "complete_upload", close_then_interrupt)
    with (
        pytest.raises(KeyboardInterrupt),
        make_client(sandbox, user_keys, token, tmp_dir=tmp_dir) as client,
    ):
        client.upload_file(source, "closed.bin")
    monkeypatch.setattr(GhgaApi, "complete_upload", original)
    assert list(
        state_dir_path(tmp_dir).iterdir()
    )  # the journal and temp file are still there

    mark = len(sandbox.request_log())
    with make_client(sandbox, user_keys, token, tmp_dir=tmp_dir) as client:
        result = client.upload_file(source, "closed.bin")

    assert result.status == "skipped", result
    assert body_bytes(sandbox, "PUT", mark) == 0
    assert list(state_dir_path(tmp_dir).iterdir()) == []
