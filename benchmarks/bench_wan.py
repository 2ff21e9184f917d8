"""A slow, far link: ghga-transfer (defaults) vs the official ghga-connector 4.0.1.

Usage: python benchmarks/bench_wan.py [--latencies 10,40,100]
           [--connection-mbps 100] [--total-mbps 1000] [--big-mib 512]
           [--small-files 60] [--small-kib 128] [--work DIR] [--skip-official]
           [--cases big-up,small-up,big-down,small-down] [--ours-args OPTIONS]
           [--quick]

One sandbox process with its state on tmpfs, restarted per round trip time
with the WAN model (`sandbox serve --latency-ms MS --connection-mbps R
--total-mbps R`, see docs/sandbox.md). Per round trip, four cases, each run
once by each client at its default settings: one big file up, the same down to
plaintext (official: download + decrypt, summed), many small files up and
down. Uploads go into a new box each; downloads use files archived once with
`Sandbox.add_file`. Clients are measured alone as in bench_transfer.py (wall,
user+sys CPU and peak RSS from wait4), requests from the sandbox's log.
"% link" is plaintext bytes per second of wall time over the total rate.
"""

import argparse
import os
import shlex
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import bench_transfer
from bench_transfer import MB, Bench, MiB, Run

TARGETS_AT_MS = 40
# case -> (ratio to the official client, share of the link rate) at 40 ms
TARGETS = {
    "big up": (2.5, 0.75),
    "big down": (2.5, 0.75),
    "small up": (5.0, None),
    "small down": (8.0, None),
}
RSS_LIMIT_MB = 150
Measured = tuple[float, float, float]  # wall s, CPU s, peak RSS MiB


@dataclass
class Case:
    """One case at one round trip time: both clients' runs."""

    name: str
    latency_ms: int
    files: int
    ours: Run
    official: Run | None

    @property
    def ratio(self) -> float | None:
        if self.official is None:
            return None
        return self.official.wall_s / self.ours.wall_s


class WanBench:
    """The bench, its files and the archived accessions the downloads use."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        args.work.mkdir(parents=True, exist_ok=True)
        self.state = args.tmpfs / f"ghga-bench-wan-{os.getpid()}"
        self.bench = Bench(args.work, self.state, args.big_mib * MiB)
        self.small = _small_files(args.work / "small", args.small_files, args.small_kib)
        self.big_accession = self.bench.sandbox.add_file(self.bench.source)
        self.small_accessions = [self.bench.sandbox.add_file(p) for p in self.small]
        self.bench.keep = {self.big_accession, *self.small_accessions}

    def close(self) -> None:
        self.bench.close()
        shutil.rmtree(self.state, ignore_errors=True)

    def serve(self, latency_ms: int) -> None:
        self.bench.restart(
            [
                "--latency-ms",
                str(latency_ms),
                "--connection-mbps",
                str(self.args.connection_mbps),
                "--total-mbps",
                str(self.args.total_mbps),
            ]
        )

    def measure(self, name: str, plain_bytes: int, run: Callable[[], Measured]) -> Run:
        """Settle, run, and collect the requests and the sandbox's CPU."""
        self.bench.settle()
        mark = self.bench.log_mark()
        wall, cpu, rss = run()
        return Run(
            name,
            wall,
            cpu,
            rss,
            self.bench.counts(mark),
            plain_bytes,
            self.bench.server_cpu_since_mark(),
        )

    # -- uploads --------------------------------------------------------------

    def upload_ours(self, files: list[Path]) -> Measured:
        token = self.bench.sandbox.upload_token(self.bench.public, new_box=True)
        return self.bench.ours(
            ["upload", *self.args.ours_args, *map(str, files)], token
        )

    def upload_official(self, files: list[Path]) -> Measured:
        work = self.args.work / "official-up"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        (work / "files.tsv").write_text("".join(f"{p}\t{p.name}\n" for p in files))
        token = self.bench.sandbox.upload_token(self.bench.public, new_box=True)
        return self.bench.official(
            ["batch-upload", "--tsv", "files.tsv"], token, None, work
        )

    # -- downloads ------------------------------------------------------------

    def download_ours(self, accessions: list[str]) -> Measured:
        out = self.args.work / "ours-down"
        shutil.rmtree(out, ignore_errors=True)
        token = self.bench.sandbox.download_token(self.bench.public, accessions)
        return self.bench.ours(
            ["download", *self.args.ours_args, "--output-dir", str(out), *accessions],
            token,
        )

    def download_official(self, accessions: list[str]) -> Measured:
        work = self.args.work / "official-down"
        shutil.rmtree(work, ignore_errors=True)
        (work / "enc").mkdir(parents=True)
        token = self.bench.sandbox.download_token(self.bench.public, accessions)
        down = self.bench.official(
            ["download", "--output-dir", "enc"], token, None, work
        )
        dec = self.bench.official(
            ["decrypt", "--input-dir", "enc", "--output-dir", "plain"], None, None, work
        )
        return down[0] + dec[0], down[1] + dec[1], max(down[2], dec[2])

    # -- cases ----------------------------------------------------------------

    def cases(self, latency_ms: int) -> list[Case]:
        big, small = [self.bench.source], self.small
        big_bytes = self.bench.size
        small_bytes = sum(p.stat().st_size for p in small)
        plan = [
            ("big up", big, big_bytes, self.upload_ours, self.upload_official),
            ("small up", small, small_bytes, self.upload_ours, self.upload_official),
            (
                "big down",
                [self.big_accession],
                big_bytes,
                self.download_ours,
                self.download_official,
            ),
            (
                "small down",
                self.small_accessions,
                small_bytes,
                self.download_ours,
                self.download_official,
            ),
        ]
        found = []
        for name, what, size, ours, theirs in plan:
            if name not in self.args.cases:
                continue
            mine = self.measure(f"ours {name}", size, partial(ours, what))
            other = None
            if not self.args.skip_official:
                other = self.measure(f"official {name}", size, partial(theirs, what))
            found.append(Case(name, latency_ms, len(what), mine, other))
            print(f"  {latency_ms} ms {name}: {_brief(found[-1])}", flush=True)
        return found


def _small_files(folder: Path, count: int, size_kib: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"small-{i:03d}.bin" for i in range(count)]
    for path in paths:
        if not path.exists() or path.stat().st_size != size_kib * 1024:
            path.write_bytes(os.urandom(size_kib * 1024))
    return paths


def _brief(case: Case) -> str:
    theirs = f", official {case.official.wall_s:.1f} s" if case.official else ""
    ratio = f" ({case.ratio:.2f}x)" if case.ratio else ""
    return f"ours {case.ours.wall_s:.1f} s{theirs}{ratio}"


def _link_share(run: Run, total_mbps: float) -> float:
    return run.plain_bytes / run.wall_s / (total_mbps * 125_000)


def _per_file(run: Run, files: int) -> str:
    return f"{sum(run.requests.values()) / files:.1f}"


def _table(cases: list[Case], total_mbps: float) -> str:
    lines = [
        "| ms | case | official s | ours s | ratio | ours % link "
        "| peak RSS MiB (ours / official) | client CPU s/GiB (ours / official) "
        "| requests per file (ours / official) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for case in cases:
        ours, theirs = case.ours, case.official
        lines.append(
            f"| {case.latency_ms} | {case.name} ({case.files} × "
            f"{ours.plain_bytes / case.files / MiB:.3g} MiB) "
            f"| {f'{theirs.wall_s:.1f}' if theirs else '–'} | {ours.wall_s:.1f} "
            f"| {f'**{case.ratio:.2f}x**' if case.ratio else '–'} "
            f"| {_link_share(ours, total_mbps):.0%} "
            f"| {ours.rss_mib:.0f} / {f'{theirs.rss_mib:.0f}' if theirs else '–'} "
            f"| {ours.cpu_per_gib:.1f} / "
            f"{f'{theirs.cpu_per_gib:.1f}' if theirs else '–'} "
            f"| {_per_file(ours, case.files)} / "
            f"{_per_file(theirs, case.files) if theirs else '–'} |"
        )
    return "\n".join(lines)


def _verdicts(cases: list[Case], total_mbps: float) -> list[str]:
    notes = []
    for case in cases:
        if case.latency_ms != TARGETS_AT_MS:
            continue
        ratio_target, link_target = TARGETS[case.name]
        ratio = f"{case.ratio:.2f}x" if case.ratio else "n/a"
        met = case.ratio is not None and case.ratio >= ratio_target
        line = f"- {case.name}: {ratio} the official (target >= {ratio_target}x)"
        if link_target is not None:
            share = _link_share(case.ours, total_mbps)
            met = met and share >= link_target
            line += f", {share:.0%} of the link (target >= {link_target:.0%})"
        notes.append(f"{line}: {'met' if met else 'NOT met'}")
    worst = max(c.ours.rss_mib * MiB / MB for c in cases)
    verdict = "met" if worst <= RSS_LIMIT_MB else "NOT met"
    notes.append(
        f"- peak RSS of ours, worst case: {worst:.0f} MB "
        f"(target <= {RSS_LIMIT_MB} MB): {verdict}"
    )
    return notes


def _settings(ours_args: list[str]) -> str:
    if not ours_args:
        return "default settings of both clients"
    return f"ours with {' '.join(ours_args)}, the official client at its defaults"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latencies", default="10,40,100", help="round trips, ms")
    parser.add_argument("--connection-mbps", type=float, default=100)
    parser.add_argument("--total-mbps", type=float, default=1000)
    parser.add_argument("--big-mib", type=int, default=512)
    parser.add_argument("--small-files", type=int, default=60)
    parser.add_argument("--small-kib", type=int, default=128)
    parser.add_argument(
        "--work", type=Path, default=bench_transfer.REPO / ".bench" / "wan"
    )
    parser.add_argument("--tmpfs", type=Path, default=Path("/dev/shm"))
    parser.add_argument("--skip-official", action="store_true")
    parser.add_argument(
        "--cases",
        default=",".join(TARGETS),
        help="comma-separated subset of big-up, small-up, big-down, small-down",
    )
    parser.add_argument(
        "--ours-args",
        default="",
        metavar="OPTIONS",
        help="extra options for ours, e.g. '--max-workers 12 --part-size 16' "
        "(the targets are for the defaults)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="40 ms only, 32 MiB, 8 small files"
    )
    args = parser.parse_args()
    args.cases = {name.replace("-", " ").strip() for name in args.cases.split(",")}
    args.ours_args = shlex.split(args.ours_args)
    if args.cases - set(TARGETS):
        parser.error(f"--cases: unknown {', '.join(args.cases - set(TARGETS))}")
    if args.quick:
        args.latencies, args.big_mib, args.small_files = "40", 32, 8
    latencies = [int(ms) for ms in args.latencies.split(",")]
    started = time.monotonic()
    bench = WanBench(args)
    cases: list[Case] = []
    try:
        for latency_ms in latencies:
            bench.serve(latency_ms)
            cases += bench.cases(latency_ms)
    finally:
        bench.close()
    report = "\n".join(
        [
            f"WAN model: {args.connection_mbps:g} Mbit/s per connection, "
            f"{args.total_mbps:g} Mbit/s in total; round trips {args.latencies} ms; "
            f"{_settings(args.ours_args)}; one run each "
            f"({time.monotonic() - started:.0f} s in all)",
            "",
            _table(cases, args.total_mbps),
            "",
            f"Targets at {TARGETS_AT_MS} ms:",
            *_verdicts(cases, args.total_mbps),
        ]
    )
    print(report)
    (args.work / "results.md").write_text(report + "\n")


if __name__ == "__main__":
    main()
