"""kill -9 and Ctrl-C at seeded random moments, then the same command again.

Reduced for CI (4 trials per direction, 40 MiB, 5 MiB parts); the figures
script runs the full count on 100 MiB. Every trial must end byte-identical and
re-send at most the parts in flight (one per worker, two for uploads) (measured in the sandbox's request log).
"""

import signal
import time
from pathlib import Path

import pytest

from snakemake_ghga import crypt4gh as crypt

from .harness import (
    KillTrial,
    MiB,
    World,
    calibrate,
    kill_delays,
    part_bytes,
    random_file,
    run_kill_trial,
    trial_problems,
)

pytestmark = pytest.mark.slow

SIZE = 40 * MiB
PART_MIB = 5
WORKERS = 4
TRIALS = 4
SEED = 8


@pytest.fixture(scope="module")
def source(world: World) -> Path:
    return random_file(world.root / "src" / "data.bin", SIZE, seed=SEED)


@pytest.fixture(scope="module")
def accession(world: World, source: Path) -> str:
    return world.archive(source)


def _check(trial: KillTrial) -> None:
    problems = trial_problems(trial)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("direction", ["upload", "download"])
def test_kill_9_at_random_moments_resumes_byte_identical(
    world: World, source: Path, accession: str, direction: str
) -> None:
    duration, clean = calibrate(
        world,
        direction,
        source,
        part_size_mib=PART_MIB,
        workers=WORKERS,
        accession=accession,
    )
    trials = [
        run_kill_trial(
            world,
            direction,
            n,
            source,
            delay_s=delay,
            clean_bytes=clean,
            part_size_mib=PART_MIB,
            workers=WORKERS,
            accession=accession,
        )
        for n, delay in enumerate(kill_delays(SEED, TRIALS, duration))
    ]
    problems = [p for trial in trials for p in trial_problems(trial)]
    assert not problems, "\n".join(problems)
    # the kills must land while the command runs, or nothing was tested
    assert sum(t.killed_running for t in trials) >= TRIALS - 1
    assert all(t.first_exit == -signal.SIGKILL for t in trials if t.killed_running)


@pytest.mark.parametrize("direction", ["upload", "download"])
def test_ctrl_c_stops_cleanly_says_how_to_resume_and_resumes(
    world: World, source: Path, accession: str, direction: str
) -> None:
    _, clean = calibrate(
        world,
        direction,
        source,
        part_size_mib=PART_MIB,
        workers=WORKERS,
        accession=accession,
    )
    trial = run_kill_trial(
        world,
        direction,
        100,
        source,
        delay_s=0.0,
        clean_bytes=clean,
        part_size_mib=PART_MIB,
        workers=WORKERS,
        accession=accession,
        signum=signal.SIGINT,
        after_parts=2,
    )
    assert trial.killed_running
    assert trial.first_exit == 130, trial.first_stderr
    assert "Traceback" not in trial.first_stderr
    assert "rerun the same command to resume" in trial.first_stderr
    assert trial.first_bytes < trial.clean_bytes and trial.leftover_modes, (
        f"Ctrl-C did not stop the {direction}: the interrupted run went on to move "
        f"{trial.first_bytes} of {trial.clean_bytes} bytes and left no resume state"
    )
    _check(trial)


def test_kill_9_after_every_part_but_before_close_resumes(
    world: World, source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The narrowest window: all parts are confirmed, the close is in flight."""
    from snakemake_ghga.sandbox import ucs
    from snakemake_ghga.sandbox.problems import HttpProblem

    original, calls = ucs._close_upload, []

    def slow_first_close(ctx: object, request: object) -> object:
        calls.append(1)
        if len(calls) == 1:  # the killed run's close never lands
            time.sleep(3)
            raise HttpProblem(503, "serviceUnavailable", "test: close lost")
        return original(ctx, request)

    monkeypatch.setattr(ucs, "_close_upload", slow_first_close)
    parts = -(-crypt.encrypted_size(SIZE) // part_bytes("upload", PART_MIB, SIZE))
    trial = run_kill_trial(
        world,
        "upload",
        200,
        source,
        delay_s=0.3,
        clean_bytes=crypt.encrypted_size(SIZE),
        part_size_mib=PART_MIB,
        workers=WORKERS,
        after_parts=parts,
    )
    assert trial.killed_running
    assert trial_problems(trial) == []
