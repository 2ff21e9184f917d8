"""Short-lived URLs and injected faults: transfers still finish byte-identical."""

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from snakemake_ghga.client import GhgaClient
from snakemake_ghga.config import MiB, TransferConfig
from snakemake_ghga.sandbox.app import Sandbox
from snakemake_ghga.transfer import download
from tests.conftest import KeyPair

from .conftest import random_file, request_counts, upload_and_archive


class SlowProgress:
    """Sleeps on every progress callback: the transfer outlives its URLs."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s

    def file_started(self, name: str, total_bytes: int) -> None:
        pass

    def file_progress(self, name: str, delta_bytes: int) -> None:
        time.sleep(self.delay_s)

    def file_notice(self, name: str, message: str) -> None:
        pass

    def file_finished(self, name: str, ok: bool, message: str) -> None:
        pass


def _slow_client(
    sandbox: Sandbox, keys: KeyPair, token: str, delay_s: float = 0.12
) -> GhgaClient:
    return GhgaClient(
        wkvs_url=sandbox.wkvs_url,
        token=token,
        my_secret_key=keys.secret,
        my_public_key=keys.public,
        progress=SlowProgress(delay_s),
        config=TransferConfig(part_size_bytes=5 * MiB, max_workers=1),
    )


def test_url_ttl_2_slow_transfers_finish(
    sandbox_factory: Callable[..., Sandbox], user_keys: KeyPair, tmp_path: Path
) -> None:
    sandbox = sandbox_factory(url_ttl_s=2)
    source = random_file(tmp_path / "in", "ttl.bin", 20 * MiB)
    with _slow_client(sandbox, user_keys, sandbox.upload_token(user_keys.public)) as c:
        [uploaded] = c.upload([(source, "ttl.bin")])
    assert uploaded.status == "uploaded"
    accession = sandbox.wait_interrogated("ttl.bin").accession
    assert accession is not None
    mark = len(sandbox.request_log())
    with _slow_client(
        sandbox, user_keys, sandbox.download_token(user_keys.public)
    ) as c:
        result = c.download_file(accession, tmp_path / "ttl.out")
    assert (tmp_path / "ttl.out").read_bytes() == source.read_bytes()
    assert result.status == "downloaded"
    assert request_counts(sandbox, mark)["GET dcs"] >= 3  # URL renewed before expiry


def test_expired_url_403_fetches_fresh_url(
    sandbox_factory: Callable[..., Sandbox],
    user_keys: KeyPair,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sandbox = sandbox_factory(url_ttl_s=2)
    source = random_file(tmp_path / "in", "exp.bin", 15 * MiB)
    accession = upload_and_archive(sandbox, user_keys, [source])["exp.bin"]
    original = download.DrsUrls._set

    def never_expire(self: download.DrsUrls, drs: object) -> None:
        original(self, drs)  # type: ignore[arg-type]
        self._expires = float("inf")

    monkeypatch.setattr(download.DrsUrls, "_set", never_expire)
    mark = len(sandbox.request_log())
    token = sandbox.download_token(user_keys.public)
    with _slow_client(sandbox, user_keys, token, delay_s=0.3) as c:  # > 2 s in all
        c.download_file(accession, tmp_path / "exp.out")
    assert (tmp_path / "exp.out").read_bytes() == source.read_bytes()
    refused = [
        e
        for e in sandbox.request_log()[mark:]
        if e["method"] == "GET" and e["path"].startswith("/s3") and e["status"] == 403
    ]
    assert refused, "the test should have used an expired URL"


def test_fault_rate_5_percent_round_trip_byte_identical(
    sandbox_factory: Callable[..., Sandbox], user_keys: KeyPair, tmp_path: Path
) -> None:
    sandbox = sandbox_factory(fault_rate=0.05, seed=3)
    files = [random_file(tmp_path / "in", f"f{i}.bin", 9 * MiB + i) for i in range(4)]
    accessions = upload_and_archive(sandbox, user_keys, files, max_attempts=10)
    token = sandbox.download_token(user_keys.public)
    with GhgaClient(
        wkvs_url=sandbox.wkvs_url,
        token=token,
        my_secret_key=user_keys.secret,
        my_public_key=user_keys.public,
        config=TransferConfig(part_size_bytes=5 * MiB, max_attempts=10),
    ) as client:
        results = client.download(None, tmp_path / "out")
    assert [r.status for r in results] == ["downloaded"] * 4
    for path in files:
        output = tmp_path / "out" / f"{accessions[path.name]}.bin"
        assert output.read_bytes() == path.read_bytes()
    faults = [e["fault"] for e in sandbox.request_log() if e["fault"]]
    assert faults, "the sandbox should have injected faults"
