"""Fixtures for transfers against the real sandbox on 127.0.0.1."""

import logging
import os
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from snakemake_ghga.client import GhgaClient
from snakemake_ghga.config import MiB, TransferConfig
from snakemake_ghga.progress import ProgressListener
from snakemake_ghga.sandbox.app import Sandbox
from tests.conftest import KeyPair

PART = 5 * MiB  # the smallest part the UCS accepts keeps tests fast


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """`cli.main` binds the package logger to the (captured) stderr: undo it."""
    package = logging.getLogger("snakemake_ghga")
    saved = package.handlers[:], package.level, package.propagate
    yield
    package.handlers[:], package.level, package.propagate = saved


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    with Sandbox(tmp_path / "sandbox") as running:
        yield running


@pytest.fixture
def sandbox_factory(tmp_path: Path) -> Iterator[Callable[..., Sandbox]]:
    """Start a sandbox with options (url_ttl_s, fault_rate, ...); stopped after."""
    started: list[Sandbox] = []

    def make(**options: Any) -> Sandbox:
        running = Sandbox(tmp_path / f"sandbox{len(started)}", **options).start()
        started.append(running)
        return running

    yield make
    for running in started:
        running.stop()


def make_client(
    sandbox: Sandbox,
    keys: KeyPair,
    token: str,
    progress: ProgressListener | None = None,
    **config: Any,
) -> GhgaClient:
    settings: dict[str, Any] = {"part_size_bytes": PART, "max_workers": 4}
    settings.update(config)
    return GhgaClient(
        wkvs_url=sandbox.wkvs_url,
        token=token,
        my_secret_key=keys.secret,
        my_public_key=keys.public,
        config=TransferConfig(**settings),
        progress=progress,
    )


def random_file(directory: Path, name: str, size: int) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    with path.open("wb") as handle:
        left = size
        while left:
            chunk = os.urandom(min(left, 8 * MiB))
            handle.write(chunk)
            left -= len(chunk)
    return path


def upload_and_archive(
    sandbox: Sandbox, keys: KeyPair, files: list[Path], **config: Any
) -> dict[str, str]:
    """Upload with our client, wait for the hub; return alias → accession."""
    with make_client(sandbox, keys, sandbox.upload_token(keys.public), **config) as c:
        results = c.upload([(path, path.name) for path in files])
    assert [r.status for r in results] == ["uploaded"] * len(files), results
    accessions = {}
    for path in files:
        info = sandbox.wait_interrogated(path.name, timeout_s=120)
        assert info.state == "interrogated", info
        assert info.accession is not None
        accessions[path.name] = info.accession
    return accessions


def request_counts(sandbox: Sandbox, since: int = 0) -> Counter[str]:
    """Count logged requests by kind: 'PUT s3', 'GET wps', ... after index since."""
    counts: Counter[str] = Counter()
    for entry in sandbox.request_log()[since:]:
        counts[f"{entry['method']} {entry['path'].strip('/').split('/')[0]}"] += 1
    return counts


def body_bytes(
    sandbox: Sandbox, method: str, since: int = 0, *, answered: bool = False
) -> int:
    """Body bytes of object-store requests with this method after index since.

    ``answered`` counts only requests that got an answer: a request the
    previous run cut off may be logged only after it ended.
    """
    return sum(
        entry["bytes"]
        for entry in sandbox.request_log()[since:]
        if entry["method"] == method
        and entry["path"].startswith("/s3")
        and (entry["status"] != 0 or not answered)
    )


def cli_args(sandbox: Sandbox, user: KeyPair, token_file: Path) -> list[str]:
    """The shared `ghga-transfer` options for a run against this sandbox."""
    return [
        "--wkvs-url",
        sandbox.wkvs_url,
        "--token-file",
        str(token_file),
        "--my-private-key",
        str(user.secret_path),
        "--my-public-key",
        str(user.public_path),
        "--part-size",
        "5",
    ]


@pytest.fixture
def upload_token(sandbox: Sandbox, user_keys: KeyPair, tmp_path: Path) -> Path:
    path = tmp_path / "up.token"
    path.write_text(sandbox.upload_token(user_keys.public))
    return path
