"""Check the WAN model's bandwidth side against a real shaper: `tbf` on a veth.

Usage (as root): python benchmarks/check_wan_model.py [--mib 64]

The kernel here has no `netem`, so only rates can be compared. A veth pair
joins this namespace to a new one (`ghgawan<pid>`, 10.231.0.0/30); `tbf`
shapes what this side sends. The same amounts then go over the model: ranged
GETs from a sandbox on 127.0.0.1 with `--connection-mbps` / `--total-mbps`.
Pairs compared: one stream through `tbf rate 100mbit` vs one connection at
`--connection-mbps 100`; eight streams through `tbf rate 400mbit` vs eight
connections sharing `--total-mbps 400`. The namespace is removed at the end,
also on failure; nothing leaves this machine.
"""

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from snakemake_ghga.sandbox import Sandbox  # noqa: E402
from snakemake_ghga.sandbox.objects import FileObjectStore  # noqa: E402

MiB = 1024 * 1024
HOST, PEER, PORT = "10.231.0.1", "10.231.0.2", 47311
# The receiver in the namespace: accept N streams, read each to EOF, answer "k".
_RECEIVER = f"""
import socket, sys, threading
server = socket.create_server(("{PEER}", {PORT}))
print("ready", flush=True)
def drain(conn):
    while conn.recv(1 << 20):
        pass
    conn.sendall(b"k")
    conn.close()
for _ in range(int(sys.argv[1])):
    threading.Thread(target=drain, args=(server.accept()[0],)).start()
"""


def _sh(*cmd: str) -> None:
    subprocess.run(cmd, check=True, timeout=30)


@contextmanager
def _shaped_namespace(rate_mbit: int) -> Iterator[str]:
    name, veth = f"ghgawan{os.getpid()}", f"gw{os.getpid() % 100000}"
    _sh("ip", "netns", "add", name)
    try:
        _sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "p" + veth)
        _sh("ip", "link", "set", "p" + veth, "netns", name)
        _sh("ip", "addr", "add", f"{HOST}/30", "dev", veth)
        _sh("ip", "link", "set", veth, "up")
        run_in = ("ip", "netns", "exec", name)
        _sh(*run_in, "ip", "addr", "add", f"{PEER}/30", "dev", "p" + veth)
        _sh(*run_in, "ip", "link", "set", "p" + veth, "up")
        _sh(*run_in, "ip", "link", "set", "lo", "up")
        _sh(
            "tc", "qdisc", "add", "dev", veth, "root", "tbf",
            "rate", f"{rate_mbit}mbit", "burst", "64kb", "latency", "50ms",
        )  # fmt: skip
        yield name
    finally:
        subprocess.run(["ip", "link", "del", veth], check=False, timeout=30)
        subprocess.run(["ip", "netns", "del", name], check=False, timeout=30)


def through_tbf(rate_mbit: int, streams: int, size: int) -> float:
    """Mbit/s of `streams` TCP streams of `size` bytes each through tbf."""
    with _shaped_namespace(rate_mbit) as name:
        receiver = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                name,
                sys.executable,
                "-c",
                _RECEIVER,
                str(streams),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert receiver.stdout is not None
            assert receiver.stdout.readline().strip() == "ready"
            started = time.monotonic()
            with ThreadPoolExecutor(streams) as pool:
                list(pool.map(lambda _: _send(size), range(streams)))
            elapsed = time.monotonic() - started
            receiver.wait(timeout=60)
        finally:
            receiver.kill()
    return streams * size * 8 / elapsed / 1e6


def _send(size: int) -> None:
    block = bytes(MiB)
    with socket.create_connection((PEER, PORT), timeout=120) as conn:
        for offset in range(0, size, MiB):
            conn.sendall(block[: min(MiB, size - offset)])
        conn.shutdown(socket.SHUT_WR)
        assert conn.recv(1) == b"k"


def through_model(streams: int, size: int, **model: float) -> float:
    """Mbit/s of `streams` ranged GETs of `size` bytes from a shaped sandbox."""
    folder = Path(tempfile.mkdtemp(prefix="ghga-wan-check-", dir="/dev/shm"))
    try:
        with Sandbox(folder / "state", **model) as sandbox:  # type: ignore[arg-type]
            store = sandbox._store
            assert isinstance(store, FileObjectStore)
            with (store.objects_dir / "outbox" / "obj").open("wb") as out:
                out.truncate(streams * size)
            url = store.download_url("outbox/obj")
            started = time.monotonic()
            with ThreadPoolExecutor(streams) as pool:
                list(pool.map(lambda i: _get(url, i * size, size), range(streams)))
            elapsed = time.monotonic() - started
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return streams * size * 8 / elapsed / 1e6


def _get(url: str, first: int, size: int) -> None:
    byte_range = {"Range": f"bytes={first}-{first + size - 1}"}
    with requests.get(url, headers=byte_range, stream=True, timeout=120) as answer:
        for _ in answer.iter_content(MiB):
            pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=64, help="bytes per stream")
    args = parser.parse_args()
    one, eight = args.mib * MiB, args.mib * MiB // 4
    rows = [
        (
            "1 stream, 100 Mbit/s",
            through_tbf(100, 1, one),
            through_model(1, one, connection_mbps=100),
        ),
        (
            "8 streams, 400 Mbit/s shared",
            through_tbf(400, 8, eight),
            through_model(8, eight, total_mbps=400),
        ),
    ]
    print("| case | tbf on a veth, Mbit/s | WAN model, Mbit/s |")
    print("|---|---|---|")
    for name, real, model in rows:
        print(f"| {name} | {real:.0f} | {model:.0f} |")


if __name__ == "__main__":
    main()
