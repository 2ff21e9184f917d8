"""Our ciphertext against the reference crypt4gh CLI, both ways, with its own keys."""

import os
import subprocess
from pathlib import Path

import pytest

from tests.support.tools import tool

pytestmark = pytest.mark.interop


def ghga(
    *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("ghga-transfer"), *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


def reference(*args: str, stdin: Path, stdout: Path, env: dict[str, str]) -> None:
    with open(stdin, "rb") as source, open(stdout, "wb") as sink:
        subprocess.run(
            [tool("crypt4gh"), *args], stdin=source, stdout=sink, env=env, check=True
        )


@pytest.mark.parametrize("passphrase", ["", "s3cret passphrase"])
@pytest.mark.parametrize("size", [1, 65_536, 65_537, 3 * 2**20 + 5])
def test_ours_then_reference_and_back(
    tmp_path, reference_keys, passphrase, size
) -> None:  # type: ignore[no-untyped-def]
    user, hub = reference_keys("user", passphrase), reference_keys("hub", passphrase)
    env = (
        {**os.environ, "C4GH_PASSPHRASE": passphrase}
        if passphrase
        else dict(os.environ)
    )
    plain = os.urandom(size)
    (tmp_path / "data.bin").write_bytes(plain)

    done = ghga(
        "encrypt",
        "--recipient-public-key",
        f"{hub}.pub",
        "--my-private-key",
        f"{user}.sec",
        str(tmp_path / "data.bin"),
        env=env,
    )
    assert done.returncode == 0, done.stderr
    reference(
        "decrypt",
        "--sk",
        f"{hub}.sec",
        "--sender_pk",
        f"{user}.pub",
        stdin=tmp_path / "data.bin.c4gh",
        stdout=tmp_path / "ref.out",
        env=env,
    )
    assert (tmp_path / "ref.out").read_bytes() == plain

    reference(
        "encrypt",
        "--sk",
        f"{hub}.sec",
        "--recipient_pk",
        f"{user}.pub",
        stdin=tmp_path / "data.bin",
        stdout=tmp_path / "back",
        env=env,
    )
    (tmp_path / "back").rename(tmp_path / "back.c4gh")
    done = ghga(
        "decrypt",
        "--my-private-key",
        f"{user}.sec",
        "--output-dir",
        str(tmp_path / "out"),
        str(tmp_path / "back.c4gh"),
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "back").read_bytes() == plain
