"""Crypt4GH speed and memory: ghga-transfer vs the reference crypt4gh CLI, one run.

Usage: python benchmarks/bench_crypt.py [--size-mib 1024] [--disk-dir DIR]

Prints, for encrypt and decrypt with output on tmpfs (/dev/shm) and on disk:
MB/s, ratio to the crypt4gh CLI, CPU seconds and peak RSS of each process
(os.wait4 rusage). Then the upload pipeline (encryption + plaintext SHA-256 +
per-part MD5 and SHA-256, 64 MiB parts, temp file on tmpfs) against its CPU
floor: the single-thread time of each primitive over the same bytes, summed
and divided by the cores. MB/s = 10^6 bytes per second.
"""

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

BIN = Path(sys.executable).parent
MB = 1_000_000


@dataclass
class Run:
    wall_s: float
    cpu_s: float
    rss_mib: float


def measure(
    cmd: list[str], stdin: Path | None = None, stdout: Path | None = None
) -> Run:
    """Run a command; return wall time, user+sys CPU and peak RSS from wait4."""
    src = open(stdin, "rb") if stdin else subprocess.DEVNULL  # noqa: SIM115
    dst = open(stdout, "wb") if stdout else subprocess.DEVNULL  # noqa: SIM115
    env = {**os.environ, "C4GH_PASSPHRASE": ""}
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdin=src, stdout=dst, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    for handle in (src, dst):
        if hasattr(handle, "close"):
            handle.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}: {proc.stderr.read().decode()}")  # type: ignore[union-attr]
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


def make_keys(work: Path) -> None:
    from snakemake_ghga import keys

    for name in ("user", "hub"):
        secret, public = keys.generate_key_pair()
        keys.write_private_key(work / f"{name}.sec", secret)
        keys.write_public_key(work / f"{name}.pub", public)


def drop(path: Path) -> None:
    if path.exists():
        path.unlink()


def compare_encrypt(work: Path, plain: Path, out_dir: Path) -> tuple[Run, Run]:
    ours_out, ref_out = out_dir / f"{plain.name}.c4gh", out_dir / "ref.c4gh"
    drop(ours_out)
    drop(ref_out)
    ours = measure(
        [
            str(BIN / "ghga-transfer"),
            "-q",
            "encrypt",
            "--recipient-public-key",
            str(work / "hub.pub"),
            "--my-private-key",
            str(work / "user.sec"),
            "--output-dir",
            str(out_dir),
            "--overwrite",
            str(plain),
        ]
    )
    ref = measure(
        [
            str(BIN / "crypt4gh"),
            "encrypt",
            "--sk",
            str(work / "user.sec"),
            "--recipient_pk",
            str(work / "hub.pub"),
        ],
        stdin=plain,
        stdout=ref_out,
    )
    drop(ref_out)
    return ours, ref


def compare_decrypt(work: Path, cipher: Path, parent: Path) -> tuple[Run, Run]:
    out_dir = parent / "decrypted"  # never beside the plaintext input
    out_dir.mkdir(exist_ok=True)
    ours_out, ref_out = out_dir / cipher.stem, out_dir / "ref.out"
    drop(ours_out)
    drop(ref_out)
    ours = measure(
        [
            str(BIN / "ghga-transfer"),
            "-q",
            "decrypt",
            "--my-private-key",
            str(work / "hub.sec"),
            "--output-dir",
            str(out_dir),
            "--overwrite",
            str(cipher),
        ]
    )
    ref = measure(
        [str(BIN / "crypt4gh"), "decrypt", "--sk", str(work / "hub.sec")],
        stdin=cipher,
        stdout=ref_out,
    )
    drop(ours_out)
    drop(ref_out)
    return ours, ref


def row(label: str, size: int, ours: Run, ref: Run) -> str:
    ours_rate, ref_rate = size / ours.wall_s / MB, size / ref.wall_s / MB
    return (
        f"| {label} | {ours_rate:,.0f} | {ref_rate:,.0f} | {ours_rate / ref_rate:.2f}x "
        f"| {ours.cpu_s:.2f} / {ref.cpu_s:.2f} "
        f"| {ours.rss_mib:.0f} / {ref.rss_mib:.0f} |"
    )


PIPELINE = """
import sys, time
from snakemake_ghga import crypt, keys
sk = keys.load_private_key(sys.argv[1]); pk = keys.load_public_key(sys.argv[2])
start = time.perf_counter()
crypt.encrypt_file(sys.argv[3], sys.argv[4], writer_secret_key=sk,
                   recipient_public_key=pk, part_size=67_137_536, workers=2)
print(time.perf_counter() - start)
"""


def cpu_floor_s(plain: Path, cipher_size: int) -> float:
    """Single-thread seconds of each primitive over the file, summed, per core."""
    data = memoryview(bytearray(1 << 20))
    aead, nonce = ChaCha20Poly1305(os.urandom(32)), os.urandom(12)
    out = memoryview(bytearray(65_536 + 16))
    timings = []
    for work in ("sha256", "chacha", "md5", "sha256-cipher"):
        start = time.perf_counter()
        digest = hashlib.md5() if work == "md5" else hashlib.sha256()
        with open(plain, "rb") as handle:
            while got := handle.readinto(data):
                if work == "chacha":
                    for offset in range(0, got, 65_536):
                        seg = data[offset : min(offset + 65_536, got)]
                        aead.encrypt_into(nonce, seg, None, out[: len(seg) + 16])
                else:
                    digest.update(data[:got])
        seconds = time.perf_counter() - start
        if work in ("md5", "sha256-cipher"):  # the ciphertext is slightly larger
            seconds *= cipher_size / plain.stat().st_size
        timings.append(seconds)
    return sum(timings) / (os.cpu_count() or 1)


def pipeline(work: Path, plain: Path, shm: Path) -> None:
    target = shm / "pipeline.c4gh"
    size = plain.stat().st_size
    cipher_size = size + 28 * -(-size // 65_536) + 124
    run = measure(
        [
            sys.executable,
            "-c",
            PIPELINE,
            str(work / "user.sec"),
            str(work / "hub.pub"),
            str(plain),
            str(target),
        ]
    )
    drop(target)
    floor = cpu_floor_s(plain, cipher_size)
    rate, floor_rate = size / run.wall_s / MB, size / floor / MB
    print(
        "\nUpload pipeline (encrypt + plaintext SHA-256 + per-part MD5/SHA-256, "
        "64 MiB parts, temp on tmpfs):"
    )
    print(
        f"  {rate:,.0f} MB/s, CPU {run.cpu_s:.2f} s, peak RSS {run.rss_mib:.0f} MiB; "
        f"CPU floor {floor_rate:,.0f} MB/s ({floor:.2f} s on {os.cpu_count()} cores); "
        f"{floor_rate / rate:.2f}x the floor"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--disk-dir", type=Path, default=Path.cwd() / ".bench")
    args = parser.parse_args()
    shm = Path(tempfile.mkdtemp(dir="/dev/shm", prefix="ghga-bench-"))
    args.disk_dir.mkdir(parents=True, exist_ok=True)
    disk = Path(tempfile.mkdtemp(dir=args.disk_dir, prefix="ghga-bench-"))
    try:
        make_keys(shm)
        plain = shm / "plain.bin"
        with open(plain, "wb") as handle:
            for _ in range(args.size_mib):
                handle.write(os.urandom(1 << 20))
        size = plain.stat().st_size
        print(f"{args.size_mib} MiB random file (page cache); ours / crypt4gh CLI\n")
        print("| run | ours MB/s | crypt4gh MB/s | ratio | CPU s | peak RSS MiB |")
        print("|---|---|---|---|---|---|")
        for label, out_dir in (("tmpfs", shm), ("disk", disk)):
            ours, ref = compare_encrypt(shm, plain, out_dir)
            print(row(f"encrypt → {label}", size, ours, ref), flush=True)
            cipher = shm / "plain.bin.c4gh"
            if out_dir is not shm:
                shutil.copy(out_dir / "plain.bin.c4gh", cipher)
                drop(out_dir / "plain.bin.c4gh")
            ours, ref = compare_decrypt(shm, cipher, out_dir)
            print(row(f"decrypt → {label}", size, ours, ref), flush=True)
            drop(cipher)
        pipeline(shm, plain, shm)
    finally:
        shutil.rmtree(shm, ignore_errors=True)
        shutil.rmtree(disk, ignore_errors=True)


if __name__ == "__main__":
    main()
