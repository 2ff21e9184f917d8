"""GhgaClient helpers and the progress renderers (no sockets)."""

import io
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from snakemake_ghga.client import GhgaClient, _check_unique, _live_by_alias
from snakemake_ghga.errors import AuthError, ConfigError
from snakemake_ghga.files.private import state_dir_path
from snakemake_ghga.ghga.models import FileUpload, WorkPackage
from snakemake_ghga.progress import BarProgress, LineProgress
from snakemake_ghga.transfer.upload import upload_state


def _upload(alias: str, state: str, file_id: str) -> FileUpload:
    return FileUpload(file_id, alias, state, 1, 200)


def test_live_upload_wins_over_cancelled_of_same_alias() -> None:
    uploads = [
        _upload("a", "inbox", "new"),
        _upload("a", "cancelled", "old"),
        _upload("b", "failed", "f"),
    ]
    by_alias = _live_by_alias(uploads)
    assert by_alias["a"].file_id == "new"
    assert by_alias["b"].state == "failed"


def test_duplicate_paths_and_aliases_are_config_errors(tmp_path: Path) -> None:
    one, two = tmp_path / "1", tmp_path / "2"
    with pytest.raises(ConfigError, match="duplicate path"):
        _check_unique([(one, "a"), (tmp_path / "." / "1", "b")])
    with pytest.raises(ConfigError, match="duplicate alias"):
        _check_unique([(one, "a"), (two, "a")])
    _check_unique([(one, "a"), (two, "b")])


def test_upload_state_is_stable_per_alias_and_in_the_private_dir(
    tmp_path: Path,
) -> None:
    first = upload_state(tmp_path, tmp_path / "f", "a")
    assert first == upload_state(tmp_path, tmp_path / "f", "a")
    assert first != upload_state(tmp_path, tmp_path / "f", "b")
    assert first.temp.suffix == ".c4gh" and first.journal.suffix == ".journal"
    private = state_dir_path(tmp_path)
    assert {first.temp.parent, first.journal.parent, first.lock.parent} == {private}
    assert private == tmp_path / f"ghga-transfer-{os.getuid()}"


def test_bar_progress_moves_with_bytes() -> None:
    stream = io.StringIO()
    bars = BarProgress(stream, width=10, min_interval_s=0)
    bars.file_started("f.bin", 1000)
    bars.file_progress("f.bin", 500)
    bars.file_finished("f.bin", True, "ok")  # forces a redraw
    bars.file_started("g.bin", 100)
    bars.file_progress("g.bin", 100)
    bars.file_notice("g.bin", "resuming")
    text = stream.getvalue()
    assert "[#####.....]  50%" in text
    assert "[##########] 100%" in text
    assert "g.bin: resuming" in text


def test_line_progress_prints_starts_and_notices_only() -> None:
    stream = io.StringIO()
    lines = LineProgress(stream)
    lines.file_started("f", 10)
    lines.file_progress("f", 5)
    lines.file_notice("f", "being staged")
    assert stream.getvalue().splitlines() == [
        "f: started (10 bytes)",
        "f: being staged",
    ]


def test_work_package_files_refuses_an_upload_package() -> None:
    upload_package = WorkPackage("wp-1", {}, "rdub", "fub", "upload")
    client = SimpleNamespace(api=SimpleNamespace(work_package=lambda: upload_package))
    with pytest.raises(AuthError, match="wp-1 is an upload work package"):
        GhgaClient.work_package_files(client)  # type: ignore[arg-type]
    download_package = WorkPackage("wp-2", {"GHGAF1": ".bam"}, None, None, "download")
    client.api.work_package = lambda: download_package
    assert GhgaClient.work_package_files(client) == {"GHGAF1": ".bam"}  # type: ignore[arg-type]
