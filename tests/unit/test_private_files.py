"""private_files: the private state dir and opens that never follow links."""

import os
import stat
from pathlib import Path

import pytest

from snakemake_ghga.errors import LocalFileError
from snakemake_ghga.files.private import (
    create_private,
    open_own,
    open_private,
    state_dir,
    state_dir_path,
)

OTHER_UID = 65534


def test_state_dir_is_created_private_and_reused(tmp_path: Path) -> None:
    made = state_dir(tmp_path)
    assert made == state_dir_path(tmp_path) == tmp_path / f"ghga-transfer-{os.getuid()}"
    assert stat.S_IMODE(made.lstat().st_mode) == 0o700
    made.chmod(0o755)
    assert state_dir(tmp_path) == made
    assert stat.S_IMODE(made.lstat().st_mode) == 0o700


@pytest.mark.parametrize("planted", ["foreign-dir", "symlink", "file"])
def test_state_dir_not_ours_is_refused(tmp_path: Path, planted: str) -> None:
    name = state_dir_path(tmp_path)
    if planted == "foreign-dir":
        name.mkdir()
        os.chown(name, OTHER_UID, OTHER_UID)
    elif planted == "symlink":
        (tmp_path / "elsewhere").mkdir(mode=0o700)
        name.symlink_to(tmp_path / "elsewhere")
    else:
        name.write_text("")
    with pytest.raises(LocalFileError, match="not a private directory of yours"):
        state_dir(tmp_path)


def test_create_private_makes_a_new_0600_file_and_never_reuses_a_name(
    tmp_path: Path,
) -> None:
    fd = create_private(tmp_path / "new")
    os.close(fd)
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o600
    with pytest.raises(FileExistsError):
        create_private(tmp_path / "new")
    (tmp_path / "dangling").symlink_to(tmp_path / "target")
    with pytest.raises(FileExistsError):
        create_private(tmp_path / "dangling")
    assert not (tmp_path / "target").exists()


def _other_owner(path: Path) -> None:
    path.write_text("theirs")
    os.chown(path, OTHER_UID, OTHER_UID)


def _hard_link(path: Path) -> None:
    (path.parent / "original").write_text("ours elsewhere")
    os.link(path.parent / "original", path)


def _fifo(path: Path) -> None:
    os.mkfifo(path, 0o600)


def _symlink(path: Path) -> None:
    (path.parent / "target").write_text("ours elsewhere")
    path.symlink_to(path.parent / "target")


@pytest.mark.parametrize(
    "plant", [_symlink, _other_owner, _hard_link, _fifo], ids=lambda f: f.__name__
)
def test_open_own_refuses_what_is_not_a_plain_file_of_ours(
    tmp_path: Path, plant: object
) -> None:
    path = tmp_path / "f"
    plant(path)  # type: ignore[operator]
    with pytest.raises(LocalFileError, match="not a file of yours"):
        open_own(path)
    with pytest.raises(LocalFileError):
        open_private(path)


def test_open_own_reopens_our_file_without_truncating(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"kept")
    fd = open_own(path)
    try:
        assert os.pread(fd, 10, 0) == b"kept"
    finally:
        os.close(fd)
    with pytest.raises(FileNotFoundError):
        open_own(tmp_path / "missing")
    with pytest.raises(AssertionError):
        open_own(path, os.O_RDWR | os.O_TRUNC)
