"""The demo workflows (storage plugin and rule wrappers) on SLURM, in both modes.

Each mode is one module-scoped fixture that runs both demo workflows at once on
the local SLURM, while every process's argv is sampled; the tests then assert
on what the runs left.

- `shared`: the default shared file system. Plugin settings as options (keys,
  well-known URL), tokens as variables, an encrypted private key with its
  passphrase in C4GH_PASSPHRASE.
- `no_shared_fs`: `--shared-fs-usage none` with `snakemake-storage-plugin-fs` as
  the default storage provider, so every job retrieves and stores on its own.
  Plugin tokens from token files (no token in any job's environment).
"""

import base64
import hashlib
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from crypt4gh.keys.c4gh import encode_private_key

from snakemake_ghga import crypt4gh as crypt
from snakemake_ghga.sandbox import Sandbox
from snakemake_ghga.sandbox.requestlog import RequestLogEntry
from tests.cluster.conftest import (
    DEMO,
    ClusterGhga,
    ClusterRun,
    batch_scripts,
    run_snakemake,
    run_watched,
    write_config,
)
from tests.cluster.slurm import LocalSlurm
from tests.support.secret_watch import CmdlineWatch, files_holding

pytestmark = pytest.mark.slow

PASSPHRASE = "CANARY-cluster-passphrase-4c7e"
RESULTS = ["summary.tsv", "stats/normal.tsv", "stats/tumor.tsv"]
SUBMITTED = re.compile(r"submitted with SLURM jobid (\d+)")


@dataclass
class Mode:
    """Both demo workflows run in one file-system mode."""

    slurm: LocalSlurm
    ghga: ClusterGhga
    runs: dict[str, ClusterRun]
    watch: CmdlineWatch
    secrets: dict[str, str]
    prefixes: dict[str, str]
    log_span: slice  # this mode's entries in the sandbox's request log

    def request_log(self) -> list[RequestLogEntry]:
        return self.ghga.sandbox.request_log()[self.log_span]

    def job_ids(self, name: str) -> list[str]:
        return SUBMITTED.findall(self.runs[name].output)


def _locked_key(path: Path, secret: bytes) -> None:
    """Write secret as a passphrase-protected c4gh private key (mode 0600)."""
    sealed = base64.b64encode(encode_private_key(secret, PASSPHRASE.encode(), b"t"))
    path.write_bytes(
        b"-----BEGIN CRYPT4GH ENCRYPTED PRIVATE KEY-----\n"
        + sealed
        + b"\n-----END CRYPT4GH ENCRYPTED PRIVATE KEY-----\n"
    )
    path.chmod(0o600)


def _token_file(path: Path, token: str) -> Path:
    path.write_text(token + "\n")
    path.chmod(0o600)
    return path


def _run_mode(
    slurm: LocalSlurm, ghga: ClusterGhga, root: Path, shared_fs: bool
) -> Mode:
    mode = "shared" if shared_fs else "none"
    keys_dir = root / "keys"
    keys_dir.mkdir(parents=True)
    _locked_key(keys_dir / "key.sec", ghga.keys.secret)
    (keys_dir / "key.pub").write_bytes(ghga.keys.public_path.read_bytes())
    plugin_dir, wrapper_dir = root / "plugin", root / "wrappers"
    prefixes = {"plugin": f"{mode}/storage", "wrappers": f"{mode}/wrappers"}
    write_config(plugin_dir, ghga, prefixes["plugin"])
    write_config(wrapper_dir, ghga, prefixes["wrappers"])
    secrets = {**ghga.secrets(), "passphrase": PASSPHRASE}
    plugin_env = {
        "SNAKEMAKE_STORAGE_GHGA_DOWNLOAD_TOKEN": ghga.download_token,
        "SNAKEMAKE_STORAGE_GHGA_UPLOAD_TOKEN": ghga.upload_token,
        "C4GH_PASSPHRASE": PASSPHRASE,
    }
    plugin_args = [
        "--storage-ghga-wkvs-url", ghga.sandbox.wkvs_url,
        "--storage-ghga-my-public-key", str(keys_dir / "key.pub"),
        "--storage-ghga-my-private-key", str(keys_dir / "key.sec"),
        "--slurm-keep-successful-logs",
    ]  # fmt: skip
    wrapper_env = {
        "GHGA_WKVS_URL": ghga.sandbox.wkvs_url,
        "GHGA_DOWNLOAD_TOKEN": ghga.download_token,
        "GHGA_UPLOAD_TOKEN": ghga.upload_token,
        "C4GH_PASSPHRASE": PASSPHRASE,
    }
    wrapper_args = ["--slurm-keep-successful-logs"]
    key_home = wrapper_dir
    if not shared_fs:
        store = root / "fs-store"
        fs_args = [
            "--shared-fs-usage", "none", "--default-storage-provider", "fs",
            "--default-storage-prefix",
        ]  # fmt: skip
        plugin_args += [*fs_args, str(store / "plugin")]
        wrapper_args += [*fs_args, str(store / "wrappers")]
        key_home = store / "wrappers"  # local inputs live in the default storage
        del plugin_env["SNAKEMAKE_STORAGE_GHGA_DOWNLOAD_TOKEN"]
        del plugin_env["SNAKEMAKE_STORAGE_GHGA_UPLOAD_TOKEN"]
        plugin_args += [
            "--storage-ghga-download-token-file",
            str(_token_file(root / "download.token", ghga.download_token)),
            "--storage-ghga-upload-token-file",
            str(_token_file(root / "upload.token", ghga.upload_token)),
        ]
    key_home.mkdir(parents=True, exist_ok=True)
    for name in ("key.sec", "key.pub"):
        (key_home / name).write_bytes((keys_dir / name).read_bytes())
        (key_home / name).chmod(0o600)
    log_start = len(ghga.sandbox.request_log())
    runs, watch = run_watched(
        slurm,
        {
            "plugin": (plugin_dir, DEMO / "Snakefile", plugin_env, tuple(plugin_args)),
            "wrappers": (
                wrapper_dir,
                DEMO / "Snakefile.wrappers",
                wrapper_env,
                tuple(wrapper_args),
            ),
        },
        secrets,
    )
    log_span = slice(log_start, len(ghga.sandbox.request_log()))
    return Mode(slurm, ghga, runs, watch, secrets, prefixes, log_span)


@pytest.fixture(scope="module")
def shared(
    slurm: LocalSlurm, ghga: ClusterGhga, tmp_path_factory: pytest.TempPathFactory
) -> Mode:
    return _run_mode(slurm, ghga, tmp_path_factory.mktemp("shared"), shared_fs=True)


@pytest.fixture(scope="module")
def no_shared_fs(
    slurm: LocalSlurm, ghga: ClusterGhga, tmp_path_factory: pytest.TempPathFactory
) -> Mode:
    return _run_mode(slurm, ghga, tmp_path_factory.mktemp("none"), shared_fs=False)


@pytest.fixture(params=["shared", "no_shared_fs"])
def mode(request: pytest.FixtureRequest) -> Mode:
    found: Mode = request.getfixturevalue(request.param)
    return found


def _expected_summary(ghga: ClusterGhga) -> dict[str, int]:
    """sample -> reads, from the seeded FASTQ files."""
    return {
        sample: ghga.contents[accession].count(b"\n") // 4
        for sample, accession in ghga.samples.items()
    }


def test_slurm_both_workflows_succeed_and_upload_their_results(mode: Mode) -> None:
    sandbox: Sandbox = mode.ghga.sandbox
    for name, run in mode.runs.items():
        assert run.result.returncode == 0, f"{name}: {run.output[-5000:]}"
        assert mode.job_ids(name), f"{name} submitted no SLURM job"
    reads = _expected_summary(mode.ghga)
    for result in RESULTS:
        upload = sandbox.wait_interrogated(f"{mode.prefixes['plugin']}/{result}")
        assert upload.state == "interrogated", upload.failure_reason
    summary = {u.alias: u for u in sandbox.uploads()}
    wrapped = summary[f"{mode.prefixes['wrappers']}/summary.tsv"]
    assert wrapped.state in ("inbox", "interrogated")
    archived = {a.accession: a for a in sandbox.accessions()}
    plugin_summary = sandbox.wait_interrogated(f"{mode.prefixes['plugin']}/summary.tsv")
    assert plugin_summary.accession is not None
    digest = archived[plugin_summary.accession].decrypted_sha256
    rows = _summary_rows(mode)
    assert hashlib.sha256(rows).hexdigest() == digest
    for sample, count in reads.items():
        assert f"{sample}\t{mode.ghga.samples[sample]}\t{count}\t".encode() in rows


def _summary_rows(mode: Mode) -> bytes:
    """The wrappers' local summary (same analysis, same inputs as the plugin's)."""
    run = mode.runs["wrappers"]
    local = run.workdir / "results" / "summary.tsv"
    if local.exists():
        return local.read_bytes()
    return next((run.workdir.parent / "fs-store").rglob("summary.tsv")).read_bytes()


def _uploads_of(mode: Mode) -> dict[str, list[str]]:
    """alias -> states of every upload record, for this mode's aliases."""
    records: dict[str, list[str]] = {}
    for upload in mode.ghga.sandbox.uploads():
        if upload.alias.startswith(tuple(mode.prefixes.values())):
            records.setdefault(upload.alias, []).append(upload.state)
    return records


def test_slurm_each_output_uploaded_once_and_each_input_downloaded_once(
    mode: Mode,
) -> None:
    log = mode.request_log()
    uploads = _uploads_of(mode)
    put_bytes = sum(e["bytes"] for e in log if e["method"] == "PUT")
    expected_put = sum(
        u.encrypted_size for u in mode.ghga.sandbox.uploads() if u.alias in uploads
    )
    envelopes = Counter(
        e["path"].split("/")[3] for e in log if e["path"].endswith("/envelopes")
    )
    outbox_bytes = sum(
        e["bytes"] for e in log if e["method"] == "GET" and "/s3/outbox/" in e["path"]
    )
    plain = [len(c) for c in mode.ghga.contents.values()]

    assert len(uploads) == 2 * len(RESULTS)  # plugin and wrappers
    assert all(len(states) == 1 for states in uploads.values()), uploads
    assert put_bytes == expected_put
    # Both workflows read both accessions: once each, whichever process did it.
    assert envelopes == Counter({a: 2 for a in mode.ghga.contents})
    assert outbox_bytes == 2 * sum(crypt.encrypted_size(n) - 124 for n in plain)


def test_slurm_transfers_run_where_the_mode_says(mode: Mode) -> None:
    run = mode.runs["plugin"]
    job_logs = "\n".join(
        p.read_text(errors="replace")
        for p in (run.workdir / ".snakemake" / "slurm_logs").rglob("*.log")
    )
    main = run.output
    retrieved_in_main = "Retrieving from storage: ghga://" in main
    retrieved_in_jobs = "Retrieving from storage: ghga://" in job_logs

    assert "Storing in storage: ghga://upload/" in job_logs
    shared_mode = mode.prefixes["plugin"].startswith("shared")
    assert retrieved_in_main == shared_mode
    assert retrieved_in_jobs == (not shared_mode)


def test_slurm_no_secret_in_any_argv(mode: Mode) -> None:
    assert mode.watch.samples > 50
    assert sorted(mode.watch.findings) == []


def test_slurm_no_secret_in_logs_or_stored_batch_scripts(mode: Mode) -> None:
    places = []
    for run in mode.runs.values():
        places += [
            run.workdir / ".snakemake" / "log",
            run.workdir / ".snakemake" / "slurm_logs",
        ]
        places += list((run.workdir / "logs").glob("**/*.log"))
        assert list((run.workdir / ".snakemake" / "slurm_logs").rglob("*.log"))
        assert [n for n, v in mode.secrets.items() if v in run.output] == []
    ids = mode.job_ids("plugin") + mode.job_ids("wrappers")
    scripts = batch_scripts(mode.slurm, ids)
    stored = [
        p for p in mode.slurm.state_dir.rglob("script") if p.parent.name in
        {f"job.{i}" for i in ids}
    ]  # fmt: skip

    assert files_holding(mode.secrets, places) == []
    assert "python -m snakemake" in scripts or "snakemake" in scripts
    assert [n for n, v in mode.secrets.items() if v in scripts] == []
    assert len(stored) == len(ids)
    assert files_holding(mode.secrets, stored) == []


def test_slurm_token_files_keep_tokens_out_of_slurm_state(no_shared_fs: Mode) -> None:
    # With token files the plugin's jobs carry only paths: SLURM's copy of each
    # job's environment holds no token (with variables it would: cluster.md).
    ids = {f"job.{i}" for i in no_shared_fs.job_ids("plugin")}
    job_dirs = [p for p in no_shared_fs.slurm.state_dir.rglob("job.*") if p.name in ids]
    tokens = {k: v for k, v in no_shared_fs.secrets.items() if "token" in k}

    assert len(job_dirs) == len(ids) > 0
    assert all((d / "environment").exists() for d in job_dirs)
    assert files_holding(tokens, job_dirs) == []


def test_slurm_second_run_does_nothing(shared: Mode) -> None:
    # Existence is answered from the box listing, in the main process.
    run = shared.runs["plugin"]
    before = len(shared.ghga.sandbox.request_log())
    again = run_snakemake(
        shared.slurm,
        run.workdir,
        DEMO / "Snakefile",
        {
            "SNAKEMAKE_STORAGE_GHGA_DOWNLOAD_TOKEN": shared.ghga.download_token,
            "SNAKEMAKE_STORAGE_GHGA_UPLOAD_TOKEN": shared.ghga.upload_token,
            "C4GH_PASSPHRASE": PASSPHRASE,
        },
        *_plugin_options(shared),
    )
    new = shared.ghga.sandbox.request_log()[before:]

    assert again.result.returncode == 0, again.output[-3000:]
    assert "Nothing to be done" in again.output
    assert [e for e in new if e["method"] in ("PUT", "PATCH", "DELETE")] == []
    assert again.job_ids == []


def _plugin_options(mode: Mode) -> list[str]:
    keys_dir = mode.runs["plugin"].workdir.parent / "keys"
    return [
        "--storage-ghga-wkvs-url", mode.ghga.sandbox.wkvs_url,
        "--storage-ghga-my-public-key", str(keys_dir / "key.pub"),
        "--storage-ghga-my-private-key", str(keys_dir / "key.sec"),
    ]  # fmt: skip
