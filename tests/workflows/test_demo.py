"""workflow_examples/demo.sh, as `make demo` runs it: twice, from nothing."""

import hashlib
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.workflows.conftest import EXAMPLES, RECEIPT_SUPPORTED, tool_env

pytestmark = pytest.mark.slow

DEMO = EXAMPLES / "demo.sh"


def run_demo(demo_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(DEMO)],
        env=tool_env(GHGA_DEMO_DIR=str(demo_dir)),
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip


def sandbox_listing(output: str, kind: str, name_column: int) -> dict[str, list[str]]:
    """Name -> columns of each `sandbox ls` line of kind (UPLOAD or ACCESSION)."""
    rows = [line.split() for line in output.splitlines()]
    return {row[name_column]: row for row in rows if row and row[0] == kind}


def is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_demo_runs_twice_from_nothing_and_uploads_the_results(tmp_path: Path) -> None:
    demo_dir = tmp_path / "demo"

    first = run_demo(demo_dir)
    second = run_demo(demo_dir)

    for result in (first, second):
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        pid = int(re.search(r"sandbox \(pid (\d+)\)", result.stdout).group(1))
        assert not is_running(pid)
    uploads = sandbox_listing(second.stdout, "UPLOAD", 3)
    archived = sandbox_listing(second.stdout, "ACCESSION", 2)
    summary = demo_dir / "storage-run/results/summary.tsv"
    assert summary.read_text().splitlines()[0].startswith("sample\taccession\treads")
    assert uploads["demo/storage/summary.tsv"][2] == "interrogated"
    digest = hashlib.sha256(summary.read_bytes()).hexdigest()
    assert f"sha256={digest}" in archived["demo/storage/summary.tsv"]
    assert {"seed/tumor.fastq", "seed/normal.fastq"} <= set(archived)
    receipt = demo_dir / "wrapper-run/results/upload_receipt.json"
    assert receipt.exists() == RECEIPT_SUPPORTED


def test_demo_refuses_to_empty_a_directory_it_did_not_make(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")

    result = run_demo(tmp_path)

    assert result.returncode == 1
    assert "not a demo directory" in result.stderr
    assert (tmp_path / "precious.txt").read_text() == "keep me"
