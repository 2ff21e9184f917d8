"""Fixtures shared by every test folder: a clean environment and key pairs."""

import logging
import os
import pty
import select
import shutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from snakemake_ghga.crypt4gh import keys

BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    """Path of a console script installed beside this interpreter."""
    found = shutil.which(name, path=str(BIN)) or shutil.which(name)
    assert found, f"{name} is not installed"
    return found


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


def run_keygen(secret_path: Path, public_path: Path, passphrase: str) -> None:
    """Run the reference `crypt4gh-keygen`, answering its passphrase prompts."""
    pid, fd = pty.fork()
    if pid == 0:  # child: the prompts need a terminal
        args = ["--sk", str(secret_path), "--pk", str(public_path), "-f"]
        if not passphrase:
            args.append("--nocrypt")
        os.execv(tool("crypt4gh-keygen"), ["crypt4gh-keygen", *args])
    seen = b""
    while True:
        ready, _, _ = select.select([fd], [], [], 30)
        assert ready, f"crypt4gh-keygen hung; output so far: {seen!r}"
        try:
            chunk = os.read(fd, 1024)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
        if seen.rstrip().endswith(b":"):
            os.write(fd, passphrase.encode() + b"\n")
            seen = b""
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, seen


@pytest.fixture
def reference_keys(tmp_path: Path) -> Callable[[str, str], Path]:
    """Factory: key pair NAME written by crypt4gh-keygen with PASSPHRASE ('' = none)."""

    def make(name: str, passphrase: str) -> Path:
        directory = tmp_path / "refkeys"
        directory.mkdir(exist_ok=True)
        run_keygen(directory / f"{name}.sec", directory / f"{name}.pub", passphrase)
        return directory / name

    return make
