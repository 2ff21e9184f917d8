"""Each wrapper's test/Snakefile, run by the real snakemake CLI against a sandbox."""

import json
import re
from pathlib import Path

import pytest
import yaml
from crypt4gh.lib import decrypt as reference_decrypt
from crypt4gh.lib import encrypt as reference_encrypt

from snakemake_ghga.crypt4gh import keys
from tests.conftest import make_key_pair
from tests.reliability.test_secrets import _run_watching_argv
from tests.support.tools import tool
from tests.workflows.conftest import (
    EXAMPLES,
    Ghga,
    needs_receipt,
    seed,
    snakemake,
    tool_env,
)

pytestmark = pytest.mark.slow

WRAPPERS = EXAMPLES / "wrappers" / "ghga"


def snakefile_of(wrapper: str) -> Path:
    return WRAPPERS / wrapper / "test" / "Snakefile"


@pytest.mark.parametrize("wrapper", ["download", "upload", "encrypt", "decrypt"])
def test_meta_yaml_names_the_wrapper_and_documents_its_parts(wrapper: str) -> None:
    meta = yaml.safe_load((WRAPPERS / wrapper / "meta.yaml").read_text())
    source = (WRAPPERS / wrapper / "wrapper.py").read_text()

    assert meta["name"] == f"ghga {wrapper}"
    assert {"description", "url", "authors", "input", "output", "notes"} <= set(meta)
    documented = {next(iter(p)) for p in meta.get("params", [])}
    used = set(re.findall(r'params\.get\("(\w+)"', source))
    assert documented == used


def prepare_download(ghga: Ghga, directory: Path) -> dict[str, str]:
    """Keys and download.token in place; return the env holding the token."""
    ghga.link_keys(directory)
    (directory / "download.token").write_text(ghga.download_token)
    return ghga.env(GHGA_WORK_PACKAGE_TOKEN=ghga.download_token)


def files_containing(root: Path, secret: str) -> list[Path]:
    """Every file under root whose bytes contain secret."""
    needle = secret.encode()
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def test_download_wrapper_writes_each_accession_decrypted_or_encrypted(
    ghga: Ghga, tmp_path: Path
) -> None:
    env = prepare_download(ghga, tmp_path)

    result = snakemake(snakefile_of("download"), tmp_path, env)

    assert result.returncode == 0, result.stderr
    by_name = tmp_path / "data" / "GHGAF00000000000001.txt"
    assert by_name.read_bytes() == seed("GHGAF00000000000001")
    assert (tmp_path / "data/sample2.csv").read_bytes() == seed("GHGAF00000000000002")
    plain = tmp_path / "sample2.plain"
    with (
        (tmp_path / "encrypted/sample2.csv.c4gh").open("rb") as src,
        plain.open("wb") as dst,
    ):
        reference_decrypt([(0, ghga.keys.secret, None)], src, dst)
    assert plain.read_bytes() == seed("GHGAF00000000000002")
    assert (
        "successfully downloaded" in (tmp_path / "logs/ghga_download.log").read_text()
    )
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == [
        "GHGAF00000000000001.txt",
        "sample2.csv",
    ]  # no temporary directory left behind


def test_download_wrapper_never_writes_the_token(ghga: Ghga, tmp_path: Path) -> None:
    env = prepare_download(ghga, tmp_path)

    result = snakemake(snakefile_of("download"), tmp_path, env)

    assert result.returncode == 0, result.stderr
    secret = ghga.download_token.split(":", 1)[1]
    assert files_containing(tmp_path, secret) == [tmp_path / "download.token"]
    assert secret not in result.stdout + result.stderr


def test_download_wrapper_without_token_fails_naming_the_variable(
    ghga: Ghga, tmp_path: Path
) -> None:
    prepare_download(ghga, tmp_path)

    result = snakemake(snakefile_of("download"), tmp_path, ghga.env())

    assert result.returncode != 0
    assert "the token variable GHGA_WORK_PACKAGE_TOKEN is not set" in result.stderr
    assert not (tmp_path / "data/sample2.csv").exists()


@needs_receipt
def test_upload_wrapper_uploads_and_writes_a_receipt(
    ghga: Ghga, tmp_path: Path
) -> None:
    ghga.link_keys(tmp_path)
    env = ghga.env(GHGA_UPLOAD_TOKEN=ghga.upload_token)

    result = snakemake(snakefile_of("upload"), tmp_path, env)

    assert result.returncode == 0, result.stderr
    receipt = json.loads((tmp_path / "receipts/results.json").read_text())
    entries = {entry["alias"]: entry for entry in receipt["files"]}
    assert sorted(entries) == ["wrapper-test/a.txt", "wrapper-test/b.txt"]
    for alias, entry in entries.items():
        upload = ghga.sandbox.wait_interrogated(alias)
        assert upload.state == "interrogated", upload.failure_reason
        assert entry["file_id"] == upload.id
        assert entry["plain_size"] == upload.decrypted_size
        assert entry["encrypted_size"] == upload.encrypted_size
        archived = {a.accession: a for a in ghga.sandbox.accessions()}
        assert entry["plain_sha256"] == archived[upload.accession].decrypted_sha256


def test_encrypt_wrapper_output_decrypts_with_the_reference_library(
    tmp_path: Path,
) -> None:
    user = make_key_pair(tmp_path, "key")
    hub = make_key_pair(tmp_path, "hub")
    (tmp_path / "data").mkdir()
    (tmp_path / "other").mkdir()
    (tmp_path / "data/reads.txt").write_bytes(b"ACGT\n" * 30_000)
    (tmp_path / "other/reads.txt").write_bytes(b"other\n")

    result = snakemake(snakefile_of("encrypt"), tmp_path, tool_env())

    assert result.returncode == 0, result.stderr
    for output, source in (
        ("encrypted/reads.txt.c4gh", "data/reads.txt"),
        ("encrypted/other_reads.c4gh", "other/reads.txt"),
    ):
        plain = tmp_path / (output + ".plain")
        with (tmp_path / output).open("rb") as cipher, plain.open("wb") as out:
            reference_decrypt([(0, hub.secret, user.public)], cipher, out)
        assert plain.read_bytes() == (tmp_path / source).read_bytes()
    assert keys.load_public_key(user.public_path) == user.public


def test_decrypt_wrapper_round_trips_through_encrypt(tmp_path: Path) -> None:
    make_key_pair(tmp_path, "key")
    (tmp_path / "data").mkdir()
    (tmp_path / "data/reads.txt").write_bytes(b"ACGT\n" * 30_000)

    result = snakemake(snakefile_of("decrypt"), tmp_path, tool_env())

    assert result.returncode == 0, result.stderr
    assert (tmp_path / "decrypted/reads.txt").read_bytes() == b"ACGT\n" * 30_000
    assert (
        "decrypted 1 of 1 file(s)" in (tmp_path / "logs/ghga_decrypt.log").read_text()
    )


def test_decrypt_wrapper_with_the_wrong_key_fails_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    user = make_key_pair(tmp_path, "key")
    other = make_key_pair(tmp_path, "other")
    (tmp_path / "data").mkdir()
    (tmp_path / "data/reads.txt").write_bytes(b"ACGT\n")
    (tmp_path / "encrypted").mkdir()
    with (
        (tmp_path / "data/reads.txt").open("rb") as src,
        (tmp_path / "encrypted/reads.c4gh").open("wb") as dst,
    ):  # for someone else: newer than its inputs, so kept
        reference_encrypt([(0, user.secret, other.public)], src, dst)

    result = snakemake(snakefile_of("decrypt"), tmp_path, tool_env())

    assert result.returncode != 0
    assert "FAILED" in (tmp_path / "logs/ghga_decrypt.log").read_text()
    leftovers = tmp_path / "decrypted"  # no output, no temporary directory
    assert not leftovers.exists() or not any(leftovers.iterdir())


def test_download_wrapper_keeps_the_token_out_of_every_command_line(
    ghga: Ghga, tmp_path: Path
) -> None:
    """Snakemake, the wrapper and ghga-transfer: no argv holds the token."""
    env = prepare_download(ghga, tmp_path)
    argv = [tool("snakemake"), "--snakefile", str(snakefile_of("download")),
            "--directory", str(tmp_path), "--cores", "2"]  # fmt: skip

    code, out, err, cmdlines = _run_watching_argv(argv, env)

    assert code == 0, err
    assert "ghga-transfer" in cmdlines  # the CLI's own argv was sampled
    assert "--max-workers" not in cmdlines  # threads do not pin the parts in flight
    secret = ghga.download_token.split(":", 1)[1]
    for text in (out, err, cmdlines):
        assert secret not in text
