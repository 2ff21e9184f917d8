"""Crypt4GH speed and memory: ghga-transfer vs the reference crypt4gh CLI, one run.

Usage: python benchmarks/bench_crypt.py [--size-mib 1024] [--disk-dir DIR]
           [--repeat 5]

Prints, for encrypt and decrypt with output on tmpfs (/dev/shm) and on disk:
MB/s, ratio to the crypt4gh CLI, CPU seconds and peak RSS of each process
(os.wait4 rusage). Then the upload pipeline (encryption + plaintext SHA-256 +
per-part MD5 and SHA-256, 64 MiB parts, temp file on tmpfs) against its CPU
floor: the single-thread time of each primitive over the same bytes, summed
and divided by the cores. MB/s = 10^6 bytes per second.

Each comparison runs `--repeat` rounds, the two tools alternating (ABBA
order), and reports medians with the range of the per-round ratios: writing a
new file costs this VM's kernel anything from 0.4 to 3 s per GiB from one run
to the next (freed memory goes back to the host), so one run proves little.
"""

import argparse
import contextlib
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import rusage
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

BIN = Path(sys.executable).parent
MB = 1_000_000
Pair = tuple[rusage.Usage, rusage.Usage]  # ours, the crypt4gh CLI


def measure(
    cmd: list[str], stdin: Path | None = None, stdout: Path | None = None
) -> rusage.Usage:
    """Run a command; return wall time, user+sys CPU and its own peak RSS."""
    with contextlib.ExitStack() as stack:
        src = stack.enter_context(open(stdin, "rb")) if stdin else subprocess.DEVNULL
        dst = stack.enter_context(open(stdout, "wb")) if stdout else subprocess.DEVNULL
        env = {**os.environ, "C4GH_PASSPHRASE": ""}
        return rusage.run(cmd, stdin=src, stdout=dst, stderr=subprocess.PIPE, env=env)


def make_keys(work: Path) -> None:
    from snakemake_ghga.crypt4gh import keys

    for name in ("user", "hub"):
        secret, public = keys.generate_key_pair()
        keys.write_private_key(work / f"{name}.sec", secret)
        keys.write_public_key(work / f"{name}.pub", public)


def drop(path: Path) -> None:
    if path.exists():
        path.unlink()


@dataclass
class Step:
    """One timed command and the file it writes (deleted before and after)."""

    cmd: list[str]
    output: Path
    stdin: Path | None = None
    stdout: Path | None = None

    def run(self) -> rusage.Usage:
        drop(self.output)
        os.sync()  # no dirty pages of the previous run left for this one to flush
        try:
            return measure(self.cmd, self.stdin, self.stdout)
        finally:
            drop(self.output)


def encrypt_commands(work: Path, plain: Path, out_dir: Path) -> tuple[Step, Step]:
    ours_out, ref_out = out_dir / f"{plain.name}.c4gh", out_dir / "ref.c4gh"
    ours = Step(
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
        ],
        output=ours_out,
    )
    ref = Step(
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
        output=ref_out,
    )
    return ours, ref


def decrypt_commands(work: Path, cipher: Path, out_dir: Path) -> tuple[Step, Step]:
    ours_out, ref_out = out_dir / cipher.stem, out_dir / "ref.out"
    ours = Step(
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
        ],
        output=ours_out,
    )
    ref = Step(
        [str(BIN / "crypt4gh"), "decrypt", "--sk", str(work / "hub.sec")],
        stdin=cipher,
        stdout=ref_out,
        output=ref_out,
    )
    return ours, ref


def rounds(ours: Step, ref: Step, repeat: int) -> list[Pair]:
    """Time both tools `repeat` times, alternating which goes first (ABBA)."""
    pairs = []
    for index in range(repeat):
        if index % 2:
            ref_run = ref.run()
            pairs.append((ours.run(), ref_run))
        else:
            ours_run = ours.run()
            pairs.append((ours_run, ref.run()))
    return pairs


def row(label: str, size: int, pairs: list[Pair]) -> str:
    """Medians over the rounds, and the range of the per-round ratios."""
    ours = [size / o.wall_s / MB for o, _ in pairs]
    ref = [size / r.wall_s / MB for _, r in pairs]
    ratios = sorted(o / r for o, r in zip(ours, ref, strict=True))
    ours_cpu = statistics.median(o.cpu_s for o, _ in pairs)
    ref_cpu = statistics.median(r.cpu_s for _, r in pairs)
    ours_rss = max(o.rss_mib for o, _ in pairs)
    ref_rss = max(r.rss_mib for _, r in pairs)
    return (
        f"| {label} | {statistics.median(ours):,.0f} | {statistics.median(ref):,.0f} "
        f"| {statistics.median(ratios):.2f}x ({ratios[0]:.2f}–{ratios[-1]:.2f}) "
        f"| {ours_cpu:.2f} / {ref_cpu:.2f} | {ours_rss:.0f} / {ref_rss:.0f} |"
    )


PIPELINE = """
import sys, time
from snakemake_ghga import crypt4gh as crypt
from snakemake_ghga.crypt4gh import keys
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


def pipeline(work: Path, plain: Path, shm: Path, repeat: int) -> None:
    """Time encrypt_file inside the process, like the floor (no start-up)."""
    target, timing = shm / "pipeline.c4gh", shm / "pipeline.seconds"
    size = plain.stat().st_size
    cipher_size = size + 28 * -(-size // 65_536) + 124
    step = Step(
        [
            sys.executable,
            "-c",
            PIPELINE,
            str(work / "user.sec"),
            str(work / "hub.pub"),
            str(plain),
            str(target),
        ],
        output=target,
        stdout=timing,
    )
    runs, seconds = [], []
    for _ in range(repeat):
        runs.append(step.run())
        seconds.append(float(timing.read_text()))
    rates = sorted(size / s / MB for s in seconds)
    rate = statistics.median(rates)
    process_rate = statistics.median(size / run.wall_s / MB for run in runs)
    floor = cpu_floor_s(plain, cipher_size)
    floor_rate = size / floor / MB
    print(
        "\nUpload pipeline (encrypt + plaintext SHA-256 + per-part MD5/SHA-256, "
        f"64 MiB parts, temp on tmpfs), median of {repeat}:"
    )
    print(
        f"  {rate:,.0f} MB/s ({rates[0]:,.0f}–{rates[-1]:,.0f}; "
        f"{process_rate:,.0f} MB/s with interpreter start-up), "
        f"CPU {statistics.median(run.cpu_s for run in runs):.2f} s, "
        f"peak RSS {max(run.rss_mib for run in runs):.0f} MiB; "
        f"CPU floor {floor_rate:,.0f} MB/s ({floor:.2f} s on {os.cpu_count()} cores); "
        f"{floor_rate / rate:.2f}x the floor"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--disk-dir", type=Path, default=Path.cwd() / ".bench")
    parser.add_argument("--repeat", type=int, default=5, help="rounds per row")
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
        cipher = shm / "input.c4gh"
        ours_encrypt, _ = encrypt_commands(shm, plain, shm)
        measure(ours_encrypt.cmd)
        (shm / "plain.bin.c4gh").rename(cipher)
        print(
            f"{args.size_mib} MiB random file (page cache); ours / crypt4gh CLI; "
            f"medians of {args.repeat} alternating rounds (range of the ratios)\n"
        )
        print("| run | ours MB/s | crypt4gh MB/s | ratio | CPU s | peak RSS MiB |")
        print("|---|---|---|---|---|---|")
        for label, out_dir in (("tmpfs", shm / "out"), ("disk", disk)):
            out_dir.mkdir(exist_ok=True)  # never beside the input
            pairs = rounds(*encrypt_commands(shm, plain, out_dir), args.repeat)
            print(row(f"encrypt → {label}", size, pairs), flush=True)
            pairs = rounds(*decrypt_commands(shm, cipher, out_dir), args.repeat)
            print(row(f"decrypt → {label}", size, pairs), flush=True)
        drop(cipher)
        pipeline(shm, plain, shm, args.repeat)
    finally:
        shutil.rmtree(shm, ignore_errors=True)
        shutil.rmtree(disk, ignore_errors=True)


if __name__ == "__main__":
    main()
