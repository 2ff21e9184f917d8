"""Measure the sandbox object store's data path on loopback: ranged GETs and part PUTs.

Run: `.venv/bin/python tests/sandbox/measure_object_store.py [--size-mib 1024] [--dir /dev/shm]`.
Serves a FileObjectStore from a temp dir (on the same disk as the repo unless
--dir says otherwise) and drives it with urllib3 from a thread pool, the way
the transfer engine does: 64 MiB ranges/parts, bodies read into and sent from
reused buffers. Prints MB/s (10^6 bytes per second) per direction and
concurrency. Targets: >= 1000 MB/s GET, >= 500 MB/s PUT on a 2-core machine.
"""

import argparse
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import urllib3

from snakemake_ghga.sandbox.faults import FaultInjector
from snakemake_ghga.sandbox.http import Router, SandboxHttpServer
from snakemake_ghga.sandbox.objecthttp import add_object_routes
from snakemake_ghga.sandbox.objects import FileObjectStore
from snakemake_ghga.sandbox.requestlog import RequestLog

MiB = 1024 * 1024
PART_BYTES = 64 * MiB


def _serve(root: Path) -> tuple[SandboxHttpServer, FileObjectStore]:
    store = FileObjectStore(root, os.urandom(32), url_ttl_s=3600)
    router = Router()
    add_object_routes(router, store)
    server = SandboxHttpServer(0, router, FaultInjector(), RequestLog(root / "log"))
    store.base_url = server.base_url
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, store


def _put_parts(store: FileObjectStore, total: int, workers: int) -> float:
    key = "inbox/measure-put"
    upload_id = store.create_multipart(key)
    body = os.urandom(PART_BYTES)
    pool = urllib3.PoolManager(maxsize=workers, block=True)
    count = total // PART_BYTES

    def put(number: int) -> None:
        url = store.part_upload_url(key, upload_id, number)
        answer = pool.request("PUT", url, body=body, retries=False)
        assert answer.status == 200, answer.data

    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as executor:
        list(executor.map(put, range(1, count + 1)))
    elapsed = time.perf_counter() - started
    store.abort_multipart(key, upload_id)
    return count * PART_BYTES / elapsed / 1e6


def _get_ranges(store: FileObjectStore, size: int, workers: int) -> float:
    url = store.download_url("outbox/measure-get")
    pool = urllib3.PoolManager(maxsize=workers, block=True)
    buffers = threading.local()

    def get(start: int) -> None:
        end = min(start + PART_BYTES, size) - 1
        if not hasattr(buffers, "view"):
            buffers.view = memoryview(bytearray(PART_BYTES))
        answer = pool.request(
            "GET",
            url,
            headers={"Range": f"bytes={start}-{end}"},
            preload_content=False,
            retries=False,
        )
        assert answer.status == 206
        got = 0
        while got < end - start + 1:
            n = answer.readinto(buffers.view[got:])
            assert n, "short body"
            got += n
        answer.release_conn()

    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as executor:
        list(executor.map(get, range(0, size, PART_BYTES)))
    return size / (time.perf_counter() - started) / 1e6


def _median_mb_s(
    measure: Callable[[FileObjectStore, int, int], float],
    store: FileObjectStore,
    size: int,
    workers: int,
    repeats: int,
) -> str:
    rates = sorted(measure(store, size, workers) for _ in range(repeats))
    return f"{statistics.median(rates):6.0f} MB/s (best {rates[-1]:.0f})"


def main() -> None:
    """Measure and print the throughput table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    size = args.size_mib * MiB
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="sandbox-measure-") as tmp:
        server, store = _serve(Path(tmp))
        with open(store.objects_dir / "outbox" / "measure-get", "wb") as handle:
            for _ in range(size // PART_BYTES):
                handle.write(os.urandom(PART_BYTES))
        for workers in (1, 4):
            rate = _median_mb_s(_get_ranges, store, size, workers, args.repeats)
            print(f"ranged GET, {workers} connection(s): {rate}", flush=True)
        for workers in (1, 4):
            rate = _median_mb_s(_put_parts, store, size, workers, args.repeats)
            print(f"part PUT,   {workers} connection(s): {rate}", flush=True)
        server.shutdown()
        server.server_close()


if __name__ == "__main__":
    main()
