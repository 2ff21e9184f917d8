"""The cluster tier: the demo workflows with `snakemake --executor slurm`.

One local SLURM (tests/cluster/slurm.py) serves the whole session; each test
module runs its workflows once, in a module-scoped fixture, and its tests
assert on what that run left: outputs, the sandbox's request log, and every
place a secret could leak (argv sampled during the run, Snakemake's logs,
SLURM's job logs, `scontrol write batch_script`, SLURM's state directory).

Skipped where SLURM cannot run (no packages, not root) unless CI is set:
`.ci/run` (through `make test`) installs the packages, so in CI a missing
SLURM is a failure, not a skip.
"""

import os
import random
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from snakemake_ghga.sandbox import Sandbox
from tests.cluster.slurm import LocalSlurm, slurm_available
from tests.conftest import KeyPair, make_key_pair
from tests.support.secret_watch import CmdlineWatch
from tests.support.tools import BIN, tool

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "workflow_examples" / "snakemake" / "demo"
SLURM_ARGS = (
    "--executor", "slurm", "--jobs", "4",
    "--slurm-status-command", "squeue",
    "--slurm-init-seconds-before-status-checks", "1",
    "--slurm-no-account",
    "--default-resources", "runtime=10", "mem_mb=500",
)  # fmt: skip
RUN_TIMEOUT_S = 400


@pytest.fixture(scope="session")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSlurm]:
    reason = slurm_available()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"the cluster tier must run in CI: {reason}")
        pytest.skip(f"no local SLURM: {reason}")
    with LocalSlurm(tmp_path_factory.mktemp("slurm")) as cluster:
        yield cluster


def fastq(rng: random.Random, name: str, reads: int) -> bytes:
    """A small FASTQ file for the demo's statistics rule."""
    lines = []
    for read in range(reads):
        bases = "".join(rng.choice("ACGT") for _ in range(80))
        quality = "".join(chr(33 + rng.randint(20, 40)) for _ in range(80))
        lines.append(f"@{name}.{read}\n{bases}\n+\n{quality}\n")
    return "".join(lines).encode()


@dataclass
class ClusterGhga:
    """A sandbox with the demo's two FASTQ accessions and a user's tokens."""

    sandbox: Sandbox
    keys: KeyPair
    samples: dict[str, str]  # sample -> accession
    contents: dict[str, bytes]  # accession -> content
    download_token: str
    upload_token: str

    def secrets(self) -> dict[str, str]:
        """The secret halves of both tokens (the part before ':' is an id)."""
        return {
            "download token": self.download_token.split(":", 1)[1],
            "upload token": self.upload_token.split(":", 1)[1],
        }


@pytest.fixture(scope="module")
def ghga(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterGhga]:
    root = tmp_path_factory.mktemp("cluster-ghga")
    rng = random.Random(12)
    with Sandbox(root / "state") as sandbox:
        samples, contents = {}, {}
        for sample in ("tumor", "normal"):
            data = fastq(rng, sample, 3000)
            (root / f"{sample}.fastq").write_bytes(data)
            accession = sandbox.add_file(root / f"{sample}.fastq")
            samples[sample], contents[accession] = accession, data
        keys = make_key_pair(root / "keys", "user")
        yield ClusterGhga(
            sandbox,
            keys,
            samples,
            contents,
            sandbox.download_token(keys.public, sorted(contents)),
            sandbox.upload_token(keys.public),
        )


@dataclass
class ClusterRun:
    """One finished `snakemake --executor slurm` run and what it left."""

    workdir: Path
    result: "subprocess.CompletedProcess[str]"
    elapsed_s: float
    job_ids: list[str] = field(default_factory=list)

    @property
    def output(self) -> str:
        return self.result.stdout + self.result.stderr


def write_config(workdir: Path, ghga: ClusterGhga, prefix: str) -> None:
    """The demo's config.yaml: sample -> accession, and the upload prefix."""
    workdir.mkdir(parents=True, exist_ok=True)
    lines = ["samples:"] + [f"  {s}: {a}" for s, a in ghga.samples.items()]
    lines.append(f"upload_prefix: {prefix}")
    (workdir / "config.yaml").write_text("\n".join(lines) + "\n")


def run_snakemake(
    slurm: LocalSlurm,
    workdir: Path,
    snakefile: Path,
    env: dict[str, str],
    *args: str,
) -> ClusterRun:
    """Run snakemake on SLURM in workdir; return the run and its SLURM job ids."""
    before = set(job_ids(slurm))
    started = time.monotonic()
    result = subprocess.run(
        [tool("snakemake"), "--snakefile", str(snakefile), "--directory",
         str(workdir), "--configfile", str(workdir / "config.yaml"),
         *SLURM_ARGS, *args],
        env=slurm.env({**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", **env}),
        capture_output=True, text=True, timeout=RUN_TIMEOUT_S, cwd=workdir,
    )  # fmt: skip
    elapsed = time.monotonic() - started
    return ClusterRun(workdir, result, elapsed, sorted(set(job_ids(slurm)) - before))


def run_watched(
    slurm: LocalSlurm,
    runs: dict[str, tuple[Path, Path, dict[str, str], tuple[str, ...]]],
    secrets: dict[str, str],
) -> tuple[dict[str, ClusterRun], CmdlineWatch]:
    """Run several workflows at once while sampling every process's argv."""
    from concurrent.futures import ThreadPoolExecutor

    with CmdlineWatch(secrets) as watch, ThreadPoolExecutor(len(runs)) as pool:
        futures = {
            name: pool.submit(run_snakemake, slurm, workdir, snakefile, env, *args)
            for name, (workdir, snakefile, env, args) in runs.items()
        }
        done = {name: future.result() for name, future in futures.items()}
    return done, watch


def job_ids(slurm: LocalSlurm) -> list[str]:
    """Every job SLURM still remembers (MinJobAge=300 keeps finished ones)."""
    listing = subprocess.run(
        ["scontrol", "-o", "show", "job"],
        env=slurm.env(), capture_output=True, text=True, check=False,
    )  # fmt: skip
    return [
        word.removeprefix("JobId=")
        for line in listing.stdout.splitlines()
        for word in line.split()
        if word.startswith("JobId=")
    ]


def batch_scripts(slurm: LocalSlurm, ids: list[str]) -> str:
    """The stored batch script of each job, as `scontrol write batch_script`."""
    scripts = []
    for job_id in ids:
        answer = subprocess.run(
            ["scontrol", "write", "batch_script", job_id, "-"],
            env=slurm.env(), capture_output=True, text=True, check=False,
        )  # fmt: skip
        scripts.append(answer.stdout)
    return "\n".join(scripts)
