"""Resume journals: atomic header, appended parts, torn lines, permissions."""

import os
import stat
from pathlib import Path

from snakemake_ghga.transfer.journal import (
    DownloadHeader,
    Fingerprint,
    Journal,
    UploadHeader,
)


def _upload_header(tmp_path: Path) -> UploadHeader:
    source = tmp_path / "in.bin"
    source.write_bytes(b"x" * 10)
    return UploadHeader(
        str(source),
        "alias",
        Fingerprint.of(source),
        "file-1",
        "HD01",
        5_245_120,
        162,
        "c2VhbGVk",
    )


def test_journal_round_trip_keeps_header_and_parts(tmp_path: Path) -> None:
    header = _upload_header(tmp_path)
    journal = Journal.create(tmp_path / "j", header)
    journal.confirm(1, md5="a", sha256="b")
    journal.confirm(3, md5="c", sha256="d")
    loaded = Journal.load(tmp_path / "j")
    assert loaded is not None
    assert loaded.header == header
    assert loaded.records == {
        1: {"md5": "a", "sha256": "b"},
        3: {"md5": "c", "sha256": "d"},
    }
    assert stat.S_IMODE(os.stat(tmp_path / "j").st_mode) == 0o600
    assert "c2VhbGVk" not in repr(loaded.header)


def test_torn_last_line_is_ignored(tmp_path: Path) -> None:
    header = DownloadHeader("GHGAF1", str(tmp_path / "p"), 100, "ab", 65_564, False)
    journal = Journal.create(tmp_path / "j", header)
    journal.confirm(1)
    with open(tmp_path / "j", "a") as handle:
        handle.write('{"part": 2')  # killed mid-write
    loaded = Journal.load(tmp_path / "j")
    assert loaded is not None and loaded.header == header
    assert set(loaded.records) == {1}


def test_unreadable_or_foreign_journal_loads_as_none(tmp_path: Path) -> None:
    assert Journal.load(tmp_path / "missing") is None
    (tmp_path / "bad").write_text("not json\n")
    assert Journal.load(tmp_path / "bad") is None
    (tmp_path / "old").write_text('{"version": 99, "kind": "upload"}\n')
    assert Journal.load(tmp_path / "old") is None


def test_fingerprint_changes_when_file_is_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"1")
    before = Fingerprint.of(path)
    path.write_bytes(b"22")
    assert Fingerprint.of(path) != before
