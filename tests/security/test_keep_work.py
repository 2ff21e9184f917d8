"""Not losing the user's work: a failed close, a failed journal write.

Issue 13, points 10 and 11. A close that fails for a reason that may pass (a
network blip, 5xx, a token that expired during a long upload) keeps the
finished upload for the rerun, which sends no part again; only a definitive
rejection discards it. A journal that cannot be written fails that file
alone, with a one-line error, and leaves nothing that blocks the rerun.
"""

import errno
import hashlib
import os
from pathlib import Path
from typing import Any

import pytest
import requests

from snakemake_ghga.config import MiB
from snakemake_ghga.files.private import state_dir_path
from snakemake_ghga.sandbox.app import Sandbox
from snakemake_ghga.transfer.part_uploads import PartUploads
from tests.conftest import KeyPair
from tests.integration.conftest import body_bytes, make_client, random_file

SIZE = 16 * MiB  # 4 parts of 5 MiB


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _state_files(tmp_dir: Path) -> list[Path]:
    return [p for p in tmp_dir.rglob("*") if p.is_file()]


def _failing_close(
    monkeypatch: pytest.MonkeyPatch, status: int | None, body: str = ""
) -> None:
    """The upload's close (PATCH) gets ``status``, or no answer at all (None)."""
    real = requests.Session.request

    def request(self: requests.Session, method: str, url: str, **kw: Any) -> Any:
        if method != "PATCH":
            return real(self, method, url, **kw)
        if status is None:
            raise requests.ConnectionError("connection reset by peer")
        response = requests.Response()
        response.status_code, response._content = status, body.encode()
        response.url = url
        return response

    monkeypatch.setattr(requests.Session, "request", request)


@pytest.mark.parametrize(
    "status", [503, 401, None], ids=["server-error", "token-expired", "network"]
)
def test_a_transient_close_failure_keeps_the_upload_and_the_rerun_only_closes(
    sandbox: Sandbox,
    user_keys: KeyPair,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    status: int | None,
) -> None:
    source = random_file(tmp_path / "src", "c.bin", SIZE)
    tmp_dir = tmp_path / "tmp"
    tmp_dir.mkdir()
    token = sandbox.upload_token(user_keys.public)
    with monkeypatch.context() as patch:
        _failing_close(patch, status)
        with make_client(sandbox, user_keys, token, tmp_dir=tmp_dir) as client:
            [failed] = client.upload([(source, "c.bin")])
    assert failed.status == "failed"
    assert "\n" not in (failed.error or "")
    assert [u.state for u in sandbox.uploads()] == ["init"]  # not deleted
    # the journal is kept; the temp file went during the close: with every
    # part confirmed, the rerun needs only the journal's checksums
    kept = {p.suffix for p in _state_files(tmp_dir)}
    assert ".journal" in kept and ".c4gh" not in kept

    mark = len(sandbox.request_log())
    with make_client(sandbox, user_keys, token, tmp_dir=tmp_dir) as client:
        result = client.upload_file(source, "c.bin")
    assert result.status == "uploaded", result
    assert body_bytes(sandbox, "PUT", mark) == 0  # no part sent again
    info = sandbox.wait_interrogated("c.bin", timeout_s=120)
    assert info.state == "interrogated"
    assert _state_files(tmp_dir) == []


def test_a_definitive_close_rejection_discards_and_the_rerun_starts_over(
    sandbox: Sandbox,
    user_keys: KeyPair,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = random_file(tmp_path / "src", "m.bin", SIZE)
    tmp_dir = tmp_path / "tmp"
    tmp_dir.mkdir()
    token = sandbox.upload_token(user_keys.public)
    body = '{"exception_id": "checksumMismatch", "description": "ETag differs"}'
    with monkeypatch.context() as patch:
        _failing_close(patch, 400, body)
        with make_client(sandbox, user_keys, token, tmp_dir=tmp_dir) as client:
            [failed] = client.upload([(source, "m.bin")])
    assert failed.status == "failed"
    assert [u.state for u in sandbox.uploads()] == ["cancelled"]
    assert _state_files(tmp_dir) == []
    with make_client(sandbox, user_keys, token, tmp_dir=tmp_dir) as client:
        assert client.upload_file(source, "m.bin").status == "uploaded"


def _journal_key(source: Path, alias: str) -> str:
    """The part of the journal's name that identifies the upload (old and new)."""
    return hashlib.sha256(f"{source.resolve()}\0{alias}".encode()).hexdigest()[:20]


class _FullDiskOs:
    """``os`` for the journal module: appends to one journal fail with ENOSPC."""

    def __init__(self, key: str) -> None:
        self._key = key

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    def write(self, fd: int, data: bytes) -> int:
        target = os.readlink(f"/proc/self/fd/{fd}")
        if self._key in target and target.endswith(".journal"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return os.write(fd, data)


@pytest.mark.parametrize("failure", ["disk-full", "journal-removed"])
def test_a_failed_journal_write_fails_that_file_alone(
    sandbox: Sandbox,
    user_keys: KeyPair,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    failure: str,
) -> None:
    broken = random_file(tmp_path / "src", "broken.bin", SIZE)
    fine = random_file(tmp_path / "src", "fine.bin", 6 * MiB)
    tmp_dir = tmp_path / "tmp"
    tmp_dir.mkdir()
    key = _journal_key(broken, "broken.bin")
    with monkeypatch.context() as patch:
        if failure == "disk-full":
            patch.setattr("snakemake_ghga.transfer.journal.os", _FullDiskOs(key))
        else:
            real_put = PartUploads._put

            def put_then_remove(self: PartUploads, part: Any) -> None:
                real_put(self, part)
                for journal in tmp_dir.rglob(f"*{key}.journal"):
                    journal.unlink()  # e.g. a cleanup job on the shared /tmp

            patch.setattr(PartUploads, "_put", put_then_remove)
        token = sandbox.upload_token(user_keys.public)
        with make_client(sandbox, user_keys, token, tmp_dir=tmp_dir) as client:
            results = client.upload([(broken, "broken.bin"), (fine, "fine.bin")])

    by_alias = {r.alias: r for r in results}
    assert by_alias["fine.bin"].status == "uploaded"
    assert by_alias["broken.bin"].status == "failed"
    error = by_alias["broken.bin"].error or ""
    reason = "No space left" if failure == "disk-full" else "No such file"
    assert reason in error and ".journal" in error and "\n" not in error
    assert not [p for p in _state_files(tmp_dir) if key in p.name]
    states = {u.alias: u.state for u in sandbox.uploads()}
    assert states["broken.bin"] == "cancelled"  # nothing left to block the alias

    with make_client(sandbox, user_keys, token, tmp_dir=tmp_dir) as client:
        assert client.upload_file(broken, "broken.bin").status == "uploaded"
    assert list(state_dir_path(tmp_dir).iterdir()) == []
