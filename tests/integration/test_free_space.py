"""A directory too small for a file fails at once, before any byte moves.

The small directory is a real 8 MiB tmpfs (we mount it: the tests run as
root; elsewhere they are skipped), so ``statvfs`` and the writes are real.
"""

import os
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
    release_range,
    require_free_space,
)
from snakemake_ghga.files.private import state_dir_path
from snakemake_ghga.sandbox.app import Sandbox
from snakemake_ghga.transfer.part_uploads import PartUploads
from snakemake_ghga.transfer.parts import CIPHER_SEGMENT_SIZE
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


def test_released_range_reads_as_zeros_frees_its_blocks_and_keeps_the_rest(
    tmp_path: Path,
) -> None:
    data = os.urandom(4 * MiB)
    path = tmp_path / "temp.c4gh"
    path.write_bytes(data)
    fd = os.open(path, os.O_RDWR)
    try:
        os.fsync(fd)  # blocks allocated, as an old part of a long upload's are
        before = allocated_bytes(path)
        assert release_range(fd, 1 * MiB + 100, 2 * MiB)
    finally:
        os.close(fd)
    assert before - allocated_bytes(path) >= 2 * MiB - 8192  # whole blocks only
    content = path.read_bytes()
    assert len(content) == len(data)
    assert content[: MiB + 100] == data[: MiB + 100]
    assert content[MiB + 100 : 3 * MiB + 100] == bytes(2 * MiB)
    assert content[3 * MiB + 100 :] == data[3 * MiB + 100 :]


def test_confirmed_upload_parts_leave_the_temp_file_as_they_go(
    sandbox: Sandbox, user_keys: KeyPair, tmp_path: Path
) -> None:
    # parts of 5 MiB; measured after the last one, before the close
    source = random_file(tmp_path / "in", "holes.bin", 20 * MiB)
    tmp_dir = tmp_path / "tmp"
    tmp_dir.mkdir()
    seen: list[int] = []
    original = PartUploads.wait

    def measured_wait(self: PartUploads) -> None:
        original(self)
        temp = next(state_dir_path(tmp_dir).glob("*.c4gh"))
        seen.extend([allocated_bytes(temp), temp.stat().st_size])

    token = sandbox.upload_token(user_keys.public)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(PartUploads, "wait", measured_wait)
        with make_client(sandbox, user_keys, token, tmp_dir=tmp_dir) as client:
            [result] = client.upload([(source, "holes.bin")])
    assert result.status == "uploaded"
    allocated, size = seen
    # only the segments each part shares with its neighbours stay on disk
    assert allocated <= 4 * 2 * CIPHER_SEGMENT_SIZE + 4 * 4096 < size
