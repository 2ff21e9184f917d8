"""A directory too small for a file fails at once, before any byte moves.

The small directory is a real 8 MiB tmpfs (we mount it: the tests run as
root; elsewhere they are skipped), so ``statvfs`` and the writes are real.
"""

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from snakemake_ghga.config import MiB
from snakemake_ghga.errors import LocalFileError
from snakemake_ghga.files.freespace import (
    allocated_bytes,
    free_bytes,
    require_free_space,
)
from snakemake_ghga.files.private import state_dir_path
from snakemake_ghga.sandbox.app import Sandbox
from tests.conftest import KeyPair

from .conftest import make_client, random_file, request_counts, upload_and_archive

SMALL_FS = 8 * MiB


@pytest.fixture
def small_dir(tmp_path: Path) -> Iterator[Path]:
    """An empty tmpfs of 8 MiB, unmounted after the test."""
    mount = tmp_path / "small"
    mount.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SMALL_FS},mode=0700", "tmpfs", mount],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", mount], check=True)


def test_require_free_space_names_directory_needed_and_free(small_dir: Path) -> None:
    require_free_space(small_dir, SMALL_FS, "it", "hint")  # exactly fits
    with pytest.raises(LocalFileError) as caught:
        require_free_space(small_dir, 12 * MiB, "the thing", "Free space there")
    assert str(caught.value) == (
        f"not enough free space in {small_dir}: the thing needs 12.00 MiB, "
        "8.00 MiB free. Free space there"
    )
    (small_dir / "half").write_bytes(b"x" * (4 * MiB))
    assert free_bytes(small_dir) == 4 * MiB
    assert allocated_bytes(small_dir / "half") == 4 * MiB
    with (small_dir / "sparse").open("wb") as sparse:  # as a download's .part
        sparse.truncate(100 * MiB)
    assert allocated_bytes(small_dir / "sparse") == 0
    assert allocated_bytes(small_dir / "missing") == 0


def test_upload_with_too_small_temp_dir_fails_before_the_create(
    sandbox: Sandbox, user_keys: KeyPair, tmp_path: Path, small_dir: Path
) -> None:
    source = random_file(tmp_path / "in", "big.bin", 12 * MiB)
    token = sandbox.upload_token(user_keys.public)
    mark = len(sandbox.request_log())
    with make_client(sandbox, user_keys, token, tmp_dir=small_dir) as client:
        [result] = client.upload([(source, "big.bin")])
    assert result.status == "failed"
    assert result.error is not None
    assert result.error.startswith(
        f"not enough free space in {small_dir}: the encrypted temp file of "
        "'big.bin' needs 12.01 MiB, 8.00 MiB free. "  # ciphertext
    )
    assert "--tmp-dir" in result.error
    counts = request_counts(sandbox, mark)
    assert counts["POST ucs"] == 0 and counts["PUT s3"] == 0  # nothing created
    assert list(state_dir_path(small_dir).iterdir()) == []  # no temp, no journal
    assert sandbox.uploads() == []


def test_download_into_too_small_dir_fails_before_the_first_get(
    sandbox: Sandbox, user_keys: KeyPair, tmp_path: Path, small_dir: Path
) -> None:
    source = random_file(tmp_path / "in", "big.bin", 12 * MiB)
    accession = upload_and_archive(sandbox, user_keys, [source])["big.bin"]
    token = sandbox.download_token(user_keys.public, [accession])
    mark = len(sandbox.request_log())
    with make_client(sandbox, user_keys, token) as client:
        [result] = client.download([accession], small_dir)
    assert result.status == "failed"
    assert result.error is not None
    assert result.error.startswith(
        f"not enough free space in {small_dir}: the download of {accession} "
        "needs 12.00 MiB, 8.00 MiB free. "
    )
    assert "--output-dir" in result.error
    assert request_counts(sandbox, mark)["GET s3"] == 0
    assert list(small_dir.iterdir()) == []  # no .part, no journal
