"""Shared harness for reliability trials: the sandbox plus `ghga-transfer` as a child.

Used by the pytest suite in this folder and by `benchmarks/reliability_figures.py`,
so the figures in docs/reliability.md come from exactly the code the tests run.
The sandbox runs in this process; the CLI runs as a separate process so it can be
killed with SIGKILL or interrupted with SIGINT at seeded random moments.
"""

import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from snakemake_ghga import crypt4gh as crypt
from snakemake_ghga.config import MiB
from snakemake_ghga.crypt4gh import keys
from snakemake_ghga.sandbox.app import Sandbox
from snakemake_ghga.sandbox.requestlog import RequestLogEntry
from snakemake_ghga.transfer.parts import download_part_size, upload_part_size
from tests.support.signals import default_signals

__all__ = [
    "KillTrial",
    "MiB",
    "World",
    "file_sha256",
    "random_file",
    "run_kill_trial",
    "s3_bytes",
]

GHGA = str(Path(sys.executable).parent / "ghga-transfer")
_SECRET_PREFIXES = ("C4GH_", "GHGA_", "SNAKEMAKE_STORAGE_GHGA_")


def random_file(path: Path, size: int, seed: int | None = None) -> Path:
    """Write `size` random bytes (seeded if `seed` is given) to `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed) if seed is not None else None
    with path.open("wb") as handle:
        left = size
        while left:
            n = min(left, 4 * MiB)
            handle.write(rng.randbytes(n) if rng else os.urandom(n))
            left -= n
    return path


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(4 * MiB):
            digest.update(block)
    return digest.hexdigest()


def s3_bytes(entries: list[RequestLogEntry], method: str) -> int:
    """Body bytes moved by object-store requests of `method` (every status)."""
    return sum(
        e["bytes"]
        for e in entries
        if e["method"] == method and e["path"].startswith("/s3")
    )


@dataclass
class World:
    """A running sandbox, a user key pair and helpers to run the CLI against it."""

    root: Path
    sandbox: Sandbox
    secret_path: Path
    public_path: Path
    public_key: bytes
    extra_env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def start(cls, root: Path, **sandbox_options: Any) -> "World":
        root.mkdir(parents=True, exist_ok=True)
        secret, public = keys.generate_key_pair()
        keys.write_private_key(root / "user.sec", secret)
        keys.write_public_key(root / "user.pub", public)
        sandbox = Sandbox(root / "sandbox", **sandbox_options).start()
        return cls(root, sandbox, root / "user.sec", root / "user.pub", public)

    def stop(self) -> None:
        self.sandbox.stop()

    def token_file(self, kind: str, accessions: list[str] | None = None) -> Path:
        """Write a fresh upload/download token to a 0600 file and return its path."""
        if kind == "upload":
            text = self.sandbox.upload_token(self.public_key)
        else:
            text = self.sandbox.download_token(self.public_key, accessions)
        path = self.root / f"token-{kind}-{time.monotonic_ns()}.txt"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(text + "\n")
        return path

    def env(self) -> dict[str, str]:
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(_SECRET_PREFIXES)
        }
        env.update(self.extra_env)
        return env

    def argv(
        self,
        verb: str,
        *args: str,
        token_file: Path,
        part_size_mib: int = 5,
        workers: int = 4,
        verbose: bool = False,
    ) -> list[str]:
        """The full `ghga-transfer` command line for `verb` against this sandbox."""
        return [
            GHGA,
            "-v" if verbose else "-q",
            verb,
            *args,
            "--wkvs-url",
            self.sandbox.wkvs_url,
            "--my-private-key",
            str(self.secret_path),
            "--my-public-key",
            str(self.public_path),
            "--token-file",
            str(token_file),
            "--part-size",
            str(part_size_mib),
            "--max-workers",
            str(workers),
        ]

    def run(
        self, argv: list[str], timeout_s: float = 600
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )

    def archive(self, path: Path) -> str:
        """Register `path` as a downloadable accession directly (no upload)."""
        return self.sandbox.add_file(path)

    def accession_sha256(self, alias: str, timeout_s: float = 120) -> str | None:
        """SHA-256 the Data Hub computed from the decrypted upload of `alias`."""
        info = self.sandbox.wait_interrogated(alias, timeout_s=timeout_s)
        if info.state != "interrogated" or info.accession is None:
            return None
        for acc in self.sandbox.accessions():
            if acc.accession == info.accession:
                return acc.decrypted_sha256
        return None


@dataclass(frozen=True)
class KillTrial:
    """One kill-and-rerun trial and what it cost."""

    direction: str
    number: int
    kill_after_s: float
    signal_name: str
    killed_running: bool
    first_exit: int | None
    rerun_exit: int
    identical: bool
    first_bytes: int  # object-store body bytes moved by the interrupted run
    moved_bytes: int  # object-store body bytes over both runs
    clean_bytes: int  # the same for one uninterrupted run
    limit_bytes: int  # the parts a kill can catch in flight
    leftover_modes: tuple[int, ...]  # modes of state files left by the killed run
    leftover_after_success: tuple[str, ...]
    rerun_stderr: str
    first_stderr: str

    @property
    def resent_bytes(self) -> int:
        return max(0, self.moved_bytes - self.clean_bytes)


def _files_under(directory: Path) -> Iterator[Path]:
    if directory.exists():
        yield from (p for p in directory.rglob("*") if p.is_file())


def _state_files(directory: Path, direction: str) -> list[Path]:
    """Resume state (temp, journal, partial output); not the finished output."""
    if direction == "upload":
        return list(_files_under(directory))
    return [p for p in _files_under(directory) if p.name.startswith(".")]


def _wait_for_parts(
    world: World, proc: "subprocess.Popen[str]", mark: int, method: str, parts: int
) -> None:
    """Wait until `parts` object-store requests succeeded (or the command ended)."""
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        done = [
            e
            for e in world.sandbox.request_log()[mark:]
            if e["method"] == method
            and e["path"].startswith("/s3")
            and e["status"] in (200, 206)
        ]
        if len(done) >= parts:
            return
        time.sleep(0.01)


def _interrupt(
    proc: "subprocess.Popen[str]", delay_s: float, signum: int
) -> tuple[bool, int | None]:
    """Send `signum` after `delay_s` if still running; return (hit, exit code)."""
    deadline = time.monotonic() + delay_s
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.005)
    hit = proc.poll() is None
    if hit:
        proc.send_signal(signum)
    try:
        code = proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        code = None
    return hit, code


def run_kill_trial(
    world: World,
    direction: str,
    number: int,
    source: Path,
    *,
    delay_s: float,
    clean_bytes: int,
    part_size_mib: int,
    workers: int,
    signum: int = signal.SIGKILL,
    accession: str | None = None,
    after_parts: int = 0,
) -> KillTrial:
    """Start the transfer, signal it after `delay_s`, rerun the same command.

    Upload trials use alias `trial-<number>` and a per-trial --tmp-dir; download
    trials a per-trial --output-dir. Identity is checked against the Data Hub's
    SHA-256 of the decrypted upload, or the downloaded bytes.
    """
    work = world.root / f"{direction}-{signal.Signals(signum).name}-{number}"
    state_dir = work / ("tmp" if direction == "upload" else "out")
    state_dir.mkdir(parents=True)
    if direction == "upload":
        token = world.token_file("upload")
        args = [str(source), "--alias", f"trial-{number}", "--tmp-dir", str(state_dir)]
        method = "PUT"
    else:
        assert accession is not None
        token = world.token_file("download", [accession])
        args = [accession, "--output-dir", str(state_dir)]
        method = "GET"
    argv = world.argv(
        direction, *args, token_file=token, part_size_mib=part_size_mib, workers=workers
    )
    mark = len(world.sandbox.request_log())
    with (work / "first.err").open("w+") as err:
        proc = subprocess.Popen(
            argv,
            env=world.env(),
            stdout=subprocess.DEVNULL,
            stderr=err,
            text=True,
            preexec_fn=default_signals,  # SIGINT may be ignored in a background job
        )
        if after_parts:
            _wait_for_parts(world, proc, mark, method, after_parts)
        hit, first_exit = _interrupt(proc, delay_s, signum)
        err.seek(0)
        first_stderr = err.read()
    time.sleep(0.1)  # let the server log the requests the signal cut
    first_bytes = s3_bytes(world.sandbox.request_log()[mark:], method)
    modes = tuple(p.stat().st_mode & 0o777 for p in _state_files(state_dir, direction))
    rerun = world.run(argv)
    if direction == "upload":
        identical = rerun.returncode == 0 and world.accession_sha256(
            f"trial-{number}"
        ) == file_sha256(source)
    else:
        outputs = list(state_dir.iterdir())
        identical = (
            rerun.returncode == 0
            and len(outputs) == 1
            and file_sha256(outputs[0]) == file_sha256(source)
        )
    time.sleep(0.2)  # let the server log the last cut requests of the killed run
    moved = s3_bytes(world.sandbox.request_log()[mark:], method)
    leftovers = tuple(str(p) for p in _state_files(state_dir, direction))
    return KillTrial(
        direction=direction,
        number=number,
        kill_after_s=delay_s,
        signal_name=signal.Signals(signum).name,
        killed_running=hit,
        first_exit=first_exit,
        rerun_exit=rerun.returncode,
        identical=identical,
        first_bytes=first_bytes,
        moved_bytes=moved,
        clean_bytes=clean_bytes,
        limit_bytes=in_flight_parts(direction, workers)
        * part_bytes(direction, part_size_mib, source.stat().st_size),
        leftover_modes=modes,
        leftover_after_success=leftovers,
        rerun_stderr=rerun.stderr,
        first_stderr=first_stderr,
    )


def calibrate(
    world: World,
    direction: str,
    source: Path,
    *,
    part_size_mib: int,
    workers: int,
    accession: str | None = None,
) -> tuple[float, int]:
    """Two uninterrupted runs: (fastest wall seconds, object-store bytes moved)."""
    first = _calibrate_once(
        world, direction, source, part_size_mib, workers, accession, 0
    )
    second = _calibrate_once(
        world, direction, source, part_size_mib, workers, accession, 1
    )
    if first[1] != second[1]:
        raise RuntimeError(f"clean runs moved {first[1]} and {second[1]} bytes")
    return min(first[0], second[0]), first[1]


def _calibrate_once(
    world: World,
    direction: str,
    source: Path,
    part_size_mib: int,
    workers: int,
    accession: str | None,
    number: int,
) -> tuple[float, int]:
    work = world.root / f"calibrate-{direction}-{number}-{time.monotonic_ns()}"
    state_dir = work / ("tmp" if direction == "upload" else "out")
    state_dir.mkdir(parents=True)
    if direction == "upload":
        token = world.token_file("upload")
        args = [str(source), "--alias", work.name, "--tmp-dir", str(state_dir)]
        method = "PUT"
    else:
        token = world.token_file("download", [accession] if accession else None)
        args = [str(accession), "--output-dir", str(state_dir)]
        method = "GET"
    argv = world.argv(
        direction, *args, token_file=token, part_size_mib=part_size_mib, workers=workers
    )
    mark = len(world.sandbox.request_log())
    started = time.monotonic()
    done = world.run(argv)
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        raise RuntimeError(f"calibration {direction} failed: {done.stderr}")
    time.sleep(0.1)
    return elapsed, s3_bytes(world.sandbox.request_log()[mark:], method)


def part_bytes(direction: str, part_size_mib: int, plain_size: int) -> int:
    """The size of one part on the wire: both directions round the requested
    part size up to whole 65,564-byte cipher segments."""
    if direction == "download":
        return download_part_size(part_size_mib * MiB)
    return upload_part_size(crypt.encrypted_size(plain_size), part_size_mib * MiB)


def kill_delays(seed: int, count: int, duration_s: float) -> list[float]:
    """Seeded kill moments, uniform over the first 95 % of a clean run."""
    rng = random.Random(seed)
    return [rng.uniform(0.02, 0.95) * duration_s for _ in range(count)]


def encrypted_size_of(plain_size: int) -> int:
    return crypt.encrypted_size(plain_size)


def in_flight_parts(direction: str, workers: int) -> int:
    """Parts a kill can catch unconfirmed: one per worker, and for an upload
    also a part per worker whose body is sent and whose answer is on its way
    (a sent PUT frees its worker's slot for the next part)."""
    return 2 * workers if direction == "upload" else workers


def trial_problems(trial: KillTrial) -> list[str]:
    """Every promise this trial broke, one line each (empty: all kept)."""
    label = (
        f"{trial.direction} {trial.signal_name} trial {trial.number} "
        f"(at {trial.kill_after_s:.2f} s)"
    )
    problems = []
    if trial.rerun_exit != 0:
        last = trial.rerun_stderr.strip().splitlines()[-1:] or [""]
        problems.append(f"{label}: rerun exit {trial.rerun_exit}: {last[0]}")
    if "Traceback" in trial.rerun_stderr + trial.first_stderr:
        problems.append(f"{label}: traceback printed")
    if not trial.identical:
        problems.append(f"{label}: result not byte-identical")
    if trial.resent_bytes > trial.limit_bytes:
        problems.append(
            f"{label}: re-sent {trial.resent_bytes} bytes, more than the parts in "
            f"flight ({trial.limit_bytes})"
        )
    if set(trial.leftover_modes) - {0o600}:
        modes = sorted({oct(m) for m in trial.leftover_modes})
        problems.append(f"{label}: resume state files with modes {modes}")
    if (
        trial.signal_name == "SIGINT"
        and trial.killed_running
        and (trial.first_bytes >= trial.clean_bytes or not trial.leftover_modes)
    ):
        problems.append(
            f"{label}: Ctrl-C did not stop the transfer: the interrupted run moved "
            f"{trial.first_bytes} of {trial.clean_bytes} bytes and left no resume state"
        )
    if trial.leftover_after_success:
        problems.append(f"{label}: left behind {list(trial.leftover_after_success)}")
    return problems


@dataclass(frozen=True)
class SoakResult:
    """What a fault soak did and found."""

    files: int
    total_bytes: int
    upload_runs: int
    download_runs: int
    faults_injected: int
    expired_url_refusals: int
    wot_requests: int
    wrongly_reported_done: list[str]
    not_identical: list[str]
    tracebacks: int
    last_exit: tuple[int, int]


def soak_sizes(seed: int, count: int, max_size: int) -> list[int]:
    """Mixed sizes from 1 B to max_size: the edges plus a seeded log-uniform spread."""
    rng = random.Random(seed)
    edges = [1, 65_535, 65_536, 65_537, max_size]
    spread = [
        max(1, int(2 ** rng.uniform(0, max_size.bit_length() - 1)))
        for _ in range(count - len(edges))
    ]
    return edges + spread


def _reported(stdout: str, verb: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith(verb)]


def run_soak(
    world: World, sizes: list[int], *, part_size_mib: int = 5, max_runs: int = 4
) -> SoakResult:
    """Upload then download every file through a faulty sandbox; rerun until done.

    After every run, each file the CLI reported as done is checked against the
    Data Hub's SHA-256 (uploads) or the bytes on disk (downloads).
    """
    src = world.root / "soak-src"
    files = [random_file(src / f"f{i:03d}-{n}.bin", n) for i, n in enumerate(sizes)]
    digests = {p.name: file_sha256(p) for p in files}
    tsv = world.root / "soak.tsv"
    tsv.write_text("".join(f"{p}\t{p.name}\n" for p in files))
    mark = len(world.sandbox.request_log())
    wrong: list[str] = []
    tracebacks = 0
    up_token = world.token_file("upload")
    tmp_dir = world.root / "soak-tmp"
    tmp_dir.mkdir()
    up_runs, up_exit = 0, -1
    while up_runs < max_runs and up_exit != 0:
        up_runs += 1
        done = world.run(
            world.argv(
                "upload",
                "--tsv",
                str(tsv),
                "--tmp-dir",
                str(tmp_dir),
                token_file=up_token,
                part_size_mib=part_size_mib,
            )
        )
        up_exit, tracebacks = (
            done.returncode,
            tracebacks + done.stderr.count("Traceback"),
        )
        for line in _reported(done.stdout, "uploaded "):
            alias = line.split(" as ")[1].split(" ")[0]
            if world.accession_sha256(alias) != digests[alias]:
                wrong.append(f"upload {alias}")
    accessions = {}
    for path in files:
        info = world.sandbox.wait_interrogated(path.name, timeout_s=300)
        accessions[info.accession] = path.name
    down_token = world.token_file("download", [a for a in accessions if a])
    out = world.root / "soak-out"
    down_runs, down_exit = 0, -1
    while down_runs < max_runs and down_exit != 0:
        down_runs += 1
        done = world.run(
            world.argv(
                "download",
                *[a for a in accessions if a],
                "--output-dir",
                str(out),
                token_file=down_token,
                part_size_mib=part_size_mib,
            )
        )
        down_exit = done.returncode
        tracebacks += done.stderr.count("Traceback")
        for line in _reported(done.stdout, "GHGA"):
            accession, path = (
                line.split(" ")[0],
                Path(line.split(" to ")[1].split(" (")[0]),
            )
            if file_sha256(path) != digests.get(accessions.get(accession, ""), "?"):
                wrong.append(f"download {accession}")
    not_identical = [
        name
        for accession, name in accessions.items()
        if accession is None
        or not (out / f"{accession}.bin").is_file()
        or file_sha256(out / f"{accession}.bin") != digests[name]
    ]
    log = world.sandbox.request_log()[mark:]
    return SoakResult(
        files=len(files),
        total_bytes=sum(sizes),
        upload_runs=up_runs,
        download_runs=down_runs,
        faults_injected=sum(1 for e in log if e["fault"]),
        expired_url_refusals=sum(
            1 for e in log if e["path"].startswith("/s3") and e["status"] == 403
        ),
        wot_requests=sum(
            1 for e in log if e["method"] == "POST" and "work-order-tokens" in e["path"]
        ),
        wrongly_reported_done=wrong,
        not_identical=not_identical,
        tracebacks=tracebacks,
        last_exit=(up_exit, down_exit),
    )
