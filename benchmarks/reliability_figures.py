"""Regenerate docs/reliability.md: `python benchmarks/reliability_figures.py`.

Runs, against the local sandbox (snakemake_ghga.sandbox) and the real
`ghga-transfer` CLI in a child process:
  1. kill -9 trials at seeded random moments, per direction, then the same
     command again; plus one Ctrl-C trial per direction;
  2. a fault soak: mixed sizes with 5 % injected faults, 2 s URLs, 3 s WOTs;
  3. the bad-input, corrupt-part, secret-leak, hostile-server, network,
     interrupt and token-prompt tests (pytest, counted), with the exit time
     after Ctrl-C in each state the interrupt tests hold the CLI in;
and rewrites docs/reliability.md. `--quick` runs the CI-sized variant.
Takes about 10 minutes on a 2-core machine (about 2 with --quick).
"""

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from snakemake_ghga.sandbox import tokens  # noqa: E402
from tests.reliability import harness  # noqa: E402
from tests.reliability.harness import KillTrial, MiB, World  # noqa: E402

DOC = ROOT / "docs" / "reliability.md"
EXIT_TIMES = "exit_times.json"
SEED = 8


@dataclass(frozen=True)
class Settings:
    trials: int
    size_mib: int
    part_mib: int
    workers: int
    soak_files: int
    soak_max_mib: int


FULL = Settings(
    trials=20, size_mib=100, part_mib=8, workers=4, soak_files=50, soak_max_mib=100
)
QUICK = Settings(
    trials=4, size_mib=40, part_mib=5, workers=4, soak_files=50, soak_max_mib=12
)


def kill_trials(world: World, s: Settings) -> dict[str, list[KillTrial]]:
    source = harness.random_file(
        world.root / "src" / "data.bin", s.size_mib * MiB, SEED
    )
    accession = world.archive(source)
    found: dict[str, list[KillTrial]] = {}
    for direction in ("upload", "download"):
        duration, clean = harness.calibrate(
            world,
            direction,
            source,
            part_size_mib=s.part_mib,
            workers=s.workers,
            accession=accession,
        )
        trials = [
            harness.run_kill_trial(
                world,
                direction,
                n,
                source,
                delay_s=delay,
                clean_bytes=clean,
                part_size_mib=s.part_mib,
                workers=s.workers,
                accession=accession,
            )
            for n, delay in enumerate(harness.kill_delays(SEED, s.trials, duration))
        ]
        trials.append(
            harness.run_kill_trial(
                world,
                direction,
                1000,
                source,
                delay_s=0.0,
                clean_bytes=clean,
                part_size_mib=s.part_mib,
                workers=s.workers,
                accession=accession,
                signum=signal.SIGINT,
                after_parts=2,
            )
        )
        found[direction] = trials
        print(f"{direction}: {len(trials)} trials done", flush=True)
    return found


def soak(root: Path, s: Settings) -> harness.SoakResult:
    tokens.WORK_ORDER_TOKEN_VALID_S = 3  # the in-process sandbox issues 3 s WOTs
    world = World.start(root / "soak", fault_rate=0.05, url_ttl_s=2, seed=5)
    try:
        sizes = harness.soak_sizes(5, s.soak_files, s.soak_max_mib * MiB)
        started = time.monotonic()
        result = harness.run_soak(world, sizes)
        print(f"soak: {time.monotonic() - started:.0f} s", flush=True)
        return result
    finally:
        world.stop()


def pytest_counts(junit: Path) -> list[tuple[str, str, str]]:
    """(test file, test name, outcome) from a JUnit XML report."""
    rows = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error"):
                message = (child.get("message") or "").splitlines()[0][:140]
                outcome = f"FAILED: {message}"
            elif child.tag == "skipped":
                outcome = "skipped"
        rows.append(
            (case.get("classname", "").split(".")[-1], case.get("name", ""), outcome)
        )
    return rows


def run_pytest(root: Path) -> list[tuple[str, str, str]]:
    junit = root / "junit.xml"
    tests = [
        "tests/reliability/test_bad_inputs.py",
        "tests/reliability/test_corrupt_part.py",
        "tests/reliability/test_secrets.py",
        "tests/security/test_hostile_server.py",
        "tests/security/test_local_users.py",
        "tests/security/test_keep_work.py",
        "tests/security/test_network.py",
        "tests/security/test_interrupts.py",
        "tests/security/test_token_prompt.py",
    ]
    env = {**os.environ, "RELIABILITY_EXIT_TIMES": str(root / EXIT_TIMES)}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--junitxml={junit}",
            *tests,
        ],
        cwd=ROOT,
        env=env,
        check=False,
        capture_output=True,
    )
    return pytest_counts(junit)


def exit_times(root: Path) -> dict[str, float]:
    """State → seconds from SIGINT to exit, as the interrupt tests measured them."""
    path = root / EXIT_TIMES
    times: dict[str, float] = json.loads(path.read_text()) if path.exists() else {}
    return times


def _mib(n: int) -> str:
    return f"{n / MiB:.1f} MiB"


def kill_table(found: dict[str, list[KillTrial]], s: Settings) -> list[str]:
    lines = [
        "| Direction | Signal | Trials | Hit a running command | Byte-identical | "
        "Rerun exit 0 | Max re-sent | Mean re-sent | Limit (parts in flight) | "
        "Broken promises |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for direction, trials in found.items():
        for sig in ("SIGKILL", "SIGINT"):
            group = [t for t in trials if t.signal_name == sig]
            resent = [t.resent_bytes for t in group]
            broken = sum(1 for t in group if harness.trial_problems(t))
            lines.append(
                f"| {direction} | {sig} | {len(group)} | "
                f"{sum(t.killed_running for t in group)} | "
                f"{sum(t.identical for t in group)} | "
                f"{sum(t.rerun_exit == 0 for t in group)} | {_mib(max(resent))} | "
                f"{_mib(sum(resent) // len(resent))} | "
                f"{_mib(group[0].limit_bytes)} | {broken} |"
            )
    return lines


def problems_list(found: dict[str, list[KillTrial]]) -> list[str]:
    problems = [
        p
        for trials in found.values()
        for t in trials
        for p in harness.trial_problems(t)
    ]
    return problems or ["none"]


def render(
    s: Settings,
    found: dict[str, list[KillTrial]],
    soaked: harness.SoakResult,
    rows: list[tuple[str, str, str]],
    exits: dict[str, float],
    elapsed_s: float,
    quick: bool,
) -> str:
    passed = sum(1 for r in rows if r[2] == "passed")
    failed = [r for r in rows if r[2].startswith("FAILED")]
    out = [
        "# Reliability and security figures",
        "",
        "<!-- Generated by `python benchmarks/reliability_figures.py`; "
        "do not edit by hand. -->",
        "",
        "What these numbers promise: a transfer killed at any moment is finished by "
        "running the same command again, resends at most the parts in flight (one "
        "per worker; for an upload also one per worker whose answer was on its "
        "way), and "
        "ends byte-identical; faults and expiring credentials never produce a file "
        "reported done that is not; every bad input gets one line naming the cause "
        "and the fix; secrets never leave the process.",
        "",
        f"Run: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{platform.machine()} with {__import__('os').cpu_count()} cores, Python "
        f"{platform.python_version()}, {elapsed_s / 60:.1f} min"
        + (" (`--quick`: CI-sized)" if quick else "")
        + ". "
        "Everything runs on loopback against the sandbox; the CLI runs as a child "
        "process so it can be killed.",
        "",
        "## 1. Kill -9 and Ctrl-C, then the same command again",
        "",
        f"One {s.size_mib} MiB random file, {s.part_mib} MiB parts, "
        f"{s.workers} workers. "
        "Kill moments are seeded (seed 8) and uniform over 2–95 % of a clean run's "
        "wall time, so they land in key loading, upload creation, encryption, part "
        "transfers and the final close. Ctrl-C is sent once two parts have arrived. "
        "*Re-sent* is the object-store body bytes of the killed run plus the rerun, "
        "minus those of one clean run, from the sandbox's request log "
        "(`requests.jsonl`).",
        "",
        *kill_table(found, s),
        "",
        "Broken promises (rerun failed, traceback, not identical, too much re-sent, "
        "state files not 0600, state left after success, Ctrl-C not stopping):",
        "",
        *[f"- {p}" for p in problems_list(found)],
        "",
        "## 2. Fault soak",
        "",
        f"{soaked.files} files of 1 B to {s.soak_max_mib} MiB "
        f"({_mib(soaked.total_bytes)} in all), uploaded with one `--tsv` command and "
        "downloaded with one command, through a sandbox with `--fault-rate 0.05` "
        "(503s and bodies cut halfway), `--url-ttl 2` and work-order tokens valid "
        "for 3 s. A command that exits non-zero is run again (at most 4 times).",
        "",
        "| Figure | Value |",
        "|---|---|",
        f"| Faults injected | {soaked.faults_injected} |",
        f"| Work-order tokens issued (each valid 3 s) | {soaked.wot_requests} |",
        f"| Presigned URLs refused as expired (403) | {soaked.expired_url_refusals} |",
        "| Upload / download commands needed | "
        f"{soaked.upload_runs} / {soaked.download_runs} |",
        "| Exit codes of the last runs | "
        f"{soaked.last_exit[0]} / {soaked.last_exit[1]} |",
        f"| Files not byte-identical | {len(soaked.not_identical)} |",
        f"| Files reported done that were not | {len(soaked.wrongly_reported_done)} |",
        f"| Tracebacks printed | {soaked.tracebacks} |",
        "",
        "## 3. Bad inputs, corrupt parts, secrets, a hostile server, local users, "
        "keeping work, the network, interrupts",
        "",
        f"{len(rows)} tests in `tests/reliability/test_bad_inputs.py`, "
        "`test_corrupt_part.py`, `test_secrets.py` and "
        "`tests/security/test_hostile_server.py`, `test_local_users.py`, "
        "`test_keep_work.py`, `test_network.py`, `test_interrupts.py`, "
        "`test_token_prompt.py`: "
        f"{passed} passed, {len(failed)} failed. Each bad input must give a non-zero "
        "exit, exactly one stderr line naming the cause and the fix, no traceback, "
        "and leave nothing behind (temp dir, output dir and the box are checked). "
        "The hostile-server tests put a rewriting proxy between the CLI and the "
        "sandbox: each malformed or misleading answer must fail only its own file, "
        "in one line, with the summary printed, and nothing unverified may be "
        "reported as verified. The local-user tests plant state, symlinks and hard "
        "links as another uid and run a second transfer of a running one; the "
        "keep-work tests fail an upload's close and its journal writes (see "
        "security.md). The network tests refuse plain http to any host but "
        "loopback and send the parts through a real tinyproxy; the interrupt tests "
        "hold the CLI in each state below, send SIGINT and require exit 130 within "
        "2 s with the resume hint.",
        "",
        "| Test | Outcome |",
        "|---|---|",
        *[f"| `{name}` | {outcome.replace('|', '/')} |" for _, name, outcome in rows],
        "",
        "Seconds from Ctrl-C (SIGINT) to exit, per state (limit 2 s):",
        "",
        "| State | Exit after SIGINT |",
        "|---|---|",
        *[f"| {state} | {took:.2f} s |" for state, took in exits.items()],
        "",
        "## Reproduce",
        "",
        "```",
        "python benchmarks/reliability_figures.py          # this page (about 10 min)",
        "python benchmarks/reliability_figures.py --quick  # CI-sized",
        ".venv/bin/pytest tests/reliability                # the same checks as tests",
        "```",
        "",
    ]
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CI-sized run")
    parser.add_argument("--output", type=Path, default=DOC)
    args = parser.parse_args()
    s = QUICK if args.quick else FULL
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ghga-reliability-") as tmp:
        root = Path(tmp)
        world = World.start(root / "kill")
        try:
            found = kill_trials(world, s)
        finally:
            world.stop()
        soaked = soak(root, s)
        rows = run_pytest(root)
        exits = exit_times(root)
    elapsed_s = time.monotonic() - started
    text = render(s, found, soaked, rows, exits, elapsed_s, args.quick)
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
