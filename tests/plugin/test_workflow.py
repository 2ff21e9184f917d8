"""A real `snakemake --cores 2` run of workflow_examples/snakemake/plugin_test.

Against a fresh sandbox that stages files (202 + Retry-After) for a moment: the
workflow reads three accessions and uploads two reports; a second run does
nothing; `--forcerun` keeps an equal upload and replaces one without a local
copy; a token for another key fails clearly.
Concurrency is shown from the sandbox's request log (order, not timing).
"""

import hashlib
import os
import random
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from snakemake_ghga.sandbox import Sandbox
from tests.conftest import KeyPair, make_key_pair
from tests.plugin.conftest import archive_files
from tests.support.tools import tool

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SNAKEFILE = REPO / "workflow_examples" / "snakemake" / "plugin_test" / "Snakefile"
MiB = 1024 * 1024
PREFIX = "plugin_test"
ALIASES = [f"{PREFIX}/sha256sums.txt", f"{PREFIX}/sizes.tsv"]


@dataclass
class Run:
    """One workflow directory wired to the sandbox."""

    sandbox: Sandbox
    keys: KeyPair
    workdir: Path
    contents: dict[str, bytes]
    env: dict[str, str]
    first: "subprocess.CompletedProcess[str] | None" = None
    first_log: int = 0  # request-log entries written by the first run

    def snakemake(self, *extra: str) -> subprocess.CompletedProcess[str]:
        command = [
            tool("snakemake"), "--cores", "2", "--snakefile", str(SNAKEFILE),
            "--directory", str(self.workdir),
            "--config", f"accessions={sorted(self.contents)}",
            "--storage-ghga-my-public-key", str(self.keys.public_path),
            "--storage-ghga-my-private-key", str(self.keys.secret_path),
            "--storage-ghga-part-size", "5", "--storage-ghga-max-workers", "2",
            "--keep-storage-local-copies", *extra,
        ]  # fmt: skip
        return subprocess.run(
            command,
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=300,
        )


def _env(sandbox: Sandbox, keys: KeyPair) -> dict[str, str]:
    """The environment a user sets: the sandbox's URL and both tokens."""
    return {
        "SNAKEMAKE_STORAGE_GHGA_WKVS_URL": sandbox.wkvs_url,
        "SNAKEMAKE_STORAGE_GHGA_DOWNLOAD_TOKEN": sandbox.download_token(keys.public),
        "SNAKEMAKE_STORAGE_GHGA_UPLOAD_TOKEN": sandbox.upload_token(keys.public),
    }


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    root = tmp_path_factory.mktemp("workflow")
    rng = random.Random(6)
    files = {
        "tumor.bam": rng.randbytes(25 * MiB + 1),
        "normal.vcf.gz": rng.randbytes(25 * MiB + 77),
        "notes.txt": rng.randbytes(25 * MiB - 5),
    }
    with Sandbox(root / "state", stage_delay_s=2) as sandbox:
        keys = make_key_pair(root / "keys", "user")
        contents = archive_files(sandbox, root / "sources", files)
        run = Run(sandbox, keys, root / "work", contents, _env(sandbox, keys))
        # The first run belongs to the fixture, so every test sees it whatever
        # order or subset of tests runs.
        run.first = run.snakemake()
        run.first_log = len(sandbox.request_log())
        yield run


def test_workflow_first_run_downloads_three_and_uploads_two(run: Run) -> None:
    result = run.first

    assert result is not None and result.returncode == 0, result and result.stderr
    sums = (run.workdir / f".snakemake/storage/ghga/upload/{ALIASES[0]}").read_text()
    expected = {
        f"{hashlib.sha256(c).hexdigest()}  {a}{ext}"
        for (a, c), ext in zip(
            sorted(run.contents.items()), [".bam", ".vcf.gz", ".txt"], strict=True
        )
    }
    assert set(sums.splitlines()) == expected
    for alias in ALIASES:
        upload = run.sandbox.wait_interrogated(alias)
        local = run.workdir / ".snakemake/storage/ghga/upload" / alias
        archived = {a.accession: a for a in run.sandbox.accessions()}
        assert upload.state == "interrogated", upload.failure_reason
        assert upload.accession is not None
        assert archived[upload.accession].decrypted_sha256 == (
            hashlib.sha256(local.read_bytes()).hexdigest()
        )


def test_workflow_staging_waits_overlap(run: Run) -> None:
    # Every accession got its first "202 staging" answer before any file was
    # ready: the plugin waited for all three together, not one after another.
    drs = [
        e for e in run.sandbox.request_log()[: run.first_log]
        if e["method"] == "GET" and e["path"].startswith("/dcs/objects/")
        and not e["path"].endswith("/envelopes")
    ]  # fmt: skip
    first_ready = next(i for i, e in enumerate(drs) if e["status"] == 200)
    staged_before = {e["path"] for e in drs[:first_ready] if e["status"] == 202}

    assert staged_before == {f"/dcs/objects/{a}" for a in run.contents}


def test_workflow_retrieves_files_concurrently(run: Run) -> None:
    # A file's envelope is fetched when its download starts. Retrieved one after
    # another, the second file's envelope would come only after the first
    # file's last part; here the second file started while the first was still
    # downloading. (Staging ends for all three within moments, so which file
    # comes third is timing; that two overlap is not.)
    log = run.sandbox.request_log()[: run.first_log]
    envelopes = [i for i, e in enumerate(log) if e["path"].endswith("/envelopes")]
    last_get: dict[str, int] = {}
    for i, entry in enumerate(log):
        if entry["method"] == "GET" and entry["path"].startswith("/s3/outbox/"):
            last_get[entry["path"]] = i

    assert len(envelopes) == 3
    assert len(last_get) == 3
    assert sorted(envelopes)[1] < min(last_get.values())


def test_workflow_second_run_does_nothing(run: Run) -> None:
    before = len(run.sandbox.request_log())

    result = run.snakemake()

    new = run.sandbox.request_log()[before:]
    assert result.returncode == 0, result.stderr
    assert "Nothing to be done" in result.stderr
    assert [e for e in new if e["path"].startswith(("/dcs/", "/s3/"))] == []
    assert [e for e in new if e["method"] in ("POST", "PUT", "PATCH", "DELETE")
            and not e["path"].endswith("/work-order-tokens")] == []  # fmt: skip


def _states(run: Run) -> list[str]:
    return [u.state for u in run.sandbox.uploads() if u.alias == ALIASES[1]]


def test_workflow_forcerun_with_same_output_keeps_the_upload(run: Run) -> None:
    # The local copy (--keep-storage-local-copies) equals the upload: remove()
    # keeps it and the re-run's store finds it there; nothing is sent.
    states_before = _states(run)
    before = len(run.sandbox.request_log())

    result = run.snakemake("--forcerun", "sizes", "--verbose")

    new = run.sandbox.request_log()[before:]
    output = result.stdout + result.stderr
    assert result.returncode == 0, result.stderr
    for name in ("DOWNLOAD", "UPLOAD"):
        sealed = run.env[f"SNAKEMAKE_STORAGE_GHGA_{name}_TOKEN"].split(":")[1]
        assert sealed not in output
    assert _states(run) == states_before
    assert [e for e in new if e["method"] in ("PUT", "POST", "PATCH", "DELETE")
            and not e["path"].endswith("/work-order-tokens")] == []  # fmt: skip


def test_workflow_forcerun_without_local_copy_replaces_the_upload(run: Run) -> None:
    (run.workdir / f".snakemake/storage/ghga/upload/{ALIASES[1]}").unlink()
    count_before = len(_states(run))

    result = run.snakemake("--forcerun", "sizes")

    states = _states(run)
    assert result.returncode == 0, result.stderr
    assert states[-2] == "cancelled"
    assert states[-1] in ("inbox", "interrogated")
    assert len(states) == count_before + 1


def test_workflow_token_for_other_key_fails_clearly(run: Run, tmp_path: Path) -> None:
    other = make_key_pair(tmp_path, "other")
    token = run.sandbox.download_token(other.public)
    env = {**run.env, "SNAKEMAKE_STORAGE_GHGA_DOWNLOAD_TOKEN": token}
    fresh = Run(run.sandbox, run.keys, tmp_path / "work", run.contents, env)

    result = fresh.snakemake()

    assert result.returncode != 0
    assert "cannot be opened with your private key" in result.stderr
    assert "(--storage-ghga-my-private-key)" in result.stderr
    assert token.split(":")[1] not in result.stdout + result.stderr


def _example_snakefile() -> str:
    text = (REPO / "docs" / "further.md").read_text()
    section = text[text.index("### Example") :]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_docs_example_workflow_runs(tmp_path: Path) -> None:
    # The Snakefile in docs/further.md, against a sandbox holding its two
    # accessions; the `summary` job reads uploads made earlier in the same run.
    (tmp_path / "Snakefile").write_text(_example_snakefile())
    with Sandbox(tmp_path / "state") as sandbox:
        archive_files(sandbox, tmp_path / "src", {"t.bam": b"tumor\n", "n.bam": b"n\n"})
        keys = make_key_pair(tmp_path / "keys", "user")
        env = _env(sandbox, keys)
        command = [
            tool("snakemake"), "--cores", "4", "--directory", str(tmp_path),
            "--storage-ghga-my-public-key", str(keys.public_path),
            "--storage-ghga-my-private-key", str(keys.secret_path),
            "--storage-ghga-max-workers", "8",
        ]  # fmt: skip
        result = subprocess.run(
            command,
            cwd=tmp_path,
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=300,
        )
        summary = sandbox.wait_interrogated("results/summary.tsv")
        archived = {a.accession: a for a in sandbox.accessions()}

    assert result.returncode == 0, result.stderr
    assert summary.accession is not None
    assert archived[summary.accession].decrypted_sha256 == (
        hashlib.sha256(b"6\t2\n").hexdigest()
    )


TAGGED_SNAKEFILE = """
storage wp_a:
    provider="ghga",

storage wp_b:
    provider="ghga",

rule both:
    input:
        a=storage.wp_a("ghga://{a}"),
        b=storage.wp_b("ghga://{b}"),
    output:
        "both.txt",
    shell:
        "cat {{input.a}} {{input.b}} > {{output}}"
"""


def test_tagged_providers_use_their_own_work_packages(tmp_path: Path) -> None:
    # Each token's work package holds one accession only: mixing up the tags
    # would make an input missing.
    with Sandbox(tmp_path / "state") as sandbox:
        archived = archive_files(
            sandbox, tmp_path / "src", {"a.txt": b"from A\n", "b.txt": b"from B\n"}
        )
        acc_a, acc_b = sorted(archived)
        keys = make_key_pair(tmp_path / "keys", "user")
        (tmp_path / "Snakefile").write_text(TAGGED_SNAKEFILE.format(a=acc_a, b=acc_b))
        token_a = sandbox.download_token(keys.public, [acc_a])
        token_b = sandbox.download_token(keys.public, [acc_b])
        command = [
            tool("snakemake"), "--cores", "1", "--directory", str(tmp_path),
            "--storage-ghga-my-public-key", str(keys.public_path),
            "--storage-ghga-my-private-key", str(keys.secret_path),
        ]  # fmt: skip
        env = {
            "SNAKEMAKE_STORAGE_GHGA_WKVS_URL": sandbox.wkvs_url,
            "SNAKEMAKE_STORAGE_GHGA_DOWNLOAD_TOKEN": (
                f"[wp_a::{token_a}, wp_b::{token_b}]"
            ),
        }
        result = subprocess.run(
            command,
            cwd=tmp_path,
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=300,
        )

    assert result.returncode == 0, result.stderr
    assert (tmp_path / "both.txt").read_text() == "from A\nfrom B\n"
