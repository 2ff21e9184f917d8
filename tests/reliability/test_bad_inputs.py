"""Every bad input gets one stderr line naming cause and fix, a non-zero exit,
no traceback, and leaves nothing behind (issue 8, deliverable 3).

The CLI runs as a child process against the in-process sandbox; `-q` keeps
progress off stderr, so the error line is the only line there.
"""

import http.server
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from snakemake_ghga import crypt4gh as crypt
from snakemake_ghga.client import GhgaClient
from snakemake_ghga.crypt4gh import keys
from snakemake_ghga.sandbox.state import StateStore
from tests.conftest import make_key_pair

from .harness import MiB, World, file_sha256, random_file

CliResult = subprocess.CompletedProcess[str]


def assert_one_line_error(done: CliResult, *needles: str) -> str:
    """Non-zero exit, no traceback, one stderr line holding every needle."""
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode != 0, done
    assert "Traceback" not in done.stderr, done.stderr
    assert len(lines) == 1, done.stderr
    for needle in needles:
        assert needle.lower() in lines[0].lower(), (needle, lines[0])
    return lines[0]


@pytest.fixture
def work(world: World, tmp_path: Path) -> Path:
    return tmp_path


def upload(
    world: World, *args: str, tmp_dir: Path, token: Path | None = None, **kw: object
) -> CliResult:
    token = token or world.token_file("upload")
    tmp_dir.mkdir(exist_ok=True)
    argv = world.argv("upload", *args, "--tmp-dir", str(tmp_dir), token_file=token)
    return _run_with(world, argv, **kw)


def download(
    world: World, *args: str, out: Path, token: Path | None = None, **kw: object
) -> CliResult:
    token = token or world.token_file("download")
    argv = world.argv("download", *args, "--output-dir", str(out), token_file=token)
    return _run_with(world, argv, **kw)


def _run_with(
    world: World,
    argv: list[str],
    replace: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
    prefix: list[str] | None = None,
) -> CliResult:
    for option, value in (replace or {}).items():
        argv[argv.index(option) + 1] = value
    full_env = world.env()
    full_env.update(env or {})
    return subprocess.run(
        [*(prefix or []), *argv],
        env=full_env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _empty(directory: Path) -> bool:
    """No file is left under ``directory`` (the private state dir may stay)."""
    return not directory.exists() or all(p.is_dir() for p in directory.rglob("*"))


def _live_aliases(world: World) -> set[str]:
    return {
        u.alias
        for u in world.sandbox.uploads()
        if u.state not in ("cancelled", "failed")
    }


# -- input files ----------------------------------------------------------------


def test_missing_input_names_the_path(world: World, work: Path) -> None:
    done = upload(world, str(work / "nope.bin"), tmp_dir=work / "tmp")
    assert_one_line_error(done, "nope.bin", "not found", "fix the paths")
    assert _empty(work / "tmp")


def test_directory_as_input_says_it_is_a_directory(world: World, work: Path) -> None:
    (work / "adir").mkdir()
    done = upload(world, str(work / "adir"), tmp_dir=work / "tmp")
    assert_one_line_error(done, "adir", "directory")
    assert _empty(work / "tmp")


def test_empty_file_is_refused_before_sending(world: World, work: Path) -> None:
    (work / "empty.bin").write_bytes(b"")
    done = upload(world, str(work / "empty.bin"), tmp_dir=work / "tmp")
    assert_one_line_error(done, "empty.bin", "empty")
    assert "empty.bin" not in _live_aliases(world)
    assert _empty(work / "tmp")


@pytest.mark.parametrize("how", ["magic", "suffix"])
def test_already_crypt4gh_is_refused(world: World, work: Path, how: str) -> None:
    name = "x.bin" if how == "magic" else "x.c4gh"
    content = crypt.MAGIC + os.urandom(200) if how == "magic" else b"plain text"
    (work / name).write_bytes(content)
    done = upload(world, str(work / name), tmp_dir=work / "tmp")
    assert_one_line_error(done, name, "crypt4gh")
    assert name not in _live_aliases(world)
    assert _empty(work / "tmp")


# -- keys -------------------------------------------------------------------------


@pytest.fixture
def small_input(work: Path) -> Path:
    return random_file(work / "small.bin", 1000)


def test_unreadable_private_key_as_non_root(world: World, small_input: Path) -> None:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run the CLI as another user")
    shared = Path(tempfile.mkdtemp(prefix="ghga-unreadable-"))
    try:
        shared.chmod(0o755)
        key = shared / "user.sec"
        shutil.copy(world.secret_path, key)
        key.chmod(0o000)
        data = shared / "small.bin"
        shutil.copy(small_input, data)
        data.chmod(0o644)
        token = shared / "token"
        shutil.copy(world.token_file("upload"), token)
        token.chmod(0o644)
        (shared / "tmp").mkdir(mode=0o777)
        (shared / "tmp").chmod(0o777)
        done = upload(
            world,
            str(data),
            tmp_dir=shared / "tmp",
            token=token,
            replace={"--my-private-key": str(key)},
            prefix=["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"],
            env={"HOME": str(shared)},
        )
        assert_one_line_error(done, "user.sec", "cannot read", "chmod")
        assert _empty(shared / "tmp")
    finally:
        shutil.rmtree(shared)


def test_malformed_private_key(world: World, work: Path, small_input: Path) -> None:
    bad = work / "bad.sec"
    bad.write_text("-----BEGIN CRYPT4GH PRIVATE KEY-----\nnot base64!\n")
    done = upload(
        world,
        str(small_input),
        tmp_dir=work / "tmp",
        replace={"--my-private-key": str(bad)},
    )
    assert_one_line_error(done, "bad.sec")
    assert _empty(work / "tmp")


@pytest.fixture
def protected_key(reference_keys: Callable[[str, str], Path]) -> Path:
    return reference_keys("locked", "correct horse battery staple")


def test_wrong_passphrase(world: World, work: Path, protected_key: Path) -> None:
    source = random_file(work / "p.bin", 10)
    done = upload(
        world,
        str(source),
        tmp_dir=work / "tmp",
        replace={
            "--my-private-key": f"{protected_key}.sec",
            "--my-public-key": f"{protected_key}.pub",
        },
        env={"C4GH_PASSPHRASE": "wrong horse"},
    )
    assert_one_line_error(done, "locked.sec", "passphrase")
    assert _empty(work / "tmp")


def test_passphrase_needed_without_tty_or_variable(
    world: World, work: Path, protected_key: Path
) -> None:
    source = random_file(work / "p.bin", 10)
    done = upload(
        world,
        str(source),
        tmp_dir=work / "tmp",
        replace={
            "--my-private-key": f"{protected_key}.sec",
            "--my-public-key": f"{protected_key}.pub",
        },
    )
    assert_one_line_error(done, "passphrase", "C4GH_PASSPHRASE")


def test_key_pair_mismatch(world: World, work: Path, small_input: Path) -> None:
    other = make_key_pair(work / "other", "other")
    done = upload(
        world,
        str(small_input),
        tmp_dir=work / "tmp",
        replace={"--my-public-key": str(other.public_path)},
    )
    assert_one_line_error(done, "other.pub", "match")


# -- tokens and work packages -------------------------------------------------------


def test_malformed_token(world: World, work: Path, small_input: Path) -> None:
    token = work / "token"
    token.write_text("this-is-not-a-token\n")
    done = upload(world, str(small_input), tmp_dir=work / "tmp", token=token)
    assert_one_line_error(done, "token", "Data Portal")


def test_token_sealed_to_another_key(
    world: World, work: Path, small_input: Path
) -> None:
    other = make_key_pair(work / "other", "other")
    token = work / "token"
    token.write_text(world.sandbox.upload_token(other.public) + "\n")
    done = upload(world, str(small_input), tmp_dir=work / "tmp", token=token)
    assert_one_line_error(done, "token", "another key")


@pytest.mark.parametrize("how", ["expired", "revoked"])
def test_work_package_expired_or_revoked(
    world: World, work: Path, small_input: Path, how: str
) -> None:
    token = world.token_file("upload")
    package_id = token.read_text().split(":")[0].strip()
    with StateStore(world.sandbox.state_dir).transaction() as state:
        if how == "expired":
            state["work_packages"][package_id]["expires"] = time.time() - 60
        else:
            del state["work_packages"][package_id]
    done = upload(world, str(small_input), tmp_dir=work / "tmp", token=token)
    assert_one_line_error(done, "work package", "token")
    assert _empty(work / "tmp")


def test_upload_token_used_for_download(world: World, work: Path) -> None:
    done = download(world, out=work / "out", token=world.token_file("upload"))
    assert_one_line_error(done, "upload", "download")
    assert _empty(work / "out")


def test_download_token_used_for_upload(
    world: World, work: Path, small_input: Path
) -> None:
    world.archive(random_file(work / "any.bin", 10))
    done = upload(
        world, str(small_input), tmp_dir=work / "tmp", token=world.token_file("dl")
    )
    assert_one_line_error(done, "not for uploads", "upload token")
    assert _empty(work / "tmp")


def test_unknown_accession(world: World, work: Path) -> None:
    done = download(world, "GHGAF99999999999999", out=work / "out")
    assert_one_line_error(done, "GHGAF99999999999999")
    assert _empty(work / "out")


# -- box rules --------------------------------------------------------------------


def _box_of(world: World, token: Path) -> str:
    package_id = token.read_text().split(":")[0].strip()
    snapshot = StateStore(world.sandbox.state_dir).snapshot()
    return str(snapshot["work_packages"][package_id]["file_upload_box_id"])


@pytest.fixture
def own_box_token(world: World) -> Path:
    path = world.root / f"box-token-{time.monotonic_ns()}"
    path.write_text(world.sandbox.upload_token(world.public_key, new_box=True) + "\n")
    return path


@pytest.mark.parametrize("how", ["locked", "full"])
def test_box_locked_or_full(
    world: World, work: Path, small_input: Path, own_box_token: Path, how: str
) -> None:
    box_id = _box_of(world, own_box_token)
    with StateStore(world.sandbox.state_dir).transaction() as state:
        if how == "locked":
            state["boxes"][box_id]["locked"] = True
        else:
            state["boxes"][box_id]["max_size_bytes"] = 100
    done = upload(world, str(small_input), tmp_dir=work / "tmp", token=own_box_token)
    line = assert_one_line_error(done, "small.bin")
    assert ("lock" if how == "locked" else "full") in line.lower() or (
        "size" in line.lower()
    ), line
    assert _empty(work / "tmp")


def test_too_many_open_uploads_is_waited_out(
    world: World, work: Path, small_input: Path, own_box_token: Path
) -> None:
    client = GhgaClient(
        wkvs_url=world.sandbox.wkvs_url,
        token=own_box_token.read_text().strip(),
        my_secret_key=keys.load_private_key(world.secret_path),
        my_public_key=world.public_key,
    )
    with client:
        size = crypt.encrypted_size(1000)
        blockers = [
            client.api.create_upload(
                f"blocker{i}", 1000, size, 5 * MiB, overwrite=False
            )
            for i in range(5)
        ]
        (work / "tmp").mkdir()
        argv = world.argv(
            "upload",
            str(small_input),
            "--tmp-dir",
            str(work / "tmp"),
            token_file=own_box_token,
        )
        proc = subprocess.Popen(
            argv,
            env=world.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(3)
        assert proc.poll() is None, proc.communicate()  # still waiting, not failed
        client.api.delete_upload(blockers[0].file_id)
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert world.accession_sha256("small.bin") == file_sha256(small_input) or (
        "small.bin" in _live_aliases(world)
    )


# -- batches ------------------------------------------------------------------------


def test_duplicate_alias(world: World, work: Path) -> None:
    a = random_file(work / "a.bin", 10)
    b = random_file(work / "b.bin", 10)
    tsv = work / "list.tsv"
    tsv.write_text(f"{a}\tsame\n{b}\tsame\n")
    done = upload(world, "--tsv", str(tsv), tmp_dir=work / "tmp")
    assert_one_line_error(done, "duplicate", "same")
    assert "same" not in _live_aliases(world)


def test_tsv_header_is_skipped(world: World, work: Path) -> None:
    a = random_file(work / "h.bin", 10)
    tsv = work / "list.tsv"
    tsv.write_text(f"path\talias\n{a}\theader-ok-{time.monotonic_ns()}\n")
    done = upload(world, "--tsv", str(tsv), tmp_dir=work / "tmp")
    assert done.returncode == 0, done.stderr
    assert _empty(work / "tmp")


def test_tsv_missing_file_sends_nothing(world: World, work: Path) -> None:
    a = random_file(work / "m.bin", 10)
    tsv = work / "list.tsv"
    tsv.write_text(f"{a}\tpresent-m\n{work / 'gone.bin'}\tgone-m\n")
    done = upload(world, "--tsv", str(tsv), tmp_dir=work / "tmp")
    assert_one_line_error(done, "gone.bin", "not found")
    assert not {"present-m", "gone-m"} & _live_aliases(world)


def test_tsv_duplicate_path(world: World, work: Path) -> None:
    a = random_file(work / "d.bin", 10)
    tsv = work / "list.tsv"
    tsv.write_text(f"{a}\tdup-a\n{a}\tdup-b\n")
    done = upload(world, "--tsv", str(tsv), tmp_dir=work / "tmp")
    assert_one_line_error(done, "duplicate", "d.bin")
    assert not {"dup-a", "dup-b"} & _live_aliases(world)


# -- services -----------------------------------------------------------------------


def test_wkvs_unreachable(world: World, work: Path, small_input: Path) -> None:
    done = upload(
        world,
        str(small_input),
        tmp_dir=work / "tmp",
        replace={"--wkvs-url": "http://127.0.0.1:9/.well-known"},
    )
    assert_one_line_error(done, "127.0.0.1:9")
    assert _empty(work / "tmp")


class _GarbageHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"wps_api_url": [oops'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def garbage_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _GarbageHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/.well-known"
    server.shutdown()
    server.server_close()


def test_service_answering_garbage_json(
    world: World, work: Path, small_input: Path, garbage_server: str
) -> None:
    done = upload(
        world,
        str(small_input),
        tmp_dir=work / "tmp",
        replace={"--wkvs-url": garbage_server},
    )
    assert_one_line_error(done, "json")
    assert _empty(work / "tmp")


# -- local disk -----------------------------------------------------------------------


@pytest.fixture
def tiny_filesystem(tmp_path: Path) -> Iterator[Path]:
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


def test_disk_full_while_downloading(
    world: World, work: Path, tiny_filesystem: Path
) -> None:
    source = random_file(work / "big.bin", 1_000_000)
    accession = world.archive(source)
    done = download(
        world,
        accession,
        out=tiny_filesystem,
        token=world.token_file("download", [accession]),
    )
    assert_one_line_error(done, "space")
    assert list(tiny_filesystem.iterdir()) == []


def test_disk_full_while_encrypting_for_upload(
    world: World, work: Path, tiny_filesystem: Path
) -> None:
    source = random_file(work / "big-up.bin", 1_000_000)
    done = upload(world, str(source), tmp_dir=tiny_filesystem)
    assert_one_line_error(done, "space")
    assert _empty(tiny_filesystem)
    assert "big-up.bin" not in _live_aliases(world)
