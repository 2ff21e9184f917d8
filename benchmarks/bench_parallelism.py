"""One part workload, three concurrency mechanisms: threads, processes, asyncio.

Usage: python benchmarks/bench_parallelism.py [--size-mib 1024] [--part-mib 64]
           [--workers 4]
Needs: nginx (Debian `nginx-light`) as a fast local server, and `aiohttp`
for the asyncio variants (skipped when missing).

The workload is what ghga-transfer does per part, against nginx on 127.0.0.1
so that the server is never the bottleneck:
- download: a ranged GET of whole Crypt4GH cipher segments, each decrypted
  (ChaCha20-Poly1305, cryptography) and written with pwrite at its plaintext
  offset into a file on tmpfs;
- upload: a PUT streamed from a page-cached file range (nginx discards it).
Mechanisms: ghga-transfer's TransferEngine (a ThreadPoolExecutor over one
urllib3 PoolManager); a ProcessPoolExecutor running the same part functions
with a pool per process; asyncio + aiohttp with a semaphore, decrypting in the
event loop or in asyncio.to_thread. Reported: wall time, MB/s, CPU seconds of
the benchmark process and its children, and peak RSS (for processes the sum
of the workers' peaks plus the parent's).
"""

import argparse
import asyncio
import functools
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import urllib3
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from snakemake_ghga.config import TransferConfig  # noqa: E402
from snakemake_ghga.transfer.engine import TransferEngine  # noqa: E402
from snakemake_ghga.transfer.parts import (  # noqa: E402
    CIPHER_SEGMENT_SIZE,
    SEGMENT_SIZE,
    Part,
    plan_parts,
)

MB = 1_000_000
MiB = 1024 * 1024
KEY = bytes(range(32))
BLOCK = 16 * CIPHER_SEGMENT_SIZE
_NGINX_CONF = """
daemon off; worker_processes 2; pid {root}/nginx.pid; error_log {root}/error.log;
events {{ worker_connections 64; }}
http {{ access_log off; sendfile on; client_body_temp_path {root}/body;
  server {{ listen 127.0.0.1:{port}; root {root}/www; client_max_body_size 0;
    location /sink/ {{ dav_methods PUT; client_body_buffer_size 1m; }} }} }}
"""


def make_ciphertext(path: Path, size: int) -> None:
    """Write ``size`` random plaintext bytes as a header-less Crypt4GH body."""
    aead = ChaCha20Poly1305(KEY)
    with path.open("wb") as out:
        for _ in range(0, size, SEGMENT_SIZE):
            nonce = os.urandom(12)
            out.write(nonce + aead.encrypt(nonce, os.urandom(SEGMENT_SIZE), None))


def start_nginx(root: Path, port: int) -> subprocess.Popen[bytes]:
    (root / "www" / "sink").mkdir(parents=True, exist_ok=True)
    (root / "body").mkdir(exist_ok=True)
    for directory in (root / "www", root / "www" / "sink", root / "body"):
        directory.chmod(0o777)
    (root / "nginx.conf").write_text(_NGINX_CONF.format(root=root, port=port))
    proc = subprocess.Popen(["nginx", "-c", str(root / "nginx.conf"), "-p", str(root)])
    pool = urllib3.PoolManager()
    for _ in range(100):
        try:
            pool.request("GET", f"http://127.0.0.1:{port}/none", retries=False)
            return proc
        except urllib3.exceptions.HTTPError:
            time.sleep(0.05)
    raise SystemExit("nginx did not start")


# -- the per-part work, shared by the threads and processes variants ---------


def decrypt_block(aead: ChaCha20Poly1305, cipher: memoryview, out: memoryview) -> int:
    written = 0
    for start in range(0, len(cipher), CIPHER_SEGMENT_SIZE):
        segment = cipher[start : start + CIPHER_SEGMENT_SIZE]
        size = len(segment) - 28
        aead.decrypt_into(
            bytes(segment[:12]), segment[12:], None, out[written : written + size]
        )
        written += size
    return written


_local = threading.local()


def _pool() -> urllib3.PoolManager:
    if not hasattr(_local, "pool"):
        _local.pool = urllib3.PoolManager(maxsize=1, blocksize=MiB)
        _local.buf = memoryview(bytearray(BLOCK))
        _local.out = memoryview(bytearray(BLOCK))
        _local.aead = ChaCha20Poly1305(KEY)
    return _local.pool


def get_part(url: str, out_path: str, offset: int, size: int) -> None:
    pool = _pool()
    response = pool.request(
        "GET",
        url,
        preload_content=False,
        headers={"Range": f"bytes={offset}-{offset + size - 1}"},
    )
    assert response.status == 206
    fd = os.open(out_path, os.O_WRONLY)
    done = 0
    while done < size:
        want = min(BLOCK, size - done)
        got = 0
        while got < want:
            got += response.readinto(_local.buf[got:want])
        count = decrypt_block(_local.aead, _local.buf[:want], _local.out)
        os.pwrite(
            fd,
            _local.out[:count],
            (offset + done) // CIPHER_SEGMENT_SIZE * SEGMENT_SIZE,
        )
        done += want
    os.close(fd)
    response.release_conn()


class _Range:
    def __init__(self, fd: int, offset: int, size: int) -> None:
        self.fd, self.pos, self.left = fd, offset, size

    def read(self, amount: int = -1) -> bytes:
        amount = self.left if amount < 0 else min(amount, self.left)
        data = os.pread(self.fd, amount, self.pos)
        self.pos += len(data)
        self.left -= len(data)
        return data


def put_part(url: str, src_path: str, offset: int, size: int) -> None:
    fd = os.open(src_path, os.O_RDONLY)
    response = _pool().urlopen(
        "PUT", url, body=_Range(fd, offset, size), headers={"Content-Length": str(size)}
    )
    os.close(fd)
    assert response.status in (201, 204), response.status


# -- the variants -----------------------------------------------------------------


class _FixedUrl:
    def __init__(self, url: str) -> None:
        self.url = url

    def url_for(self, part: Part) -> str:
        return self.url

    def invalidate(self, url: str) -> None:
        pass


class _DecryptSink:
    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.aead = ChaCha20Poly1305(KEY)
        self.local = threading.local()

    def write(self, cipher_offset: int, data: memoryview) -> None:
        if not hasattr(self.local, "out"):
            self.local.out = memoryview(bytearray(BLOCK))
        count = decrypt_block(self.aead, data, self.local.out)
        os.pwrite(
            self.fd,
            self.local.out[:count],
            cipher_offset // CIPHER_SEGMENT_SIZE * SEGMENT_SIZE,
        )


def run_threads(
    kind: str, url: str, path: str, parts: list[Part], workers: int
) -> None:
    """ghga-transfer's own engine: ThreadPoolExecutor + one urllib3 pool."""
    config = TransferConfig(max_workers=workers)
    with TransferEngine(config) as engine:
        urls, cancel = _FixedUrl(url), threading.Event()
        fd = os.open(path, os.O_RDWR)
        if kind == "download":
            sink = _DecryptSink(fd)
            futures = [
                engine.submit(
                    engine.get_part, "bench", p, urls, sink, cancel, lambda _: None
                )
                for p in parts
            ]
        else:
            futures = [engine.submit(_put_plain, engine, fd, p, url) for p in parts]
        for future in futures:
            future.result()
        os.close(fd)


def _put_plain(engine: TransferEngine, fd: int, part: Part, url: str) -> None:
    response = engine.pool.urlopen(
        "PUT",
        f"{url}/p{part.number}",
        body=_Range(fd, part.offset, part.size),
        headers={"Content-Length": str(part.size)},
    )
    assert response.status in (201, 204), response.status


def _part_url(kind: str, url: str, part: Part) -> str:
    return url if kind == "download" else f"{url}/p{part.number}"


def run_processes(
    kind: str, url: str, path: str, parts: list[Part], workers: int
) -> None:
    func = get_part if kind == "download" else put_part
    with ProcessPoolExecutor(workers) as pool:
        futures = [
            pool.submit(func, _part_url(kind, url, p), path, p.offset, p.size)
            for p in parts
        ]
        for future in futures:
            future.result()


def run_asyncio(
    kind: str,
    url: str,
    path: str,
    parts: list[Part],
    workers: int,
    offload: bool = False,
) -> None:
    asyncio.run(_async_main(kind, url, path, parts, workers, offload))


async def _async_main(
    kind: str, url: str, path: str, parts: list[Part], workers: int, offload: bool
) -> None:
    import aiohttp

    limit = asyncio.Semaphore(workers)
    connector = aiohttp.TCPConnector(limit=workers)
    async with aiohttp.ClientSession(connector=connector) as session:
        fd = os.open(path, os.O_RDWR)
        jobs = [_async_part(session, limit, kind, url, fd, p, offload) for p in parts]
        await asyncio.gather(*jobs)
        os.close(fd)


async def _async_part(
    session: "object",
    limit: asyncio.Semaphore,
    kind: str,
    url: str,
    fd: int,
    part: Part,
    offload: bool,
) -> None:
    import aiohttp

    assert isinstance(session, aiohttp.ClientSession)
    async with limit:
        if kind == "upload":
            async with session.put(
                _part_url(kind, url, part),
                data=_async_body(fd, part),
                headers={"Content-Length": str(part.size)},
            ) as r:
                assert r.status in (201, 204), r.status
            return
        aead, out = ChaCha20Poly1305(KEY), memoryview(bytearray(BLOCK))
        headers = {"Range": f"bytes={part.offset}-{part.end - 1}"}
        async with session.get(url, headers=headers) as response:
            assert response.status == 206
            done = 0
            while done < part.size:
                block = await response.content.readexactly(min(BLOCK, part.size - done))
                args = (aead, memoryview(block), out)
                count = (
                    await asyncio.to_thread(decrypt_block, *args)
                    if offload
                    else decrypt_block(*args)
                )
                os.pwrite(
                    fd,
                    out[:count],
                    (part.offset + done) // CIPHER_SEGMENT_SIZE * SEGMENT_SIZE,
                )
                done += len(block)


async def _async_body(fd: int, part: Part):  # type: ignore[no-untyped-def]
    for start in range(part.offset, part.end, MiB):
        yield os.pread(fd, min(MiB, part.end - start), start)


# -- measuring ----------------------------------------------------------------------


def measure(run: Callable[[], None]) -> tuple[float, float, float]:
    """Run in a fresh child; return wall s, CPU s (incl. grandchildren), RSS MiB."""
    read, write = os.pipe()
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        run()
        me = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        rss = me.ru_maxrss + (kids.ru_maxrss * 4 if kids.ru_maxrss else 0)
        os.write(write, f"{rss}".encode())
        os._exit(0)
    os.close(write)
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - start
    rss_kib = int(os.read(read, 64) or b"0")
    os.close(read)
    assert os.waitstatus_to_exitcode(status) == 0
    return wall, usage.ru_utime + usage.ru_stime, rss_kib / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--part-mib", type=int, default=64)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--port", type=int, default=18231)
    parser.add_argument("--repeat", type=int, default=3, help="best of N (wall)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="ghga-par-", dir="/dev/shm"))
    root.chmod(0o755)  # nginx workers run as an unprivileged user
    nginx = start_nginx(root, args.port)
    try:
        _bench(root, args)
    finally:
        nginx.terminate()
        nginx.wait()
        shutil.rmtree(root, ignore_errors=True)


def _bench(root: Path, args: argparse.Namespace) -> None:
    cipher = root / "www" / "object"
    make_ciphertext(cipher, args.size_mib * MiB)
    size = cipher.stat().st_size
    part = args.part_mib * MiB // CIPHER_SEGMENT_SIZE * CIPHER_SEGMENT_SIZE
    parts = list(plan_parts(size, part))
    out = root / "plain"
    base = f"http://127.0.0.1:{args.port}"
    variants = _variants(args.workers)
    print(
        f"{args.size_mib} MiB, {len(parts)} parts of {part} B, {args.workers} workers"
    )
    print("| workload | mechanism | wall s | MB/s | CPU s | peak RSS MiB |")
    print("|---|---|---|---|---|---|")
    for kind in ("download", "upload"):
        for name, func in variants.items():
            out.write_bytes(b"")
            os.truncate(out, args.size_mib * MiB)
            url = f"{base}/object" if kind == "download" else f"{base}/sink"
            path = str(out if kind == "download" else cipher)
            job = functools.partial(func, kind, url, path, parts, args.workers)
            wall, cpu, rss = min(measure(job) for _ in range(args.repeat))
            rate = args.size_mib * MiB / wall / MB
            print(
                f"| {kind} | {name} | {wall:.2f} | {rate:.0f} | {cpu:.2f} | {rss:.0f} |"
            )


def _variants(workers: int) -> dict[str, Callable[..., None]]:
    variants: dict[str, Callable[..., None]] = {
        "threads + urllib3 (TransferEngine)": run_threads,
        f"processes ({workers}) + urllib3": run_processes,
    }
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        print("aiohttp is not installed: asyncio variants skipped", file=sys.stderr)
        return variants
    variants["asyncio + aiohttp, decrypt in loop"] = run_asyncio
    variants["asyncio + aiohttp, decrypt in to_thread"] = lambda *a: run_asyncio(
        *a, offload=True
    )
    return variants


if __name__ == "__main__":
    main()
