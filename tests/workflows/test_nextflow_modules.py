"""The Nextflow modules: every .nf parses, and each script runs as a Nextflow task.

See nextflow_task.py for what "runs as a Nextflow task" means without Nextflow.
"""

import json
import re
from pathlib import Path

import pytest
import reftrace
import yaml

from snakemake_ghga import __version__
from tests.workflows.conftest import EXAMPLES, Ghga, needs_receipt, seed, tool_env
from tests.workflows.nextflow_task import Process, render, run_task, secret_env

pytestmark = pytest.mark.slow

NEXTFLOW = EXAMPLES / "nextflow"
MODULES = NEXTFLOW / "modules" / "ghga"
ACCESSIONS = ["GHGAF00000000000001", "GHGAF00000000000002"]


def test_every_nf_file_and_the_config_parse_and_every_include_resolves() -> None:
    parsed = reftrace.parse_modules(str(NEXTFLOW))

    assert [e.error for e in parsed.errors] == []
    assert list(parsed.unresolved_includes) == []
    names = {p.name for m in parsed.results for p in m.processes}
    assert {"GHGA_DOWNLOAD", "GHGA_UPLOAD", "FILE_STATS"} <= names
    assert len(parsed.results) == len(list(NEXTFLOW.rglob("*.nf")))
    config = reftrace.ConfigFile.from_file(str(NEXTFLOW / "nextflow.config"))
    assert config.error is None


def test_a_syntax_error_is_reported_by_the_parse(tmp_path: Path) -> None:
    broken = (MODULES / "download/main.nf").read_text().replace("--output-dir", '"""')
    (tmp_path / "main.nf").write_text(broken)

    parsed = reftrace.parse_modules(str(tmp_path))

    assert len(parsed.errors) == 1


@pytest.mark.parametrize("module", ["download", "upload"])
def test_module_declares_conda_env_secret_and_versions_topic(module: str) -> None:
    text = (MODULES / module / "main.nf").read_text()
    (process,) = reftrace.parse_modules(str(MODULES / module)).results[0].processes

    assert process.first_conda is not None
    assert f"secret 'GHGA_{module.upper()}_TOKEN'" in text
    assert "topic: versions, emit: versions_ghga_transfer" in text
    assert "task.ext.when == null || task.ext.when" in text


@pytest.mark.parametrize("module", ["download", "upload"])
def test_meta_yml_documents_every_emit_and_the_version_command(module: str) -> None:
    meta = yaml.safe_load((MODULES / module / "meta.yml").read_text())
    process = Process.from_file(MODULES / module / "main.nf")
    text = (MODULES / module / "main.nf").read_text()
    emits = re.findall(r"emit: (\w+)", text)

    assert meta["name"] == f"ghga_{module}"
    assert list(meta["output"]) == emits
    documented = [next(iter(field)) for field in meta["output"][emits[-1]][0]]
    assert documented[-1] == process.eval_commands[0]
    assert meta["topics"]["versions"] == meta["output"]["versions_ghga_transfer"]
    paths = [next(iter(f)) for e in emits[:-1] for f in meta["output"][e][0]]
    assert [p for p in paths if p != "meta"] == process.output_paths


def download_variables(ghga: Ghga) -> dict[str, str]:
    # What Nextflow binds for meta [id: 'sample1'], the accessions and 2 cpus;
    # `ids` is the script block's `accessions.join(' ')`.
    return {
        "prefix": "sample1",
        "private_key": "key.sec",
        "public_key": "key.pub",
        "task.cpus": "2",
        "args": f"--wkvs-url {ghga.sandbox.wkvs_url}",
        "ids": " ".join(ACCESSIONS),
    }


def test_download_task_writes_the_decrypted_files_and_the_version(
    ghga: Ghga, tmp_path: Path
) -> None:
    process = Process.from_file(MODULES / "download/main.nf")
    env = secret_env(ghga.env(), GHGA_DOWNLOAD_TOKEN=ghga.download_token)
    staged = {"key.sec": ghga.keys.secret_path, "key.pub": ghga.keys.public_path}

    task = run_task(process, tmp_path / "work", download_variables(ghga), staged, env)

    assert task.returncode == 0, task.stderr
    (files,) = task.outputs.values()
    assert [f.name for f in files] == [
        "GHGAF00000000000001.txt",
        "GHGAF00000000000002.csv",
    ]
    for path, accession in zip(files, ACCESSIONS, strict=True):
        assert path.read_bytes() == seed(accession)
    assert task.evals == [__version__]


def test_download_task_without_the_secret_fails(ghga: Ghga, tmp_path: Path) -> None:
    process = Process.from_file(MODULES / "download/main.nf")
    staged = {"key.sec": ghga.keys.secret_path, "key.pub": ghga.keys.public_path}

    task = run_task(
        process, tmp_path / "work", download_variables(ghga), staged,
        secret_env(ghga.env()),
    )  # fmt: skip

    assert task.returncode != 0
    assert "GHGA_DOWNLOAD_TOKEN: unbound variable" in task.stderr
    assert task.outputs == {"${prefix}/*": []}


@needs_receipt
def test_upload_task_uploads_with_prefixed_aliases_and_writes_the_receipt(
    ghga: Ghga, tmp_path: Path
) -> None:
    process = Process.from_file(MODULES / "upload/main.nf")
    sources = tmp_path / "sources"
    sources.mkdir()
    for name in ("a.stats.tsv", "b.stats.tsv"):
        (sources / name).write_text(f"{name}\t1\t2\n")
    staged = {p.name: p for p in sources.iterdir()}
    staged |= {"key.sec": ghga.keys.secret_path, "key.pub": ghga.keys.public_path}
    variables = {
        "prefix": "run1",
        "files": "a.stats.tsv b.stats.tsv",
        "alias_prefix": "nf-test/",
        "private_key": "key.sec",
        "public_key": "key.pub",
        "task.cpus": "2",
        "args": f"--wkvs-url {ghga.sandbox.wkvs_url}",
    }
    env = secret_env(ghga.env(), GHGA_UPLOAD_TOKEN=ghga.upload_token)

    task = run_task(process, tmp_path / "work", variables, staged, env)

    assert task.returncode == 0, task.stderr
    (receipt,) = task.outputs["${prefix}.receipt.json"]
    aliases = sorted(
        entry["alias"] for entry in json.loads(receipt.read_text())["files"]
    )
    assert aliases == ["nf-test/a.stats.tsv", "nf-test/b.stats.tsv"]
    for alias in aliases:
        assert ghga.sandbox.wait_interrogated(alias).state == "interrogated"
    assert task.evals == [__version__]


@pytest.mark.parametrize(
    ("module", "variables", "expected"),
    [
        (
            "download",
            {"prefix": "s1", "ids": "GHGAF1 GHGAF2"},
            ["s1/GHGAF1", "s1/GHGAF2"],
        ),
        ("upload", {"prefix": "s1"}, ["s1.receipt.json"]),
    ],
)
def test_stub_creates_every_declared_output(
    module: str, variables: dict[str, str], expected: list[str], tmp_path: Path
) -> None:
    process = Process.from_file(MODULES / module / "main.nf")

    task = run_task(
        process, tmp_path / "work", variables, {}, secret_env(tool_env()), stub=True
    )

    assert task.returncode == 0, task.stderr
    found = [
        p.relative_to(tmp_path / "work").as_posix()
        for ps in task.outputs.values()
        for p in ps
    ]
    assert sorted(found) == expected


@pytest.mark.parametrize("module", ["download", "upload"])
def test_cpus_do_not_pin_the_parts_in_flight_and_ext_args_can(module: str) -> None:
    script = Process.from_file(MODULES / module / "main.nf").script
    variables = {
        "prefix": "s1",
        "ids": "GHGAF1",
        "files": "a.tsv",
        "alias_prefix": "",
        "private_key": "key.sec",
        "public_key": "key.pub",
    }
    assert "--max-workers" not in render(script, {**variables, "args": ""})
    pinned = render(script, {**variables, "args": "--max-workers 3"})
    assert pinned.count("--max-workers 3") == 1


def test_render_follows_groovy_escapes_and_refuses_unknown_variables() -> None:
    assert render(r"a \\t ${x} \$y \\", {"x": "1"}) == "a \\t 1 $y \\"
    with pytest.raises(KeyError, match="no value for"):
        render("${missing}", {})
