"""Secrets under the local executor: every kind of job, no token in argv or logs.

One real `snakemake --cores 2` run whose jobs are a `shell:` rule, a `run:` rule
(spawned as a separate `python -m snakemake` process), a `script:` rule and a
group job, all reading a GHGA input and one writing a GHGA output. The keys and
the well-known URL are given as options, the tokens through the environment,
the private key is encrypted and its passphrase is in C4GH_PASSPHRASE. While
it runs, every process's argv is sampled; afterwards `.snakemake/log` and the
outputs are searched for the tokens and the passphrase.

Before the fix, Snakemake wrote `export SNAKEMAKE_STORAGE_GHGA_*_TOKEN='…'` into
the spawned job's command line and into its log (settings marked `env_var`).
"""

import base64
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from crypt4gh.keys.c4gh import encode_private_key

from snakemake_ghga.crypt4gh import keys
from snakemake_ghga.sandbox import Sandbox
from tests.plugin.conftest import archive_files
from tests.support.secret_watch import CmdlineWatch, files_holding
from tests.support.tools import tool

pytestmark = pytest.mark.slow

PASSPHRASE = "CANARY-local-passphrase-93b1"
SNAKEFILE = """
ACC = config["accession"]

rule all:
    input:
        "shell.txt", "run.txt", "script.txt", "grouped.txt",
        storage.ghga("ghga://upload/local/published.txt"),

rule by_shell:
    input: storage.ghga(f"ghga://{ACC}")
    output: "shell.txt"
    shell: "wc -c < {input} > {output}"

rule by_run:
    input: storage.ghga(f"ghga://{ACC}")
    output: "run.txt"
    run:
        open(output[0], "w").write(str(len(open(input[0], "rb").read())))

rule by_script:
    input: storage.ghga(f"ghga://{ACC}")
    output: "script.txt"
    script: "count.py"

rule grouped_a:
    input: storage.ghga(f"ghga://{ACC}")
    output: "grouped_a.txt"
    group: "g"
    shell: "cp {input} {output}"

rule grouped_b:
    input: "grouped_a.txt"
    output: "grouped.txt"
    group: "g"
    shell: "wc -c < {input} > {output}"

rule publish:
    input: "shell.txt", "run.txt", "script.txt", "grouped.txt"
    output: storage.ghga("ghga://upload/local/published.txt")
    run:
        shell("cat {input} > {output}")
"""
COUNT_SCRIPT = """
with open(snakemake.output[0], "w") as out:
    out.write(str(len(open(snakemake.input[0], "rb").read())))
"""


@dataclass
class LocalRun:
    result: "subprocess.CompletedProcess[str]"
    watch: CmdlineWatch
    secrets: dict[str, str]
    workdir: Path
    sandbox: Sandbox


@pytest.fixture(scope="module")
def local_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRun]:
    root = tmp_path_factory.mktemp("local-secrets")
    work = root / "work"
    work.mkdir()
    (work / "Snakefile").write_text(SNAKEFILE)
    (work / "count.py").write_text(COUNT_SCRIPT)
    secret, public = keys.generate_key_pair()
    keys.write_public_key(work / "key.pub", public)
    locked = base64.b64encode(encode_private_key(secret, PASSPHRASE.encode(), b"test"))
    (work / "key.sec").write_bytes(
        b"-----BEGIN CRYPT4GH ENCRYPTED PRIVATE KEY-----\n"
        + locked
        + b"\n-----END CRYPT4GH ENCRYPTED PRIVATE KEY-----\n"
    )
    (work / "key.sec").chmod(0o600)
    with Sandbox(root / "state") as sandbox:
        [accession] = archive_files(sandbox, root / "src", {"in.txt": b"x" * 5000})
        download = sandbox.download_token(public)
        upload = sandbox.upload_token(public)
        env = {
            **os.environ,
            "SNAKEMAKE_STORAGE_GHGA_DOWNLOAD_TOKEN": download,
            "SNAKEMAKE_STORAGE_GHGA_UPLOAD_TOKEN": upload,
            "C4GH_PASSPHRASE": PASSPHRASE,
        }
        secrets = {
            "download token": download.split(":", 1)[1],
            "upload token": upload.split(":", 1)[1],
            "passphrase": PASSPHRASE,
        }
        command = [
            tool("snakemake"), "--cores", "2", "--directory", str(work),
            "--snakefile", str(work / "Snakefile"),
            "--config", f"accession={accession}",
            "--storage-ghga-wkvs-url", sandbox.wkvs_url,
            "--storage-ghga-my-public-key", "key.pub",
            "--storage-ghga-my-private-key", "key.sec",
            "--verbose",  # logs each spawned job's command line
        ]  # fmt: skip
        with CmdlineWatch(secrets) as watch:
            result = subprocess.run(
                command, env=env, capture_output=True, text=True, timeout=300
            )
        yield LocalRun(result, watch, secrets, work, sandbox)


def test_local_every_job_kind_runs_with_options_and_env_tokens(
    local_run: LocalRun,
) -> None:
    result = local_run.result

    assert result.returncode == 0, result.stderr[-4000:]
    for name in ("shell.txt", "run.txt", "script.txt", "grouped.txt"):
        assert (local_run.workdir / name).read_text().strip() == "5000"
    aliases = {u.alias for u in local_run.sandbox.uploads()}
    assert "local/published.txt" in aliases


def test_local_no_secret_in_any_argv(local_run: LocalRun) -> None:
    assert local_run.watch.samples > 10
    assert sorted(local_run.watch.findings) == []


def test_local_no_secret_in_snakemake_logs_or_output(local_run: LocalRun) -> None:
    logs = local_run.workdir / ".snakemake" / "log"
    text = local_run.result.stdout + local_run.result.stderr

    assert list(logs.glob("*.log"))
    assert files_holding(local_run.secrets, [logs]) == []
    assert [n for n, v in local_run.secrets.items() if v in text] == []
