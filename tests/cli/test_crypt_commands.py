"""`ghga-transfer encrypt/decrypt` as users run them: lines, exit codes, errors."""

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.conftest import make_key_pair
from tests.support.tools import tool


def ghga(
    *args: str,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    prefix: tuple[str, ...] = (),
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, tool("ghga-transfer"), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        check=False,
    )


def assert_one_line_error(
    done: subprocess.CompletedProcess[str], *fragments: str
) -> None:
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    errors = [
        line
        for line in done.stderr.splitlines()
        if line.startswith(("error:", "FAILED"))
    ]
    assert len(errors) == 1, done.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


def test_encrypt_each_file_and_refuse_encrypted_ones(
    tmp_path, user_keys, hub_keys
) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "a.txt").write_bytes(b"alpha" * 1000)
    (tmp_path / "b.bin").write_bytes(b"crypt4gh\x01\x00\x00\x00already")
    done = ghga(
        "encrypt",
        "--recipient-public-key",
        str(hub_keys.public_path),
        "--my-private-key",
        str(user_keys.secret_path),
        "--output-dir",
        str(tmp_path / "enc"),
        str(tmp_path / "a.txt"),
        str(tmp_path / "b.bin"),
    )
    assert done.returncode == 1
    assert "encrypted" in done.stdout and "a.txt.c4gh" in done.stdout
    assert_one_line_error(done, "b.bin", "already Crypt4GH")
    assert (tmp_path / "enc" / "a.txt.c4gh").exists()
    assert not (tmp_path / "enc" / "b.bin.c4gh").exists()
    assert "encrypted 1 of 2 file(s); 1 failed" in done.stderr


def test_existing_output_needs_overwrite(tmp_path, user_keys, hub_keys) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "a.txt").write_bytes(b"x" * 10)
    (tmp_path / "a.txt.c4gh").write_bytes(b"keep me")
    args = [
        "encrypt",
        "--recipient-public-key",
        str(hub_keys.public_path),
        "--my-private-key",
        str(user_keys.secret_path),
        str(tmp_path / "a.txt"),
    ]
    assert_one_line_error(ghga(*args), "already exists", "--overwrite")
    assert (tmp_path / "a.txt.c4gh").read_bytes() == b"keep me"
    assert ghga(*args, "--overwrite").returncode == 0
    assert (tmp_path / "a.txt.c4gh").stat().st_size == 10 + 28 + 124


def test_default_keys_from_working_directory(tmp_path, hub_keys) -> None:  # type: ignore[no-untyped-def]
    make_key_pair(tmp_path, "key")
    (tmp_path / "a.txt").write_bytes(b"x" * 10)
    done = ghga(
        "encrypt",
        "--recipient-public-key",
        str(hub_keys.public_path),
        "a.txt",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    done = ghga(
        "decrypt",
        "--my-private-key",
        str(hub_keys.secret_path),
        "--output-dir",
        "o",
        "a.txt.c4gh",
        cwd=tmp_path,
    )
    assert done.returncode == 0 and (tmp_path / "o" / "a.txt").read_bytes() == b"x" * 10


def test_decrypt_corrupted_file_fails_and_leaves_nothing(
    tmp_path, user_keys, hub_keys
) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "a.txt").write_bytes(os.urandom(200_000))
    ghga(
        "encrypt",
        "--recipient-public-key",
        str(hub_keys.public_path),
        "--my-private-key",
        str(user_keys.secret_path),
        str(tmp_path / "a.txt"),
    )
    data = bytearray((tmp_path / "a.txt.c4gh").read_bytes())
    data[-100] ^= 1
    (tmp_path / "a.txt.c4gh").write_bytes(bytes(data))
    out = tmp_path / "out"
    done = ghga(
        "decrypt",
        "--my-private-key",
        str(hub_keys.secret_path),
        "--output-dir",
        str(out),
        str(tmp_path / "a.txt.c4gh"),
    )
    assert_one_line_error(done, "a.txt.c4gh", "segment 3", "MAC")
    assert list(out.iterdir()) == []


def test_missing_key_is_a_one_line_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "a.c4gh").write_bytes(b"x")
    done = ghga(
        "decrypt",
        "--my-private-key",
        str(tmp_path / "nope.sec"),
        str(tmp_path / "a.c4gh"),
    )
    assert_one_line_error(done, "private key not found", "nope.sec")


def test_passphrase_key_without_tty_names_variable(tmp_path, reference_keys) -> None:  # type: ignore[no-untyped-def]
    stem = reference_keys("locked", "pw")
    (tmp_path / "a.c4gh").write_bytes(b"x")
    done = ghga("decrypt", "--my-private-key", f"{stem}.sec", str(tmp_path / "a.c4gh"))
    assert_one_line_error(done, "C4GH_PASSPHRASE")


def test_unreadable_private_key_explains_owner_mode_and_fix(user_keys) -> None:  # type: ignore[no-untyped-def]
    """CI runs as root, so the reader is `nobody` (setpriv) and the key root's 0400."""
    shared = Path(tempfile.mkdtemp(prefix="ghga-perm-"))
    try:
        shared.chmod(0o755)
        key = shared / "key.sec"
        shutil.copy(user_keys.secret_path, key)
        key.chmod(0o400 if os.geteuid() == 0 else 0o000)
        (shared / "a.c4gh").write_bytes(b"x")
        (shared / "a.c4gh").chmod(0o644)
        prefix: tuple[str, ...] = ()
        reader = pwd.getpwuid(os.geteuid()).pw_name
        if os.geteuid() == 0:
            prefix = ("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups")
            reader = "nobody"
        done = ghga(
            "decrypt",
            "--my-private-key",
            str(key),
            str(shared / "a.c4gh"),
            prefix=prefix,
            env={**os.environ, "HOME": str(shared)},
        )
        owner = pwd.getpwuid(key.stat().st_uid).pw_name
        mode = f"{key.stat().st_mode & 0o777:04o}"
        assert_one_line_error(
            done,
            str(key),
            f"owned by {owner}",
            f"mode {mode}",
            f"runs as {reader}",
            "chmod u+r",
        )
    finally:
        shutil.rmtree(shared)


@pytest.fixture
def tiny_filesystem(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A 256 KiB tmpfs (needs root, as in CI)."""
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount_point)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    yield mount_point
    subprocess.run(["umount", str(mount_point)], check=True)


def test_disk_full_is_one_line_and_leaves_nothing(
    tmp_path, user_keys, hub_keys, tiny_filesystem
) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "big.bin").write_bytes(os.urandom(1_000_000))
    keys = ["--my-private-key", str(user_keys.secret_path)]
    done = ghga(
        "encrypt",
        "--recipient-public-key",
        str(hub_keys.public_path),
        *keys,
        "--output-dir",
        str(tiny_filesystem),
        str(tmp_path / "big.bin"),
    )
    assert_one_line_error(done, "No space left on device")
    assert list(tiny_filesystem.iterdir()) == []
    ghga(
        "encrypt",
        "--recipient-public-key",
        str(hub_keys.public_path),
        *keys,
        str(tmp_path / "big.bin"),
    )
    done = ghga(
        "decrypt",
        "--my-private-key",
        str(hub_keys.secret_path),
        "--output-dir",
        str(tiny_filesystem),
        str(tmp_path / "big.bin.c4gh"),
    )
    assert_one_line_error(done, "No space left on device")
    assert list(tiny_filesystem.iterdir()) == []


def test_max_workers_is_used_and_checked(tmp_path, user_keys, hub_keys) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "a.bin").write_bytes(os.urandom(3_000_000))
    base = [
        "--recipient-public-key",
        str(hub_keys.public_path),
        "--my-private-key",
        str(user_keys.secret_path),
    ]
    done = ghga("encrypt", *base, "--max-workers", "0", str(tmp_path / "a.bin"))
    assert done.returncode == 2 and "--max-workers must be at least 1" in done.stderr
    assert (
        ghga("encrypt", *base, "--max-workers", "4", str(tmp_path / "a.bin")).returncode
        == 0
    )
    done = ghga(
        "decrypt",
        "--my-private-key",
        str(hub_keys.secret_path),
        "--max-workers",
        "3",
        "--output-dir",
        str(tmp_path / "o"),
        str(tmp_path / "a.bin.c4gh"),
    )
    assert done.returncode == 0
    assert (tmp_path / "o" / "a.bin").read_bytes() == (tmp_path / "a.bin").read_bytes()
