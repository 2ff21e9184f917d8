"""Fixtures for the sandbox's own tests: a running sandbox and a driven user."""

import base64
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import jwt
import pytest

from snakemake_ghga.sandbox import Sandbox
from tests.conftest import KeyPair
from tests.support.ghga_http import GhgaHttpDriver

MiB = 1024 * 1024
PART_SIZE = 5 * MiB


def sign_wot(
    sandbox: Sandbox, user_public_key: bytes, expires_in_s: int = 30, **claims: str
) -> str:
    """A work order token signed with the sandbox's WPS key (any claims, any age)."""
    pem = (sandbox.state_dir / "wps_signing_key.pem").read_bytes()
    now = int(time.time())
    payload = {
        **claims,
        "user_public_crypt4gh_key": base64.b64encode(user_public_key).decode(),
        "iat": now + expires_in_s - 30,
        "exp": now + expires_in_s,
    }
    return jwt.encode(payload, pem, algorithm="ES256")


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    """A running sandbox with its state in tmp_path/state."""
    with Sandbox(tmp_path / "state") as running:
        yield running


@pytest.fixture
def uploader(sandbox: Sandbox, user_keys: KeyPair) -> GhgaHttpDriver:
    """The user, holding an upload work package token of the default box."""
    token = sandbox.upload_token(user_keys.public)
    return GhgaHttpDriver(sandbox.wkvs_url, token, user_keys.secret)


@pytest.fixture
def sample(tmp_path: Path) -> Callable[[int], Path]:
    """Factory: a file of `size` random bytes."""
    folder = tmp_path / "samples"
    folder.mkdir()

    def make(size: int) -> Path:
        path = folder / f"sample-{size}-{len(os.listdir(folder))}.bin"
        path.write_bytes(os.urandom(size))
        return path

    return make
