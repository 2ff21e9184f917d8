"""Transfers: ghga-transfer vs the official ghga-connector 4.0.1, same sandbox.

Usage: python benchmarks/bench_transfer.py [--size-mib 2048] [--part-mib 64]
           [--work DIR] [--skip-official] [--extra-part-mib 512] [--repeat 3]
           [--sandbox-state tmpfs|disk|both] [--quick]

One sandbox (`ghga-transfer sandbox serve`, its own process) serves every run
of a placement: its state on tmpfs, then (`--sandbox-state both`, the default)
a new one with its state on disk, as a GHGA object store keeps it, whose
objects' cached pages are dropped before every run, so that downloads read
them from the disk; the server's disk work then limits how fast any client
can go. Each client runs as a child process, so wall time, user+sys CPU and
peak RSS come from os.wait4 for the client alone; request counts come from
the sandbox's request log. Runs: our upload with the temp dir on disk and on
tmpfs, the official batch-upload; our download to plaintext, the official
download + decrypt (summed). Every run waits until the sandbox's
interrogation of the previous upload is over, so no server work overlaps a
measurement. MB/s = 10^6 plaintext bytes per second of wall time; client CPU
s/GiB (user + sys of the client alone per GiB of plaintext) does not depend
on the server or on who else shares the cores. Each run is repeated
`--repeat` times in rounds whose order rotates; the table shows the run with
the median wall time and the range over the rounds, since writing new files
costs this VM's kernel a different amount from one run to the next.
"""

import argparse
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import rusage  # noqa: E402

from snakemake_ghga.crypt4gh import keys  # noqa: E402
from snakemake_ghga.sandbox.app import Sandbox  # noqa: E402
from tests.support.official_connector import (  # noqa: E402
    connector_executable,
    prepare_workdir,
)

BIN = Path(sys.executable).parent
MB = 1_000_000
MiB = 1024 * 1024


@dataclass
class Run:
    name: str
    wall_s: float
    cpu_s: float
    rss_mib: float
    requests: Counter[str]
    plain_bytes: int
    server_cpu_s: float = 0.0
    rounds: list["Run"] = field(default_factory=list)

    @property
    def mb_s(self) -> float:
        return self.plain_bytes / self.wall_s / MB

    @property
    def cpu_per_gib(self) -> float:
        return self.cpu_s / (self.plain_bytes / 1024**3)


def _measure(
    cmd: list[str], env: dict[str, str], cwd: Path, stdin: str | None = None
) -> tuple[float, float, float]:
    """Run cmd; return wall, user+sys CPU and its own peak RSS (MiB)."""
    usage = rusage.run(
        cmd,
        input_text=stdin or "",
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    return usage.wall_s, usage.cpu_s, usage.rss_mib


class Bench:
    """The sandbox process, keys, input file and helpers for one benchmark run."""

    def __init__(
        self,
        work: Path,
        state: Path,
        size: int,
        serve_args: Sequence[str] = (),
        *,
        cold_objects: bool = False,
    ) -> None:
        self.work, self.state, self.size = work, state, size
        self.cold_objects = cold_objects
        self.secret, self.public = keys.generate_key_pair()
        keys.write_private_key(work / "key.sec", self.secret)
        keys.write_public_key(work / "key.pub", self.public)
        self.source = work / f"input-{size}.bin"
        if not self.source.exists() or self.source.stat().st_size != size:
            _random_file(self.source, size)
        self.sandbox = Sandbox(state)
        self.keep: set[str] = set()  # accessions settle() keeps (default: first)
        self.server = self._serve(serve_args)

    def _serve(self, serve_args: Sequence[str]) -> "subprocess.Popen[bytes]":
        (self.state / "wkvs_url").unlink(missing_ok=True)
        command = [str(BIN / "ghga-transfer"), "sandbox", "serve"]
        server = subprocess.Popen(
            [*command, "--state", str(self.state), *serve_args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.wkvs_url = _wait_for(self.state / "wkvs_url").strip()
        return server

    def restart(self, serve_args: Sequence[str]) -> None:
        """Serve the same state again with other options (a new WAN model)."""
        self.close()
        self.server = self._serve(serve_args)

    @property
    def accession(self) -> str | None:
        """The archived file every download of the loopback runs uses."""
        return min(self.keep) if self.keep else None

    def close(self) -> None:
        self.server.terminate()
        self.server.wait()

    def log_mark(self) -> int:
        """Index into the request log; also starts the server CPU clock."""
        self._server_cpu0 = self.server_cpu()
        return len(self.sandbox.request_log())

    def server_cpu(self) -> float:
        """User+sys CPU seconds of the sandbox process so far."""
        fields = Path(f"/proc/{self.server.pid}/stat").read_text().rsplit(")", 1)[1]
        ticks = os.sysconf("SC_CLK_TCK")
        utime, stime = fields.split()[11:13]
        return (int(utime) + int(stime)) / ticks

    def server_cpu_since_mark(self) -> float:
        return self.server_cpu() - self._server_cpu0

    def counts(self, mark: int) -> Counter[str]:
        counts: Counter[str] = Counter()
        for entry in self.sandbox.request_log()[mark:]:
            counts[f"{entry['method']} {entry['path'].strip('/').split('/')[0]}"] += 1
        return counts

    def settle(self) -> None:
        """Wait until no upload is in state inbox (interrogation finished).

        Then keep only the archived files in `keep` (default: the first one),
        which the downloads use: nine 2 GiB copies on tmpfs would crowd the
        input out of the page cache.
        """
        while any(u.state in ("init", "inbox") for u in self.sandbox.uploads()):
            time.sleep(0.2)
        os.sync()  # no dirty pages of the previous run left for this one to flush
        for info in self.sandbox.accessions():
            if not self.keep:
                self.keep.add(info.accession)
            if info.accession not in self.keep:
                self.sandbox.remove_accession(info.accession)
        if self.cold_objects:
            _evict(self.state / "objects")

    def ours(self, args: list[str], token: str) -> tuple[float, float, float]:
        env = {
            **os.environ,
            "GHGA_WKVS_URL": self.wkvs_url,
            "GHGA_WORK_PACKAGE_TOKEN": token,
        }
        return _measure([str(BIN / "ghga-transfer"), *args, "--quiet"], env, self.work)

    def official(
        self, args: list[str], token: str | None, part: int | None, cwd: Path
    ) -> tuple[float, float, float]:
        """Run the official client; `part` None keeps its default part size."""
        prepare_workdir(cwd, self.secret, self.public)
        env = {k: v for k, v in os.environ.items() if not k.startswith("GHGA_")}
        env.update(
            GHGA_CONNECTOR_WKVS_API_URL=self.wkvs_url,
            HOME=str(cwd),
            NO_PROXY="127.0.0.1",
        )
        if part is not None:
            env["GHGA_CONNECTOR_PART_SIZE"] = str(part)
        cmd = [str(connector_executable()), *args]
        return _measure(cmd, env, cwd, f"{token}\n" if token else None)


def _evict(folder: Path) -> None:
    """Drop the (clean) cached pages of the files under `folder`, and only theirs.

    A disk-backed object store reads an archived file from its disks, not
    from the page cache that the run before filled.
    """
    for path in folder.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def _random_file(path: Path, size: int) -> None:
    with path.open("wb") as handle:
        for offset in range(0, size, 64 * MiB):
            handle.write(os.urandom(min(64 * MiB, size - offset)))


def _wait_for(path: Path, timeout_s: float = 30) -> str:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"the sandbox did not start ({path} missing)")
        time.sleep(0.05)
    return path.read_text()


def upload_ours(bench: Bench, alias: str, tmp_dir: Path, part_mib: int) -> Run:
    bench.settle()
    tmp_dir.mkdir(parents=True, exist_ok=True)
    mark = bench.log_mark()
    token = bench.sandbox.upload_token(bench.public)
    wall, cpu, rss = bench.ours(
        [
            "upload",
            "--alias",
            alias,
            "--tmp-dir",
            str(tmp_dir),
            "--part-size",
            str(part_mib),
            str(bench.source),
        ],
        token,
    )
    return Run(
        f"ours upload, temp dir {tmp_dir}",
        wall,
        cpu,
        rss,
        bench.counts(mark),
        bench.size,
        bench.server_cpu_since_mark(),
    )


def upload_official(bench: Bench, part_mib: int, alias: str) -> Run:
    bench.settle()
    work = bench.work / "official-up"
    work.mkdir(exist_ok=True)
    (work / "files.tsv").write_text(f"{bench.source}\t{alias}\n")
    mark = bench.log_mark()
    token = bench.sandbox.upload_token(bench.public)
    wall, cpu, rss = bench.official(
        ["batch-upload", "--tsv", "files.tsv"], token, part_mib * MiB, work
    )
    return Run(
        "official batch-upload",
        wall,
        cpu,
        rss,
        bench.counts(mark),
        bench.size,
        bench.server_cpu_since_mark(),
    )


def download_ours(bench: Bench, accession: str, out: Path, part_mib: int) -> Run:
    bench.settle()
    shutil.rmtree(out, ignore_errors=True)
    mark = bench.log_mark()
    token = bench.sandbox.download_token(bench.public, [accession])
    wall, cpu, rss = bench.ours(
        ["download", "--output-dir", str(out), "--part-size", str(part_mib), accession],
        token,
    )
    return Run(
        f"ours download -> plaintext on {out.parent.name}",
        wall,
        cpu,
        rss,
        bench.counts(mark),
        bench.size,
        bench.server_cpu_since_mark(),
    )


def download_official(bench: Bench, accession: str, part_mib: int) -> Run:
    bench.settle()
    work = bench.work / "official-down"
    shutil.rmtree(work, ignore_errors=True)
    (work / "enc").mkdir(parents=True)
    mark = bench.log_mark()
    token = bench.sandbox.download_token(bench.public, [accession])
    down = bench.official(
        ["download", "--output-dir", "enc"], token, part_mib * MiB, work
    )
    dec = bench.official(
        ["decrypt", "--input-dir", "enc", "--output-dir", "plain"],
        None,
        part_mib * MiB,
        work,
    )
    return Run(
        "official download + decrypt",
        down[0] + dec[0],
        down[1] + dec[1],
        max(down[2], dec[2]),
        bench.counts(mark),
        bench.size,
        bench.server_cpu_since_mark(),
    )


def _table(runs: list[Run]) -> str:
    lines = [
        "| run | wall s | MB/s (range) | client CPU s | client CPU s/GiB "
        "| peak RSS MiB "
        "| sandbox CPU s | requests |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(run.requests.items()))
        lines.append(
            f"| {run.name} | {run.wall_s:.1f} | {run.mb_s:.0f} {_spread(run)} | "
            f"{run.cpu_s:.1f} | "
            f"{run.cpu_per_gib:.1f} | {run.rss_mib:.0f} | {run.server_cpu_s:.1f} | "
            f"{counts} |"
        )
    return "\n".join(lines)


def _spread(run: Run) -> str:
    rates = sorted(r.mb_s for r in run.rounds)
    return f"({rates[0]:.0f}–{rates[-1]:.0f})" if len(rates) > 1 else ""


def _ratios(runs: dict[str, Run]) -> list[str]:
    notes = []
    pairs = [
        ("up-tmpfs", "official-up", 2.5),
        ("up-disk", "official-up", 2.0),
        ("down", "official-down", 2.0),
    ]
    for ours, theirs, target in pairs:
        if ours in runs and theirs in runs:
            speed = runs[ours].mb_s / runs[theirs].mb_s
            cpu = runs[ours].cpu_per_gib / runs[theirs].cpu_per_gib
            per_round = sorted(
                mine.mb_s / other.mb_s
                for mine, other in zip(
                    runs[ours].rounds, runs[theirs].rounds, strict=False
                )
            )
            spread = (
                f" (rounds {per_round[0]:.2f}–{per_round[-1]:.2f}x)"
                if len(per_round) > 1
                else ""
            )
            notes.append(
                f"- {runs[ours].name}: {speed:.2f}x the official throughput{spread} "
                f"(target >= {target}x), CPU/GiB {cpu:.2f}x (target <= 0.5x)"
            )
    return notes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=2048)
    parser.add_argument("--part-mib", type=int, default=64)
    parser.add_argument(
        "--extra-part-mib",
        type=int,
        default=0,
        help="also run ours with this part size (RSS check)",
    )
    parser.add_argument("--work", type=Path, default=REPO / ".bench" / "transfer")
    parser.add_argument("--tmpfs", type=Path, default=Path("/dev/shm"))
    parser.add_argument("--skip-official", action="store_true")
    parser.add_argument(
        "--repeat", type=int, default=3, help="rounds; medians are reported"
    )
    parser.add_argument(
        "--sandbox-state",
        choices=("tmpfs", "disk", "both"),
        default="both",
        help="where the sandbox keeps its state and objects (default both)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="64 MiB, 16 MiB parts, one round"
    )
    args = parser.parse_args()
    if args.quick:
        args.size_mib, args.part_mib, args.repeat = 64, 16, 1
    args.work.mkdir(parents=True, exist_ok=True)
    placements = (
        ["tmpfs", "disk"] if args.sandbox_state == "both" else [args.sandbox_state]
    )
    sections = [
        f"{args.size_mib} MiB random file, {args.part_mib} MiB parts, "
        f"default workers, median of {args.repeat} rounds (orders rotate); "
        "client measured alone "
        "(os.wait4), sandbox CPU from /proc (may include some interrogation)",
    ]
    for placement in placements:
        runs = _run_placement(args, placement)
        sections += [
            "",
            f"### Sandbox state on {placement}"
            + (
                ", objects read from the disk (page cache dropped)"
                if placement == "disk"
                else ""
            ),
            "",
            _table(list(runs.values())),
            "",
            *_ratios(runs),
        ]
    report = "\n".join(sections)
    print(report)
    (args.work / "results.md").write_text(report + "\n")


def _run_placement(args: argparse.Namespace, placement: str) -> dict[str, Run]:
    """Every run against a new sandbox whose state is on tmpfs or on disk."""
    on_disk = placement == "disk"
    state = (args.work if on_disk else args.tmpfs) / f"ghga-bench-sandbox-{os.getpid()}"
    bench = Bench(args.work, state, args.size_mib * MiB, cold_objects=on_disk)
    try:
        return _run_all(bench, args)
    finally:
        bench.close()
        shutil.rmtree(state, ignore_errors=True)
        shutil.rmtree(args.tmpfs / "ghga-bench-tmp", ignore_errors=True)


def _median(runs: list[Run]) -> Run:
    """The run with the median wall time, carrying every round for the spread."""
    middle = sorted(runs, key=lambda run: run.wall_s)[(len(runs) - 1) // 2]
    middle.rounds = runs
    return middle


def _run_round(
    jobs: list[tuple[str, Callable[[], Run]]], index: int, results: dict[str, list[Run]]
) -> None:
    """Run one round of jobs, starting at a different one each round."""
    shift = index % len(jobs)
    for name, job in jobs[shift:] + jobs[:shift]:
        results.setdefault(name, []).append(job())


def _run_all(bench: Bench, args: argparse.Namespace) -> dict[str, Run]:
    part, tmpfs = args.part_mib, args.tmpfs
    results: dict[str, list[Run]] = {}
    for i in range(args.repeat):
        uploads: list[tuple[str, Callable[[], Run]]] = [
            (
                "up-disk",
                partial(upload_ours, bench, f"disk{i}.bin", bench.work / "tmp", part),
            ),
            (
                "up-tmpfs",
                partial(
                    upload_ours, bench, f"tmpfs{i}.bin", tmpfs / "ghga-bench-tmp", part
                ),
            ),
        ]
        if not args.skip_official:
            uploads.append(
                (
                    "official-up",
                    partial(upload_official, bench, part, f"official{i}.bin"),
                )
            )
        _run_round(uploads, i, results)
    bench.settle()
    accession = bench.accession
    assert accession is not None, "no upload was archived"
    disk_out = bench.work / "disk" / "out"
    tmpfs_out = tmpfs / "ghga-bench-tmp" / "tmpfs" / "out"
    downloads: list[tuple[str, Callable[[], Run]]] = [
        ("down", partial(download_ours, bench, accession, disk_out, part)),
        ("down-tmpfs", partial(download_ours, bench, accession, tmpfs_out, part)),
    ]
    if not args.skip_official:
        downloads.append(
            ("official-down", partial(download_official, bench, accession, part))
        )
    for i in range(args.repeat):
        _run_round(downloads, i, results)
    runs = {name: _median(rounds) for name, rounds in results.items()}
    if args.extra_part_mib:
        extra = args.extra_part_mib
        runs["up-extra"] = upload_ours(
            bench, f"part{extra}.bin", tmpfs / "ghga-bench-tmp", extra
        )
        runs["up-extra"].name += f", {extra} MiB parts"
        runs["down-extra"] = download_ours(bench, accession, disk_out, extra)
        runs["down-extra"].name += f", {extra} MiB parts"
    return runs


if __name__ == "__main__":
    main()
