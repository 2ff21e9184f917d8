"""The storage plugin on a one-node SLURM: 20 GHGA inputs, 20 GHGA outputs.

    python benchmarks/bench_cluster.py [--files 20] [--size-mib 2] [--jobs 20]

Starts a local SLURM (tests/cluster/slurm.py; Debian `slurmctld slurmd
slurm-client munge rsync`, root) and a sandbox, archives N random files, and
runs a workflow of N jobs (`cp` one GHGA input to one GHGA output) with
`snakemake --executor slurm`, once with the default shared file system and
once with `--shared-fs-usage none` + `snakemake-storage-plugin-fs`. Prints, per
mode: wall time, transfers per file (downloads per accession from the DCS
envelope requests, upload records per alias), bytes moved (object GETs and
PUTs against the plaintext total) and the API requests made.

Everything runs on one machine: SLURM's per-job overhead (a Snakemake start
inside every job) dominates, not the transfers. Noisy on a shared machine.
"""

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from snakemake_ghga.crypt4gh.keys import (  # noqa: E402
    generate_key_pair,
    write_private_key,
    write_public_key,
)
from snakemake_ghga.sandbox import Sandbox  # noqa: E402
from tests.cluster.conftest import run_snakemake  # noqa: E402
from tests.cluster.slurm import LocalSlurm, slurm_available  # noqa: E402

SNAKEFILE = """
ACC = config["accessions"]
MODE = config["mode"]

rule all:
    input:
        storage.ghga(
            expand("ghga://upload/bench/{m}/{i}.out", m=MODE, i=range(len(ACC)))
        ),

rule copy:
    input:
        lambda w: storage.ghga(f"ghga://{ACC[int(w.i)]}"),
    output:
        storage.ghga("ghga://upload/bench/{mode}/{i}.out"),
    shell:
        "cp {input} {output}"
"""
MiB = 1024 * 1024


def _archive(sandbox: Sandbox, root: Path, files: int, size: int) -> dict[str, int]:
    """Archive `files` random files of `size` bytes; accession -> size."""
    import random

    rng = random.Random(20)
    sizes = {}
    for number in range(files):
        path = root / "src" / f"f{number}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(size))
        sizes[sandbox.add_file(path)] = size
    return sizes


def _run_mode(
    slurm: LocalSlurm,
    sandbox: Sandbox,
    accessions: list[str],
    root: Path,
    mode: str,
    jobs: int,
) -> dict[str, object]:
    work = root / mode
    work.mkdir()
    secret, public = generate_key_pair()
    write_private_key(work / "key.sec", secret)
    write_public_key(work / "key.pub", public)
    (work / "Snakefile").write_text(SNAKEFILE)
    (work / "config.yaml").write_text(
        f"mode: {mode}\naccessions: [{', '.join(accessions)}]\n"
    )
    env = {
        "SNAKEMAKE_STORAGE_GHGA_DOWNLOAD_TOKEN": sandbox.download_token(public),
        "SNAKEMAKE_STORAGE_GHGA_UPLOAD_TOKEN": sandbox.upload_token(public),
    }
    args = [
        "--jobs", str(jobs),
        "--storage-ghga-wkvs-url", sandbox.wkvs_url,
        "--storage-ghga-my-public-key", str(work / "key.pub"),
        "--storage-ghga-my-private-key", str(work / "key.sec"),
    ]  # fmt: skip
    if mode == "none":
        args += ["--shared-fs-usage", "none", "--default-storage-provider", "fs",
                 "--default-storage-prefix", str(root / "fs-store")]  # fmt: skip
    before = len(sandbox.request_log())
    started = time.monotonic()
    run = run_snakemake(slurm, work, work / "Snakefile", env, *args)
    wall = time.monotonic() - started
    if run.result.returncode != 0:
        sys.exit(f"{mode}: snakemake failed:\n{run.output[-4000:]}")
    log = sandbox.request_log()[before:]
    uploads = Counter(
        u.alias for u in sandbox.uploads() if u.alias.startswith(f"bench/{mode}/")
    )
    downloads = Counter(
        e["path"].split("/")[3] for e in log if e["path"].endswith("/envelopes")
    )
    return {
        "wall_s": wall,
        "slurm_jobs": len(run.job_ids),
        "downloads_per_file": sorted(set(downloads.values())),
        "uploads_per_file": sorted(set(uploads.values())),
        "get_bytes": sum(
            e["bytes"] for e in log if e["method"] == "GET" and "/s3/" in e["path"]
        ),
        "put_bytes": sum(e["bytes"] for e in log if e["method"] == "PUT"),
        "api_requests": sum(1 for e in log if not e["path"].startswith("/s3/")),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--size-mib", type=float, default=2.0)
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--modes", nargs="+", default=["shared", "none"])
    parser.add_argument(
        "--keep", type=Path, help="work here and keep it (default: tmp)"
    )
    options = parser.parse_args()
    reason = slurm_available()
    if reason is not None:
        sys.exit(f"cannot run: {reason}")
    size = int(options.size_mib * MiB)
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp:
        root = options.keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        with LocalSlurm(root / "slurm") as slurm, Sandbox(root / "sandbox") as sandbox:
            # Only these: a run's uploads become accessions too, once interrogated.
            accessions = list(_archive(sandbox, root, options.files, size))
            results = {
                mode: _run_mode(slurm, sandbox, accessions, root, mode, options.jobs)
                for mode in options.modes
            }
    plain = options.files * size
    print(
        f"{options.files} inputs and {options.files} outputs of "
        f"{options.size_mib:g} MiB; plaintext {plain / MiB:.0f} MiB each way"
    )
    print(
        "| mode | wall time | SLURM jobs | downloads per input | uploads per output "
        "| bytes GET / plaintext | bytes PUT / plaintext | API requests |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for mode, r in results.items():
        label = "shared FS" if mode == "shared" else "`--shared-fs-usage none`"
        print(
            f"| {label} | {r['wall_s']:.0f} s | {r['slurm_jobs']} "
            f"| {r['downloads_per_file']} | {r['uploads_per_file']} "
            f"| {r['get_bytes'] / plain:.3f} | {r['put_bytes'] / plain:.3f} "
            f"| {r['api_requests']} |"
        )


if __name__ == "__main__":
    main()
