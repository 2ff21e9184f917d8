"""Snakemake itself with the plugin installed: --help, --version, bad settings."""

import os
import subprocess
from pathlib import Path

from tests.conftest import KeyPair
from tests.support.tools import tool

PLAIN_SNAKEFILE = 'rule all:\n    output: "done.txt"\n    shell: "echo ok > {output}"\n'
GHGA_SNAKEFILE = (
    "rule all:\n"
    '    input: storage.ghga("ghga://GHGAF12345678901234")\n'
    '    output: "done.txt"\n'
    '    shell: "cp {input} {output}"\n'
)


def _snakemake(*args: str, cwd: Path | None = None, **env: str):
    return subprocess.run(
        [tool("snakemake"), *args],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_snakemake_help_lists_plugin_settings() -> None:
    result = _snakemake("--help")

    assert result.returncode == 0, result.stderr
    assert "ghga storage plugin settings" in result.stdout
    assert "--storage-ghga-download-token" in result.stdout
    assert "SNAKEMAKE_STORAGE_GHGA_DOWNLOAD_TOKEN" in result.stdout


def test_snakemake_version_works_with_plugin_installed() -> None:
    result = _snakemake("--version")

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith("9.")


def test_snakemake_help_does_not_show_token_values() -> None:
    secret = "GHGA-WP-0000000000000000:c2VjcmV0LXRva2VuLXRoYXQtbXVzdC1uZXZlci1sZWFr"

    result = _snakemake("--help", SNAKEMAKE_STORAGE_GHGA_UPLOAD_TOKEN=secret)

    assert result.returncode == 0, result.stderr
    assert secret not in result.stdout + result.stderr


def test_bad_setting_does_not_break_workflow_without_plugin(tmp_path: Path) -> None:
    (tmp_path / "Snakefile").write_text(PLAIN_SNAKEFILE)

    result = _snakemake("--cores", "1", "--storage-ghga-part-size", "1", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert (tmp_path / "done.txt").read_text() == "ok\n"


def test_bad_setting_fails_workflow_using_plugin_with_clear_message(
    tmp_path: Path, user_keys: KeyPair
) -> None:
    (tmp_path / "Snakefile").write_text(GHGA_SNAKEFILE)

    result = _snakemake(
        "--cores", "1", "--storage-ghga-part-size", "1",
        "--storage-ghga-my-public-key", str(user_keys.public_path),
        "--storage-ghga-my-private-key", str(user_keys.secret_path),
        cwd=tmp_path,
        SNAKEMAKE_STORAGE_GHGA_DOWNLOAD_TOKEN="wp:token",
    )  # fmt: skip

    assert result.returncode != 0
    assert "--storage-ghga-part-size is 1; use a whole number from 5 to 5120" in (
        result.stderr
    )
    assert not (tmp_path / "done.txt").exists()


WILDCARD_SNAKEFILE = (
    "rule all:\n"
    '    input: "out/sample1.txt"\n'
    "rule get:\n"
    '    input: storage.ghga("ghga://{name}")\n'
    '    output: "out/{name}.txt"\n'
    '    shell: "cp {input} {output}"\n'
)


def test_invalid_wildcard_value_reported_as_invalid_query(
    tmp_path: Path, user_keys: KeyPair
) -> None:
    (tmp_path / "Snakefile").write_text(WILDCARD_SNAKEFILE)

    result = _snakemake(
        "--cores", "1",
        "--storage-ghga-my-public-key", str(user_keys.public_path),
        "--storage-ghga-my-private-key", str(user_keys.secret_path),
        cwd=tmp_path,
        SNAKEMAKE_STORAGE_GHGA_DOWNLOAD_TOKEN="wp:token",
    )  # fmt: skip

    assert result.returncode != 0
    assert (
        "query ghga://sample1 is invalid: 'sample1' is not a file accession"
        in result.stderr
    )
    assert "Traceback" not in result.stderr
