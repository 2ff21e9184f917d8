"""Fixtures for the plugin tests: a recording fake client and provider builders."""

import logging
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from snakemake_ghga.errors import GhgaError
from snakemake_storage_plugin_ghga import StorageProvider, StorageProviderSettings
from tests.conftest import KeyPair

TOKEN = "GHGA-WP-0000000000000000:c2VjcmV0LXRva2VuLXRoYXQtbXVzdC1uZXZlci1sZWFr"
LOGGER = logging.getLogger("tests.plugin")


@dataclass(frozen=True)
class FakeDownloadInfo:
    plain_size: int
    sha256: str | None


@dataclass(frozen=True)
class FakeUpload:
    alias: str
    state: str
    decrypted_size: int


@dataclass(frozen=True)
class FakeOutcome:
    status: str
    error: str | None = None
    plain_size: int = 0
    plain_sha256: str | None = None


@dataclass
class RecordingClient:
    """Stands in for `GhgaClient`; records every call by name."""

    files: dict[str, bytes] = field(default_factory=dict)
    extensions: dict[str, str] = field(default_factory=dict)
    uploads: list[FakeUpload] = field(default_factory=list)
    calls: Counter[str] = field(default_factory=Counter)
    fail_with: GhgaError | None = None
    on_download: Callable[[str], None] | None = None
    closed: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _record(self, name: str) -> None:
        with self.lock:
            self.calls[name] += 1
        if self.fail_with is not None:
            raise self.fail_with

    def work_package_files(self) -> dict[str, str]:
        self._record("work_package_files")
        return {acc: self.extensions.get(acc, ".bin") for acc in self.files}

    def describe_download(self, accession: str) -> FakeDownloadInfo:
        self._record("describe_download")
        data = self.files[accession]
        return FakeDownloadInfo(len(data), "ab" * 32)

    def download_file(self, accession: str, destination: Path) -> FakeOutcome:
        self._record("download_file")
        if self.on_download is not None:
            self.on_download(accession)
        destination.write_bytes(self.files[accession])
        return FakeOutcome("downloaded")

    def list_uploads(self) -> list[FakeUpload]:
        self._record("list_uploads")
        return list(self.uploads)

    def upload_file(self, path: Path, alias: str) -> FakeOutcome:
        self._record("upload_file")
        size = path.stat().st_size
        self.uploads.append(FakeUpload(alias, "inbox", size))
        return FakeOutcome("uploaded", plain_size=size, plain_sha256="cd" * 32)

    def remove(self, alias: str) -> None:
        self._record("remove")
        self.uploads = [u for u in self.uploads if u.alias != alias]

    def close(self) -> None:
        self.closed = True


def plugin_settings(keys: KeyPair, **changes: object) -> StorageProviderSettings:
    """Valid settings for a loopback deployment, with both tokens."""
    values: dict[str, object] = {
        "wkvs_url": "http://127.0.0.1:9/.well-known",
        "my_public_key": keys.public_path,
        "my_private_key": keys.secret_path,
        "download_token": TOKEN,
        "upload_token": TOKEN,
    }
    values.update(changes)
    return StorageProviderSettings(**values)


@pytest.fixture
def fake_client() -> RecordingClient:
    return RecordingClient(
        files={"GHGAF1": b"one", "GHGAF2": b"two!", "GHGAF3": b"three"},
        extensions={"GHGAF1": ".bam", "GHGAF2": ".vcf.gz", "GHGAF3": "/../../x"},
    )


@pytest.fixture
def make_provider(
    tmp_path: Path, user_keys: KeyPair, fake_client: RecordingClient
) -> Callable[..., StorageProvider]:
    """Build a provider whose clients are `fake_client`; kwargs change settings."""

    class FakeClientProvider(StorageProvider):
        def _make_client(self, token: str) -> RecordingClient:
            return fake_client

    def make(**changes: object) -> StorageProvider:
        return FakeClientProvider(
            local_prefix=tmp_path / "prefix",
            logger=LOGGER,
            settings=plugin_settings(user_keys, **changes),
        )

    return make
