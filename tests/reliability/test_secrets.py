"""Secrets never leak (issue 8, item 4): a recognisable passphrase and work
package token are planted, upload and download run at DEBUG, and everything
they produce is searched for them: stdout, stderr, log records, exception
text, reprs, and the argv of the CLI and every process it spawns.
"""

import base64
import contextlib
import logging
import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from snakemake_ghga.client import GhgaClient
from snakemake_ghga.config import TransferConfig
from snakemake_ghga.crypt4gh import keys
from snakemake_ghga.errors import GhgaError
from snakemake_ghga.files.private import state_dir_path
from snakemake_ghga.ghga.token import open_sealed_box, parse_token
from tests.support.tools import run_keygen

from .harness import MiB, World, file_sha256, random_file

PASSPHRASE = "CANARY-passphrase-5f1e9c"
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")


@pytest.fixture(scope="module")
def locked_keys(
    world: World, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path, bytes]:
    directory = tmp_path_factory.mktemp("locked")
    run_keygen(directory / "k.sec", directory / "k.pub", PASSPHRASE)
    secret = keys.load_private_key(directory / "k.sec", PASSPHRASE)
    return directory / "k.sec", directory / "k.pub", secret


def _secrets(token: str, secret_key: bytes) -> dict[str, str]:
    parsed = parse_token(token)
    access = open_sealed_box(parsed.sealed_token, secret_key, "token")
    return {
        "passphrase": PASSPHRASE,
        "sealed token": parsed.sealed_token,
        "sealed token prefix": parsed.sealed_token[:24],
        "access token": access,
        "secret key (b64)": base64.b64encode(secret_key).decode(),
        "secret key (hex)": secret_key.hex(),
    }


def _leaks(text: str, secrets: dict[str, str]) -> list[str]:
    found = [name for name, value in secrets.items() if value and value in text]
    if JWT.search(text):
        found.append("a work-order token (JWT)")
    if "signature=" in text:
        found.append("a presigned URL signature")
    return found


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            with contextlib.suppress(OSError, ValueError):
                todo += [int(c) for c in (task / "children").read_text().split()]
    return found


def _run_watching_argv(
    argv: list[str], env: dict[str, str]
) -> tuple[int, str, str, str]:
    """Run argv; meanwhile collect /proc/*/cmdline of it and its children."""
    proc = subprocess.Popen(
        argv,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    seen: set[str] = set()
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            for pid in _descendants(proc.pid):
                try:
                    raw = Path(f"/proc/{pid}/cmdline").read_bytes()
                except OSError:
                    continue
                seen.add(raw.replace(b"\0", b" ").decode(errors="replace"))
            time.sleep(0.01)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    out, err = proc.communicate(timeout=300)
    stop.set()
    watcher.join()
    assert seen, "no process argv was sampled"
    return proc.returncode, out, err, "\n".join(seen)


def test_cli_upload_and_download_at_debug_leak_nothing(
    world: World, tmp_path: Path, locked_keys: tuple[Path, Path, bytes]
) -> None:
    secret_path, public_path, secret = locked_keys
    source = random_file(tmp_path / "s.bin", 12 * MiB + 5)
    up_token = world.sandbox.upload_token(keys.load_public_key(public_path))
    env = world.env() | {"C4GH_PASSPHRASE": PASSPHRASE}
    common = [
        "--wkvs-url",
        world.sandbox.wkvs_url,
        "--my-private-key",
        str(secret_path),
        "--my-public-key",
        str(public_path),
        "--part-size",
        "5",
    ]
    tmp_dir = tmp_path / "tmp"
    tmp_dir.mkdir()
    argv = [
        world.argv("upload", token_file=tmp_path)[0],
        "-v",
        "upload",
        str(source),
        "--tmp-dir",
        str(tmp_dir),
        *common,
    ]
    code, out, err, cmdlines = _run_watching_argv(
        argv, env | {"GHGA_WORK_PACKAGE_TOKEN": up_token}
    )
    assert code == 0, err
    secrets = _secrets(up_token, secret)
    assert _leaks(out + err + cmdlines, secrets) == []
    assert list(state_dir_path(tmp_dir).iterdir()) == []  # temp, journal gone
    assert world.accession_sha256("s.bin") == file_sha256(source)

    accession = world.sandbox.wait_interrogated("s.bin").accession
    assert accession
    down_token = world.sandbox.download_token(
        keys.load_public_key(public_path), [accession]
    )
    argv = [
        argv[0],
        "-v",
        "download",
        accession,
        "--output-dir",
        str(tmp_path / "out"),
        *common,
    ]
    code, out, err, cmdlines = _run_watching_argv(
        argv, env | {"GHGA_WORK_PACKAGE_TOKEN": down_token}
    )
    assert code == 0, err
    assert _leaks(out + err + cmdlines, _secrets(down_token, secret)) == []
    [output] = (tmp_path / "out").iterdir()
    assert file_sha256(output) == file_sha256(source)
    assert output.stat().st_mode & 0o777 == 0o644  # umask applies at the end only


@pytest.fixture(scope="module")
def faulty_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """Faults make the engine log its retries at DEBUG, so there is text to search."""
    running = World.start(tmp_path_factory.mktemp("faulty"), fault_rate=0.3, seed=3)
    yield running
    running.stop()


def test_library_logs_reprs_and_errors_leak_nothing(
    faulty_world: World, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    world = faulty_world
    secret = keys.load_private_key(world.secret_path)
    token = world.sandbox.upload_token(world.public_key)
    secrets = _secrets(token, secret)
    source = random_file(tmp_path / "lib.bin", 6 * MiB)
    caplog.set_level(logging.DEBUG)
    client = GhgaClient(
        wkvs_url=world.sandbox.wkvs_url,
        token=token,
        my_secret_key=secret,
        my_public_key=world.public_key,
        config=TransferConfig(part_size_bytes=5 * MiB, tmp_dir=tmp_path),
    )
    with client:
        [result] = client.upload([(source, "lib.bin")])
        texts = [repr(client), repr(client.api), repr(result), str(vars(client))]
    assert result.status == "uploaded", result
    ours = [r for r in caplog.records if r.name.startswith("snakemake_ghga")]
    texts += [f"{r.getMessage()} {r.args!r}" for r in ours]
    assert ours, "the library logged nothing; the test would prove nothing"
    leaked = {
        name: [t[:300] for t in texts if name in _leaks(t, secrets)]
        for name in _leaks("\n".join(texts), secrets)
    }
    assert leaked == {}


def test_third_party_debug_logs_carry_no_presigned_signatures(
    world: World, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A host (Snakemake with --verbose, a user's basicConfig) may turn on DEBUG
    for every logger; urllib3 then logs each request line with its query."""
    secret = keys.load_private_key(world.secret_path)
    source = random_file(tmp_path / "tp.bin", 6 * MiB)
    caplog.set_level(logging.DEBUG)
    client = GhgaClient(
        wkvs_url=world.sandbox.wkvs_url,
        token=world.sandbox.upload_token(world.public_key),
        my_secret_key=secret,
        my_public_key=world.public_key,
        config=TransferConfig(part_size_bytes=5 * MiB, tmp_dir=tmp_path),
    )
    with client:
        [result] = client.upload([(source, "tp.bin")])
    assert result.status == "uploaded"
    signed = [r.getMessage() for r in caplog.records if "signature=" in r.getMessage()]
    assert signed == [], f"{len(signed)} log records carry a URL signature"


@pytest.mark.parametrize(
    "break_it",
    [
        lambda t: t[:-4] + "AAAA",  # damaged sealed box
        lambda t: t + "x",  # wrong length
    ],
    ids=["damaged", "wrong-length"],
)
def test_errors_about_tokens_do_not_echo_them(
    world: World, break_it: Callable[[str], str]
) -> None:
    token = break_it(world.sandbox.upload_token(world.public_key))
    secret = keys.load_private_key(world.secret_path)
    sealed = token.split(":")[1]
    client = GhgaClient(
        wkvs_url=world.sandbox.wkvs_url,
        token=token,
        my_secret_key=secret,
        my_public_key=world.public_key,
    )
    with client, pytest.raises(GhgaError) as caught:
        client.list_uploads()
    text = f"{caught.value}\n{caught.value!r}\n{caught.value.__cause__!r}"
    assert sealed[:24] not in text
    assert secret.hex() not in text
