"""A seeded sandbox and a way to run Snakemake and ghga-transfer against it.

Each test module gets its own sandbox holding two archived files,
GHGAF00000000000001 (sample1.txt) and GHGAF00000000000002 (sample2.csv), and
a user key pair with a download and an upload token.
"""

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from snakemake_ghga.sandbox import Sandbox
from tests.conftest import KeyPair, make_key_pair
from tests.support.tools import BIN, tool

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "workflow_examples"
SEEDS = {
    "GHGAF00000000000001": (
        "sample1.txt",
        b"".join(b"line %d\n" % i for i in range(500)),
    ),
    "GHGAF00000000000002": ("sample2.csv", b"id,value\n" + b"x,1\n" * 20_000),
}


def tool_env(**extra: str) -> dict[str, str]:
    """Environment for a child process: this venv first on PATH, plus extra."""
    path = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    return {**os.environ, "PATH": path, **extra}


@dataclass(frozen=True)
class Ghga:
    """A running sandbox with archived seeds, a user and the user's tokens."""

    sandbox: Sandbox
    keys: KeyPair
    download_token: str
    upload_token: str

    def env(self, **extra: str) -> dict[str, str]:
        """tool_env() plus GHGA_WKVS_URL pointing at the sandbox."""
        return tool_env(GHGA_WKVS_URL=self.sandbox.wkvs_url, **extra)

    def link_keys(self, directory: Path) -> None:
        """Put key.sec and key.pub into directory, as a user's workdir has them."""
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "key.sec").symlink_to(self.keys.secret_path)
        (directory / "key.pub").symlink_to(self.keys.public_path)


@pytest.fixture(scope="module")
def ghga(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ghga]:
    root = tmp_path_factory.mktemp("ghga")
    with Sandbox(root / "state") as sandbox:
        for accession, (name, content) in SEEDS.items():
            (root / name).write_bytes(content)
            assert sandbox.add_file(root / name) == accession
        keys = make_key_pair(root / "keys", "user")
        yield Ghga(
            sandbox,
            keys,
            sandbox.download_token(keys.public),
            sandbox.upload_token(keys.public),
        )


def snakemake(
    snakefile: Path, workdir: Path, env: dict[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    """Run the real snakemake CLI (no conda) on snakefile in workdir."""
    return subprocess.run(
        [tool("snakemake"), "--snakefile", str(snakefile), "--directory", str(workdir),
         "--cores", "4", *args],
        env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip


def seed(accession: str) -> bytes:
    """The plaintext archived as accession."""
    return SEEDS[accession][1]


def _upload_has_receipt() -> bool:
    usage = subprocess.run(
        [tool("ghga-transfer"), "upload", "--help"], capture_output=True, text=True
    )
    return "--receipt" in usage.stdout


RECEIPT_SUPPORTED = _upload_has_receipt()
needs_receipt = pytest.mark.skipif(
    not RECEIPT_SUPPORTED,
    reason="`ghga-transfer upload --receipt FILE` is not implemented yet",
)
