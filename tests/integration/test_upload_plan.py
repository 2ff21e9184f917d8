"""`ghga-transfer upload --dry-run` prints what the real run then does.

Each case puts the alias into one box state, runs the dry run, then the same
command for real, and checks that the plan's verb matches the real result.
An input the real run refuses (empty, already Crypt4GH) is refused by the plan too.
"""

from pathlib import Path

import pytest

from snakemake_ghga import crypt4gh as crypt
from snakemake_ghga.cli import main
from snakemake_ghga.client import GhgaClient
from snakemake_ghga.errors import ApiError
from snakemake_ghga.ghga.api import GhgaApi
from snakemake_ghga.ghga.models import UploadChecksums
from snakemake_ghga.sandbox.app import Sandbox
from tests.conftest import KeyPair

from .conftest import PART, cli_args, make_client, random_file

ALIAS = "f.bin"
SIZE = 1000
REAL_STATUS = {
    "would upload": "uploaded",
    "would replace": "uploaded",
    "would resume": "uploaded",
    "would skip": "skipped",
    "would fail": "failed",
}


def _put_in_state(
    state: str,
    sandbox: Sandbox,
    user: KeyPair,
    source: Path,
    tmp_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = sandbox.upload_token(user.public)
    with make_client(sandbox, user, token, tmp_dir=tmp_dir) as client:
        if state == "interrogated":
            client.upload([(source, ALIAS)])
            sandbox.wait_interrogated(ALIAS)
        elif state in ("init", "failed"):  # another client's: no journal here
            _create(client, close=state == "failed")
        elif state == "interrupted":  # ours: killed before the close
            _interrupt_before_close(client, source, monkeypatch)
    if state != "absent":
        box_state = "init" if state == "interrupted" else state
        assert sandbox.uploads()[-1].state == box_state


def _create(client: GhgaClient, *, close: bool) -> None:
    """Create an upload of ALIAS; ``close`` it with wrong checksums (failed)."""
    encrypted_size = crypt.encrypted_size(SIZE)
    created = client.api.create_upload(
        ALIAS, SIZE, encrypted_size, PART, overwrite=False
    )
    if close:
        wrong = UploadChecksums("0" * 64, "0" * 32 + "-1", ["0" * 32], ["0" * 64])
        with pytest.raises(ApiError):
            client.api.complete_upload(created.file_id, wrong)


def _interrupt_before_close(
    client: GhgaClient, source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted_close(self: GhgaApi, *args: object) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(GhgaApi, "complete_upload", interrupted_close)
        with pytest.raises(KeyboardInterrupt):
            client.upload_file(source, ALIAS)


@pytest.mark.parametrize(
    ("state", "overwrite", "plan"),
    [
        ("absent", False, "would upload"),
        ("absent", True, "would upload"),
        ("interrogated", False, "would skip"),
        ("interrogated", True, "would replace"),
        ("init", False, "would fail"),
        ("init", True, "would replace"),
        ("failed", False, "would upload"),
        ("failed", True, "would upload"),
        ("interrupted", False, "would resume"),
        ("interrupted", True, "would resume"),
    ],
)
def test_upload_dry_run_plan_matches_the_real_run(
    sandbox: Sandbox,
    user_keys: KeyPair,
    upload_token: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    state: str,
    overwrite: bool,
    plan: str,
) -> None:
    source = random_file(tmp_path / "in", ALIAS, SIZE)
    tmp_dir = tmp_path / "tmp"
    tmp_dir.mkdir()
    _put_in_state(state, sandbox, user_keys, source, tmp_dir, monkeypatch)
    command = ["upload", *cli_args(sandbox, user_keys, upload_token)]
    command += ["--tmp-dir", str(tmp_dir), str(source)]
    command += ["--overwrite"] if overwrite else []
    capsys.readouterr()

    planned_code = main([*command, "--dry-run"])
    planned = capsys.readouterr().out.strip()
    real_code = main(command)
    real = capsys.readouterr()

    assert planned.startswith(f"{plan} {ALIAS}"), planned
    assert f"summary: {_summary(REAL_STATUS[plan])}" in real.out, real
    assert planned_code == real_code
    if plan in ("would replace", "would resume"):
        live = [u for u in sandbox.uploads() if u.state != "cancelled"]
        assert len(live) == 1, live  # the old upload was replaced or finished


def _summary(status: str) -> str:
    counts = {word: int(word == status) for word in ("uploaded", "skipped", "failed")}
    return ", ".join(f"{n} {word}" for word, n in counts.items())


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"", "is empty"), (crypt.MAGIC + bytes(100), "is already Crypt4GH-encrypted")],
    ids=["empty", "crypt4gh"],
)
def test_upload_dry_run_refuses_an_input_the_real_run_refuses(
    sandbox: Sandbox,
    user_keys: KeyPair,
    upload_token: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: bytes,
    reason: str,
) -> None:
    source = tmp_path / ALIAS
    source.write_bytes(content)
    command = ["upload", *cli_args(sandbox, user_keys, upload_token), str(source)]

    planned_code = main([*command, "--dry-run"])
    planned = capsys.readouterr().out.strip()
    real_code = main(command)
    real = "".join(capsys.readouterr())  # the failed line is on stderr

    assert planned.startswith(f"would fail {ALIAS}: {source} {reason}"), planned
    assert f"failed {ALIAS}: {planned.split(': ', 1)[1]}" in real, real
    assert planned_code == real_code == 1
    assert sandbox.uploads() == []
