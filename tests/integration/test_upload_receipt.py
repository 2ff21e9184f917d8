"""`ghga-transfer upload --receipt FILE` and result lines printed as files end."""

import hashlib
import io
import json
import os
import threading
from pathlib import Path

import pytest

from snakemake_ghga import crypt4gh as crypt
from snakemake_ghga.cli import main
from snakemake_ghga.cli.transfer_commands import _write_receipt
from snakemake_ghga.sandbox.app import Sandbox
from snakemake_ghga.transfer.context import UploadResult
from snakemake_ghga.transfer.upload import FileUploader
from tests.conftest import KeyPair

from .conftest import cli_args as _args
from .conftest import random_file

RECEIPT_KEYS = {
    "path",
    "alias",
    "status",
    "file_id",
    "state",
    "plain_size",
    "encrypted_size",
    "plain_sha256",
    "encrypted_md5",
    "error",
}


def test_receipt_lists_uploaded_skipped_and_failed_files(
    sandbox: Sandbox,
    user_keys: KeyPair,
    upload_token: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    common = _args(sandbox, user_keys, upload_token)
    new = random_file(tmp_path / "in", "new.bin", 70_000)
    old = random_file(tmp_path / "in", "old.bin", 100)
    bad = tmp_path / "in" / "bad.bin"
    bad.write_bytes(crypt.MAGIC + b"x")
    assert main(["upload", *common, str(old)]) == 0
    capsys.readouterr()
    receipt = tmp_path / "out" / "sub" / "receipt.json"  # directories are created

    code = main(
        ["upload", *common, "--receipt", str(receipt), str(new), str(old), str(bad)]
    )

    assert code == 1
    assert "summary: 1 uploaded, 1 skipped, 1 failed" in capsys.readouterr().out
    entries = json.loads(receipt.read_text())["files"]
    assert [e["alias"] for e in entries] == ["new.bin", "old.bin", "bad.bin"]
    assert all(set(e) == RECEIPT_KEYS for e in entries)
    uploaded, skipped, failed = entries
    box = {u.alias: u for u in sandbox.uploads()}
    assert uploaded["status"] == "uploaded"
    assert uploaded["path"] == str(new)
    assert uploaded["file_id"] == box["new.bin"].id
    assert uploaded["state"] in ("inbox", "interrogated")
    assert uploaded["plain_size"] == 70_000
    assert uploaded["encrypted_size"] == crypt.encrypted_size(70_000)
    assert uploaded["plain_sha256"] == hashlib.sha256(new.read_bytes()).hexdigest()
    assert uploaded["encrypted_md5"].endswith("-1")
    assert uploaded["error"] is None
    assert skipped["status"] == "skipped"
    assert skipped["file_id"] == box["old.bin"].id
    assert skipped["state"] in ("inbox", "interrogated")
    assert skipped["plain_size"] == 100
    assert "already in the box" in skipped["error"]
    assert failed["status"] == "failed"
    assert failed["file_id"] is None and failed["state"] is None
    assert failed["error"]
    assert sorted(p.name for p in receipt.parent.iterdir()) == ["receipt.json"]


def test_receipt_path_that_cannot_be_written_is_refused_before_sending(
    sandbox: Sandbox,
    user_keys: KeyPair,
    upload_token: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = random_file(tmp_path / "in", "a.bin", 10)
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")

    code = main(
        [
            "upload",
            *_args(sandbox, user_keys, upload_token),
            "--receipt",
            str(blocker / "receipt.json"),
            str(source),
        ]
    )

    assert code == 2
    assert "receipt" in capsys.readouterr().err
    assert sandbox.request_log() == []


def test_receipt_is_written_private_and_survives_short_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Created 0600 beside the receipt, written to the end, then renamed."""
    receipt = tmp_path / "receipt.json"
    results = [
        UploadResult(tmp_path / f"{n}.bin", f"a{n}", "failed", error="x")
        for n in range(50)
    ]
    modes: list[int] = []
    receipt_fds: set[int] = set()
    real_open, real_pwrite = os.open, os.pwrite

    def recording_open(
        path: str | os.PathLike[str], flags: int, mode: int = 0o777, **kw: object
    ) -> int:
        fd = real_open(path, flags, mode, **kw)
        if Path(path).name.startswith(".receipt.json"):
            modes.append(mode)
            receipt_fds.add(fd)
        return fd

    def short_pwrite(fd: int, data: bytes, offset: int) -> int:
        if fd in receipt_fds:
            data = bytes(data)[:7]  # a disk that takes 7 bytes at a time
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(os, "open", recording_open)
    monkeypatch.setattr(os, "pwrite", short_pwrite)

    _write_receipt(receipt, results, {})

    assert modes == [0o600]
    entries = json.loads(receipt.read_text())["files"]
    assert [e["alias"] for e in entries] == [f"a{n}" for n in range(50)]
    assert [p.name for p in tmp_path.iterdir()] == ["receipt.json"]


def test_receipt_is_synced_to_disk_before_it_gets_its_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    receipt = tmp_path / "receipt.json"
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def recording_fsync(fd: int) -> None:
        events.append("fsync")
        real_fsync(fd)

    def recording_replace(
        src: str | os.PathLike[str], dst: str | os.PathLike[str]
    ) -> None:
        events.append(f"rename {Path(dst).name}")
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    monkeypatch.setattr(os, "replace", recording_replace)

    _write_receipt(receipt, [UploadResult(tmp_path / "a.bin", "a", "failed")], {})

    assert events[:1] == ["fsync"]
    assert "rename receipt.json" in events[1:]


class _Stdout(io.StringIO):
    """Captured stdout that signals once a given text was written."""

    def __init__(self, wanted: str) -> None:
        super().__init__()
        self.wanted = wanted
        self.seen = threading.Event()

    def write(self, text: str) -> int:
        written = super().write(text)
        if self.wanted in self.getvalue():
            self.seen.set()
        return written


def test_each_result_line_is_printed_as_soon_as_its_file_ends(
    sandbox: Sandbox,
    user_keys: KeyPair,
    upload_token: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The slow file waits until the fast file's line is out."""
    fast = random_file(tmp_path / "in", "fast.bin", 10)
    slow = random_file(tmp_path / "in", "slow.bin", 10)
    stdout = _Stdout("uploaded " + str(fast))
    monkeypatch.setattr("sys.stdout", stdout)
    original = FileUploader.upload

    def upload(self: FileUploader, path: Path, alias: str, **kw: bool) -> object:
        if alias == "slow.bin":
            assert stdout.seen.wait(15), "the fast file's line was not printed"
        return original(self, path, alias, **kw)

    monkeypatch.setattr(FileUploader, "upload", upload)

    code = main(
        ["upload", *_args(sandbox, user_keys, upload_token), str(slow), str(fast)]
    )

    lines = stdout.getvalue().splitlines()
    assert code == 0, lines
    assert [line.split()[0] for line in lines] == ["uploaded", "uploaded", "summary:"]
    assert str(fast) in lines[0] and str(slow) in lines[1]
    assert lines[2] == "summary: 2 uploaded, 0 skipped, 0 failed"
