"""Very large files: an 8 GiB round trip against a 1 GiB one, default settings.

Usage: python benchmarks/bench_large.py [--sizes-gib 1,8] [--work DIR]

Per size: a random input file, a sandbox (`ghga-transfer sandbox serve`, its
own process, state on the same disk), our upload (temp dir on disk), the
sandbox's interrogation, and our download to plaintext (the client checks the
SHA-256 itself). The client runs alone as a child, so wall time, user+sys CPU
and its peak RSS come from os.wait4 (see bench_transfer.py). Everything of a
size is removed before the next one: 8 GiB needs about 40 GB of free disk
(input, temp file, inbox and archive objects, output). The targets (issue
14): at 8 GiB, peak RSS within 10 % and throughput within 15 % of 1 GiB.
"""

import argparse
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from bench_transfer import MB, REPO, Bench

GiB = 1024**3
RSS_TOLERANCE = 0.10
THROUGHPUT_TOLERANCE = 0.15


@dataclass
class Result:
    size: int
    direction: str
    wall_s: float
    cpu_s: float
    rss_mib: float

    @property
    def mb_s(self) -> float:
        return self.size / self.wall_s / MB


def round_trip(work: Path, size: int) -> list[Result]:
    """Upload and download one file of ``size`` bytes; remove everything after."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    bench = Bench(work, work / "sandbox", size)
    try:
        (work / "tmp").mkdir()
        token = bench.sandbox.upload_token(bench.public)
        args = ["upload", "--tmp-dir", str(work / "tmp"), str(bench.source)]
        up = Result(size, "upload", *bench.ours(args, token))
        bench.source.unlink()  # room for the archive and the output
        bench.settle()  # the interrogation archives it
        accession = bench.accession
        assert accession is not None, "the upload was not archived"
        token = bench.sandbox.download_token(bench.public, [accession])
        out = work / "out"
        down = Result(
            size,
            "download",
            *bench.ours(["download", "--output-dir", str(out), accession], token),
        )
        [output] = out.iterdir()
        assert output.stat().st_size == size, f"{output} is incomplete"
        return [up, down]
    finally:
        bench.close()
        shutil.rmtree(work, ignore_errors=True)


def _table(results: list[Result]) -> str:
    rows = [
        "| size | direction | wall s | MB/s | client CPU s | peak RSS MiB |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        rows.append(
            f"| {r.size // GiB} GiB | {r.direction} | {r.wall_s:.1f} | "
            f"{r.mb_s:.0f} | {r.cpu_s:.1f} | {r.rss_mib:.0f} |"
        )
    return "\n".join(rows)


def _verdicts(results: list[Result]) -> list[str]:
    smallest = min(r.size for r in results)
    largest = max(r.size for r in results)
    lines = []
    for direction in ("upload", "download"):
        base, big = (
            next(r for r in results if r.size == s and r.direction == direction)
            for s in (smallest, largest)
        )
        rss = big.rss_mib / base.rss_mib - 1
        speed = big.mb_s / base.mb_s - 1
        lines.append(
            f"- {direction}: peak RSS {rss:+.0%} "
            f"({'met' if rss <= RSS_TOLERANCE else 'NOT met'}, target within "
            f"+{RSS_TOLERANCE:.0%}), throughput {speed:+.0%} "
            f"({'met' if speed >= -THROUGHPUT_TOLERANCE else 'NOT met'}, target "
            f"within -{THROUGHPUT_TOLERANCE:.0%})"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes-gib", default="1,8")
    parser.add_argument("--work", type=Path, default=REPO / ".bench" / "large")
    args = parser.parse_args()
    started = time.monotonic()
    results: list[Result] = []
    for gib in (int(s) for s in args.sizes_gib.split(",")):
        results += round_trip(args.work / f"{gib}gib", gib * GiB)
        print(_table(results[-2:]).splitlines()[-2:], flush=True)
    report = "\n".join(
        [
            "Random file, default settings (adaptive workers, automatic part "
            "size), sandbox state and temp dir on disk, client alone (os.wait4); "
            f"{time.monotonic() - started:.0f} s in all",
            "",
            _table(results),
            "",
            *_verdicts(results),
        ]
    )
    print(report)
    args.work.mkdir(parents=True, exist_ok=True)
    (args.work / "results.md").write_text(report + "\n")


if __name__ == "__main__":
    main()
