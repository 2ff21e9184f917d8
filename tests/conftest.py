"""Fixtures shared by every test folder: a clean environment and key pairs."""

import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from snakemake_ghga.crypt4gh import keys
from tests.support.tools import run_keygen


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Strip variables that would change what the code under test reads."""
    for name in list(os.environ):
        if name.startswith(
            ("SNAKEMAKE_STORAGE_GHGA_", "C4GH_", "GHGA_")
        ) or name.lower() in (
            "http_proxy",
            "https_proxy",
            "all_proxy",
        ):
            monkeypatch.delenv(name)


@pytest.fixture(autouse=True)
def restore_library_logger() -> Iterator[None]:
    """Undo what an in-process `ghga-transfer` main() does to the library's logger.

    main() gives the `snakemake_ghga` logger its own handler and turns off
    propagation, so later tests' `caplog` saw none of the library's records
    (test_secrets then failed in the full suite, never alone).
    """
    library = logging.getLogger("snakemake_ghga")
    saved = (library.handlers[:], library.level, library.propagate)
    yield
    library.handlers[:], library.level, library.propagate = saved


@dataclass(frozen=True)
class KeyPair:
    """Key files on disk and the raw keys."""

    secret_path: Path
    public_path: Path
    secret: bytes
    public: bytes


def make_key_pair(directory: Path, name: str) -> KeyPair:
    """Write an unencrypted key pair with our own writer."""
    secret, public = keys.generate_key_pair()
    directory.mkdir(parents=True, exist_ok=True)
    keys.write_private_key(directory / f"{name}.sec", secret)
    keys.write_public_key(directory / f"{name}.pub", public)
    return KeyPair(directory / f"{name}.sec", directory / f"{name}.pub", secret, public)


@pytest.fixture
def user_keys(tmp_path: Path) -> KeyPair:
    return make_key_pair(tmp_path / "keys", "user")


@pytest.fixture
def hub_keys(tmp_path: Path) -> KeyPair:
    return make_key_pair(tmp_path / "keys", "hub")


@pytest.fixture
def reference_keys(tmp_path: Path) -> Callable[[str, str], Path]:
    """Factory: key pair NAME written by crypt4gh-keygen with PASSPHRASE ('' = none)."""

    def make(name: str, passphrase: str) -> Path:
        directory = tmp_path / "refkeys"
        directory.mkdir(exist_ok=True)
        run_keygen(directory / f"{name}.sec", directory / f"{name}.pub", passphrase)
        return directory / name

    return make
