"""Fixtures for the plugin tests: a recording fake client and provider builders."""

import hashlib
import logging
import random
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from snakemake_ghga.errors import GhgaError
from snakemake_ghga.sandbox import Sandbox
from snakemake_storage_plugin_ghga import StorageProvider, StorageProviderSettings
from tests.conftest import KeyPair, make_key_pair

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
    sha256: str | None = None


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
    close_waits: list[bool] = field(default_factory=list)
    replace_unfinished: list[bool] = field(default_factory=list)
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

    def upload_file(
        self, path: Path, alias: str, *, replace_unfinished: bool = False
    ) -> FakeOutcome:
        self._record("upload_file")
        self.replace_unfinished.append(replace_unfinished)
        size = path.stat().st_size
        if any(u.alias == alias for u in self.uploads):
            return FakeOutcome("skipped", "already in the box (inbox)", size)
        sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
        self.uploads.append(FakeUpload(alias, "inbox", size, sha256))
        return FakeOutcome("uploaded", plain_size=size, plain_sha256=sha256)

    def holds_same(self, path: Path, alias: str) -> bool:
        self._record("holds_same")
        sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
        return any(u.alias == alias and u.sha256 == sha256 for u in self.uploads)

    def remove(self, alias: str) -> None:
        self._record("remove")
        self.uploads = [u for u in self.uploads if u.alias != alias]

    def close(self, wait: bool = True) -> None:
        self.closed = True
        self.close_waits.append(wait)


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


@dataclass(frozen=True)
class SandboxUser:
    """A running sandbox, a user key pair, and archived accessions with content."""

    sandbox: Sandbox
    keys: KeyPair
    contents: dict[str, bytes]

    def settings(self, **changes: object) -> StorageProviderSettings:
        """Plugin settings with download and upload tokens of this user."""
        values: dict[str, object] = {
            "wkvs_url": self.sandbox.wkvs_url,
            "download_token": self.sandbox.download_token(self.keys.public),
            "upload_token": self.sandbox.upload_token(self.keys.public),
        }
        values.update(changes)
        return plugin_settings(self.keys, **values)


def archive_files(
    sandbox: Sandbox, directory: Path, files: dict[str, bytes]
) -> dict[str, bytes]:
    """Write name -> content files and archive them; return accession -> content."""
    directory.mkdir(parents=True, exist_ok=True)
    archived = {}
    for name, content in files.items():
        (directory / name).write_bytes(content)
        archived[sandbox.add_file(directory / name)] = content
    return archived


@pytest.fixture(scope="session")
def sandbox_user(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[SandboxUser]:
    """One sandbox for the plugin tests that do not inspect its request log."""
    root = tmp_path_factory.mktemp("plugin-sandbox")
    with Sandbox(root / "state") as sandbox:
        contents = archive_files(
            sandbox,
            root / "sources",
            {"small.txt": b"hello GHGA\n", "sample.bam": random.randbytes(200_000)},
        )
        yield SandboxUser(sandbox, make_key_pair(root / "keys", "user"), contents)
