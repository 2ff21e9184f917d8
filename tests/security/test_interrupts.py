"""Ctrl-C and time limits: every wait is bounded and ends at once on stop.

Unit tests show each mechanism (a retry wait woken by ``stop``, ``Retry-After``
capped in parts and in the API, the staging deadline beating ``Retry-After``,
a PUT body that stops mid-part); the CLI tests send SIGINT to a real
``ghga-transfer`` held in each state and time its exit.
"""

import base64
import contextlib
import itertools
import json
import os
import pty
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from nacl.public import PrivateKey, PublicKey, SealedBox

from snakemake_ghga.config import MiB, TransferConfig
from snakemake_ghga.errors import Cancelled
from snakemake_ghga.files.private import state_dir_path
from snakemake_ghga.ghga.api import GhgaApi
from snakemake_ghga.ghga.token import WorkPackageToken
from snakemake_ghga.sandbox.app import Sandbox
from snakemake_ghga.transfer.engine import TransferEngine, UploadPart
from snakemake_ghga.transfer.parts import Part
from tests.conftest import KeyPair
from tests.integration.conftest import (
    cli_args,
    make_client,
    random_file,
    upload_and_archive,
)
from tests.support.busy_wkvs import busy_wkvs as serve_busy_wkvs
from tests.support.signals import default_signals
from tests.support.tools import tool
from tests.unit.test_transfer import FakePool, FakeResponse, Urls

DRIVER = Path(__file__).with_name("interrupt_cli.py")
REPO = Path(__file__).parents[2]
EXIT_BUDGET_S = 2.0

# -- the mechanisms ------------------------------------------------------------


def _in_thread(func: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    """Run ``func`` on a thread; its exception (or None) lands in the list."""
    outcome: list[object] = []

    def run() -> None:
        try:
            func()
        except BaseException as err:
            outcome.append(err)
        else:
            outcome.append(None)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


@pytest.fixture
def part_file(tmp_path: Path) -> Iterator[tuple[int, UploadPart]]:
    path = tmp_path / "part.c4gh"
    path.write_bytes(os.urandom(4 * MiB))
    fd = os.open(path, os.O_RDONLY)
    yield fd, UploadPart(1, 0, 4 * MiB, "0" * 32)
    os.close(fd)


def test_stop_wakes_a_part_waiting_to_retry(
    part_file: tuple[int, UploadPart],
) -> None:
    fd, part = part_file
    busy = FakeResponse(503, headers={"Retry-After": "25"})
    engine = TransferEngine(TransferConfig(max_workers=1), jitter=lambda: 1.0)
    engine.pool = FakePool([busy, busy])  # type: ignore[assignment]
    thread, outcome = _in_thread(
        lambda: engine.put_part(
            "upload of x", fd, part, Urls(), threading.Event(), lambda _: None
        )
    )
    time.sleep(0.3)  # the first attempt got its 503 and waits 25 s
    stopped_at = time.monotonic()
    engine.stop()
    thread.join(5)

    assert not thread.is_alive(), "stop() did not wake the retry wait"
    assert time.monotonic() - stopped_at < 1.0
    assert isinstance(outcome[0], Cancelled)


@pytest.mark.parametrize("retry_after", ["3600", "Fri, 31 Dec 2100 23:59:59 GMT"])
def test_part_retry_after_is_capped_by_backoff_max(
    part_file: tuple[int, UploadPart], retry_after: str
) -> None:
    fd, part = part_file
    sleeps: list[float] = []
    engine = TransferEngine(
        TransferConfig(max_workers=1, max_attempts=3, backoff_max_s=2.0),
        sleep=sleeps.append,
    )
    busy = FakeResponse(503, headers={"Retry-After": retry_after})
    engine.pool = FakePool([busy, busy, busy])  # type: ignore[assignment]

    with pytest.raises(Exception, match="failed after 3 attempt"):
        engine.put_part(
            "upload of x", fd, part, Urls(), threading.Event(), lambda _: None
        )

    assert sleeps == [2.0, 2.0]


class _SlowBodyPool(FakePool):
    """Reads a PUT body one block at a time, slowly, as a slow uplink would."""

    def __init__(self) -> None:
        super().__init__([])
        self.read_bytes = 0

    def urlopen(self, method: str, url: str, body: Any = None, **_: Any) -> Any:
        while chunk := body.read(1 << 20):
            self.read_bytes += len(chunk)
            time.sleep(0.2)
        return FakeResponse(200)


def test_stop_ends_a_put_mid_body(part_file: tuple[int, UploadPart]) -> None:
    fd, part = part_file
    engine = TransferEngine(TransferConfig(max_workers=1))
    pool = _SlowBodyPool()
    engine.pool = pool  # type: ignore[assignment]
    sent: list[int] = []
    thread, outcome = _in_thread(
        lambda: engine.put_part(
            "upload of x", fd, part, Urls(), threading.Event(), sent.append
        )
    )
    time.sleep(0.3)  # two of the four blocks are on their way
    engine.stop()
    thread.join(5)

    assert not thread.is_alive()
    assert isinstance(outcome[0], Cancelled)
    assert pool.read_bytes < part.size, "the whole part was sent after stop()"
    assert sum(sent) == 0  # the progress of the cut PUT is taken back


@pytest.fixture
def silent_peer() -> Iterator[tuple[int, list[socket.socket]]]:
    """A loopback server that takes connections and then goes silent.

    It answers a GET with the headers of a whole 8 MiB range and 1 KiB of
    body, a PUT with nothing; it never reads a body. Yields its port and the
    accepted sockets.
    """
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def serve() -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = listener.accept()
                accepted.append(conn)
                head = conn.recv(65536)
                if head.startswith(b"GET"):
                    size = 8 * MiB
                    conn.sendall(
                        b"HTTP/1.1 206 Partial Content\r\n"
                        + f"Content-Range: bytes 0-{size - 1}/{size}\r\n".encode()
                        + f"Content-Length: {size}\r\n\r\n".encode()
                        + b"x" * 1024
                    )

    threading.Thread(target=serve, daemon=True).start()
    yield listener.getsockname()[1], accepted
    listener.close()
    for conn in accepted:
        conn.close()


class _Url:
    def __init__(self, url: str) -> None:
        self.url = url

    def url_for(self, part: Part) -> str:
        return self.url

    def invalidate(self, url: str) -> None:
        pass


@pytest.mark.parametrize("method", ["PUT", "GET"])
def test_stop_cuts_a_transfer_blocked_on_a_silent_peer(
    tmp_path: Path, silent_peer: tuple[int, list[socket.socket]], method: str
) -> None:
    """A send or read blocked on a peer that stopped reading or sending ends at once,
    not at the socket timeout (30 s here; 10 s to send and 60 s to read by default)."""
    port, accepted = silent_peer
    size = 32 * MiB  # more than loopback's socket buffers: the send blocks
    path = tmp_path / "part.c4gh"
    path.write_bytes(os.urandom(size))
    fd = os.open(path, os.O_RDONLY)
    config = TransferConfig(max_workers=1, connect_timeout_s=30, read_timeout_s=30)
    engine = TransferEngine(config)
    urls = _Url(f"http://127.0.0.1:{port}/bucket/key")
    if method == "PUT":
        part = UploadPart(1, 0, size, "0" * 32)
        thread, outcome = _in_thread(
            lambda: engine.put_part(
                "upload of x", fd, part, urls, threading.Event(), lambda _: None
            )
        )
    else:
        sink = _NullSink()
        thread, outcome = _in_thread(
            lambda: engine.get_part(
                "download of x",
                Part(1, 0, 8 * MiB),
                urls,
                sink,
                threading.Event(),
                lambda _: None,
                8 * MiB,
            )
        )
    try:
        time.sleep(1.0)  # connected, and blocked sending or reading
        assert accepted and thread.is_alive()
        stopped_at = time.monotonic()
        engine.stop()
        thread.join(5)
        took = time.monotonic() - stopped_at
    finally:
        os.close(fd)
        engine.close(wait=False)

    assert not thread.is_alive(), f"the {method} stayed blocked after stop()"
    assert took < 1.0, took
    assert isinstance(outcome[0], Cancelled), outcome


class _NullSink:
    def write(self, cipher_offset: int, data: memoryview) -> None:
        pass


def _token(user: PrivateKey) -> WorkPackageToken:
    sealed = SealedBox(PublicKey(bytes(user.public_key))).encrypt(b"t" * 24)
    return WorkPackageToken(
        "11111111-2222-4333-8444-555555555555", base64.b64encode(sealed).decode()
    )


@pytest.fixture
def busy_wkvs(request: pytest.FixtureRequest) -> Iterator[tuple[str, list[float]]]:
    """A loopback WKVS answering 503 + ``Retry-After: 3600`` ``request.param`` times."""
    with serve_busy_wkvs("3600", request.param) as served:
        yield served


@pytest.mark.parametrize("busy_wkvs", [2], indirect=True)
def test_api_retry_after_is_capped_by_backoff_max(
    busy_wkvs: tuple[str, list[float]],
) -> None:
    url, arrivals = busy_wkvs
    api = GhgaApi(url, _token(PrivateKey.generate()), b"k" * 32, "k", backoff_max_s=0.5)
    thread, outcome = _in_thread(api.well_known)
    thread.join(10)
    api.close()

    assert not thread.is_alive(), "the API waited out Retry-After: 3600"
    assert outcome == [None]
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    assert len(gaps) == 2 and all(0.4 <= gap < 1.5 for gap in gaps), gaps


@pytest.mark.parametrize("busy_wkvs", [100], indirect=True)
def test_stop_wakes_an_api_request_waiting_to_retry(
    busy_wkvs: tuple[str, list[float]],
) -> None:
    url, arrivals = busy_wkvs
    api = GhgaApi(url, _token(PrivateKey.generate()), b"k" * 32, "k", backoff_max_s=30)
    thread, outcome = _in_thread(api.well_known)
    time.sleep(0.5)  # the first 503 came back; the API waits 30 s
    stopped_at = time.monotonic()
    api.stop()
    thread.join(5)
    api.close()

    assert not thread.is_alive(), "stop() did not wake the API's retry wait"
    assert time.monotonic() - stopped_at < 1.0
    assert isinstance(outcome[0], Cancelled)
    assert len(arrivals) == 1


def test_staging_deadline_beats_retry_after(user_keys: KeyPair, tmp_path: Path) -> None:
    with Sandbox(tmp_path / "sandbox", stage_delay_s=600) as sandbox:
        source = random_file(tmp_path / "in", "s.bin", 1000)
        accession = upload_and_archive(sandbox, user_keys, [source])["s.bin"]
        token = sandbox.download_token(user_keys.public, [accession])
        started = time.monotonic()
        with make_client(sandbox, user_keys, token, staging_timeout_s=1.0) as client:
            results = client.download([accession], tmp_path / "out")
        took = time.monotonic() - started

    assert [r.status for r in results] == ["failed"]
    assert "still being staged after 1 s" in (results[0].error or "")
    assert took < 5.0, f"waited {took:.1f} s: the server's Retry-After (600 s) won"


# -- the CLI, interrupted in each state ------------------------------------------

TIMES_ENV = "RELIABILITY_EXIT_TIMES"  # a JSON file the reliability figures read


def _record(state: str, took: float) -> None:
    """Add the exit time to the file named by $RELIABILITY_EXIT_TIMES, if set."""
    path = os.environ.get(TIMES_ENV)
    if path:
        times = json.loads(Path(path).read_text()) if Path(path).exists() else {}
        times[state] = round(took, 3)
        Path(path).write_text(json.dumps(times, indent=1))


def _interrupt_cli(
    state: str, argv: list[str], tmp_path: Path, ready: Callable[[], bool] | None
) -> tuple[int, float, str]:
    """Start the CLI in ``state``; SIGINT once it is there; (exit, seconds, stderr)."""
    marker = tmp_path / f"{state}.marker"
    err_path = tmp_path / f"{state}.err"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with err_path.open("w") as err:
        process = subprocess.Popen(
            [sys.executable, str(DRIVER), state, str(marker), *argv],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            preexec_fn=default_signals,
        )
        deadline = time.monotonic() + 120
        try:
            while not (ready() if ready else marker.exists()):
                assert process.poll() is None, err_path.read_text()
                assert time.monotonic() < deadline, f"never reached state {state}"
                time.sleep(0.02)
            time.sleep(0.3)  # well inside the state
            sent = time.monotonic()
            process.send_signal(signal.SIGINT)
            code = process.wait(timeout=60)
            took = time.monotonic() - sent
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    return code, took, err_path.read_text()


def _check_interrupted(code: int, took: float, stderr: str, state: str) -> None:
    _record(state, took)
    assert code == 130, stderr
    assert "rerun the same command to resume" in stderr
    assert "Traceback" not in stderr, stderr
    assert took <= EXIT_BUDGET_S, f"{state}: exited {took:.2f} s after Ctrl-C"


def _upload_argv(
    sandbox: Sandbox, keys: KeyPair, tmp_path: Path, size: int, part_mib: int
) -> list[str]:
    token = tmp_path / "token"
    token.write_text(sandbox.upload_token(keys.public))
    source = random_file(tmp_path / "in", "big.bin", size)
    (tmp_path / "tmp").mkdir()
    args = cli_args(sandbox, keys, token)
    args[args.index("--part-size") + 1] = str(part_mib)
    return ["upload", *args, "--max-workers", "2", "--tmp-dir", str(tmp_path / "tmp"),
            str(source)]  # fmt: skip


@pytest.mark.parametrize(
    ("state", "size", "part_mib"),
    [("retry", 6 * MiB, 5), ("put", 40 * MiB, 16), ("encrypt", 80 * MiB, 64)],
)
def test_ctrl_c_during_an_upload_exits_within_budget(
    user_keys: KeyPair, tmp_path: Path, state: str, size: int, part_mib: int
) -> None:
    with Sandbox(tmp_path / "sandbox") as sandbox:
        argv = _upload_argv(sandbox, user_keys, tmp_path, size, part_mib)
        code, took, stderr = _interrupt_cli(state, argv, tmp_path, None)
        kept = state_dir_path(tmp_path / "tmp").glob("*.journal")
        assert list(kept), "no resume state kept"

    _check_interrupted(code, took, stderr, state)


@pytest.mark.parametrize("state", ["get", "staging"])
def test_ctrl_c_during_a_download_exits_within_budget(
    user_keys: KeyPair, tmp_path: Path, state: str
) -> None:
    stage_delay_s = 600 if state == "staging" else 0
    with Sandbox(tmp_path / "sandbox", stage_delay_s=stage_delay_s) as sandbox:
        source = random_file(tmp_path / "in", "d.bin", 24 * MiB)
        accession = upload_and_archive(sandbox, user_keys, [source])["d.bin"]
        token = tmp_path / "token"
        token.write_text(sandbox.download_token(user_keys.public, [accession]))
        argv = ["download", accession, *cli_args(sandbox, user_keys, token),
                "--output-dir", str(tmp_path / "out")]  # fmt: skip
        mark = len(sandbox.request_log())

        def staging() -> bool:
            return any(e["status"] == 202 for e in sandbox.request_log()[mark:])

        ready = staging if state == "staging" else None
        code, took, stderr = _interrupt_cli(
            "none" if ready else state, argv, tmp_path, ready
        )

    _check_interrupted(code, took, stderr, state)


def test_ctrl_c_at_the_passphrase_prompt_exits_within_budget(
    reference_keys: Callable[[str, str], Path], tmp_path: Path
) -> None:
    """Key loading waits for the passphrase on the terminal: Ctrl-C ends it."""
    base = reference_keys("user", "correct horse")
    argv = [tool("ghga-transfer"), "ls", "--wkvs-url", "http://127.0.0.1:9/x",
            "--my-private-key", f"{base}.sec", "--my-public-key", f"{base}.pub"]  # fmt: skip
    pid, fd = pty.fork()
    if pid == 0:
        default_signals()
        os.execv(argv[0], argv)
    seen = b""
    try:
        while b"Passphrase for" not in seen:
            ready, _, _ = select.select([fd], [], [], 60)
            assert ready, seen
            seen += os.read(fd, 4096)
        time.sleep(0.3)
        sent = time.monotonic()
        os.kill(pid, signal.SIGINT)
        _, status = os.waitpid(pid, 0)
        took = time.monotonic() - sent
        try:
            while select.select([fd], [], [], 0.5)[0]:
                seen += os.read(fd, 4096)
        except OSError:
            pass
    finally:
        os.close(fd)

    _check_interrupted(
        os.waitstatus_to_exitcode(status), took, seen.decode(), "passphrase prompt"
    )
