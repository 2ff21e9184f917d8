"""Download results are reported as each file finishes, not all at the end."""

import threading
from pathlib import Path

import pytest

from snakemake_ghga.sandbox import Sandbox
from snakemake_ghga.transfer import download as download_module
from snakemake_ghga.transfer.context import DownloadResult
from tests.conftest import KeyPair

from .conftest import make_client, random_file


def test_result_reported_while_another_file_is_still_running(
    sandbox: Sandbox,
    user_keys: KeyPair,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    small = sandbox.add_file(random_file(tmp_path / "in", "small.txt", 1000))
    large = sandbox.add_file(random_file(tmp_path / "in", "large.bin", 3_000_000))
    kept = sandbox.add_file(random_file(tmp_path / "in", "kept.txt", 10))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / f"{kept}.txt").write_bytes(b"old")  # reported as skipped
    small_reported = threading.Event()
    original = download_module.FileDownloader.download

    def held_back(self, drs, destination, **kwargs):  # type: ignore[no-untyped-def]
        if drs.accession == large:  # finishes only after small's line is out
            assert small_reported.wait(30), "small's result was held until the end"
        return original(self, drs, destination, **kwargs)

    monkeypatch.setattr(download_module.FileDownloader, "download", held_back)
    reported: list[DownloadResult] = []

    def on_result(result: DownloadResult) -> None:
        reported.append(result)
        if result.accession == small:
            small_reported.set()

    token = sandbox.download_token(user_keys.public)
    with make_client(sandbox, user_keys, token) as client:
        results = client.download(None, tmp_path / "out", on_result=on_result)
    assert [(r.accession, r.status) for r in reported] == [
        (kept, "skipped"),
        (small, "downloaded"),
        (large, "downloaded"),
    ]
    assert sorted(r.accession for r in results) == sorted([small, large, kept])
