"""`ghga-transfer upload / download / ls / rm` end to end against the sandbox."""

import io
from pathlib import Path

import pytest

from snakemake_ghga import crypt4gh as crypt
from snakemake_ghga.cli import main
from snakemake_ghga.crypt4gh import keys
from snakemake_ghga.sandbox.app import Sandbox
from tests.conftest import KeyPair, make_key_pair

from .conftest import cli_args as _args
from .conftest import random_file


def test_upload_tsv_with_header_then_ls_rm(
    sandbox: Sandbox,
    user_keys: KeyPair,
    upload_token: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    one = random_file(tmp_path / "in", "one.bin", 10)
    two = random_file(tmp_path / "in", "two.bin", 70_000)
    tsv = tmp_path / "files.tsv"
    tsv.write_text(f"path\talias\n\n{one}\tA1\n{two}\tA2\n\n")
    common = _args(sandbox, user_keys, upload_token)
    assert main(["upload", *common, "--tsv", str(tsv)]) == 0
    out = capsys.readouterr().out
    assert "uploaded" in out and "summary: 2 uploaded, 0 skipped, 0 failed" in out
    assert main(["ls", *common]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[0].split() == ["ALIAS", "SIZE", "STATE", "FILE", "ID"]
    assert [line.split()[:2] for line in listing[1:]] == [["A1", "10"], ["A2", "70000"]]
    assert main(["rm", *common, "A1"]) == 0
    assert main(["upload", *common, "--tsv", str(tsv)]) == 0
    assert "summary: 1 uploaded, 1 skipped, 0 failed" in capsys.readouterr().out


def test_upload_many_files_lists_the_box_once(
    sandbox: Sandbox,
    user_keys: KeyPair,
    upload_token: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    files = [random_file(tmp_path / "in", f"{n}.bin", 100 + n) for n in range(3)]

    code = main(["upload", *_args(sandbox, user_keys, upload_token), *map(str, files)])

    assert code == 0
    assert "summary: 3 uploaded, 0 skipped, 0 failed" in capsys.readouterr().out
    listings = [
        e
        for e in sandbox.request_log()
        if e["method"] == "GET" and e["path"].endswith("/uploads")
    ]
    assert len(listings) == 1


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["{a}\tX", "{a}\tY"], "duplicate path"),
        (["{a}\tX", "{b}\tX"], "duplicate alias"),
        (["{a}\tX", "{missing}\tY"], "not found"),
    ],
)
def test_upload_bad_tsv_rejected_before_anything_is_sent(
    sandbox: Sandbox,
    user_keys: KeyPair,
    upload_token: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    lines: list[str],
    message: str,
) -> None:
    a = random_file(tmp_path, "a", 5)
    b = random_file(tmp_path, "b", 5)
    tsv = tmp_path / "f.tsv"
    names = {"a": a, "b": b, "missing": tmp_path / "nope"}
    tsv.write_text("\n".join(line.format(**names) for line in lines))
    code = main(["upload", *_args(sandbox, user_keys, upload_token), "--tsv", str(tsv)])
    assert code == 2
    assert message in capsys.readouterr().err
    assert sandbox.request_log() == []


def test_upload_already_encrypted_fails_alone_exit_1(
    sandbox: Sandbox,
    user_keys: KeyPair,
    upload_token: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    good = random_file(tmp_path, "good.bin", 100)
    bad = tmp_path / "bad.bin"
    bad.write_bytes(crypt.MAGIC + b"x")
    code = main(
        ["upload", *_args(sandbox, user_keys, upload_token), str(bad), str(good)]
    )
    captured = capsys.readouterr()
    assert code == 1
    assert "failed bad.bin: " in captured.err and "Traceback" not in captured.err
    assert "summary: 1 uploaded, 0 skipped, 1 failed" in captured.out


def test_upload_dry_run_sends_no_file(
    sandbox: Sandbox,
    user_keys: KeyPair,
    upload_token: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = random_file(tmp_path, "d.bin", 10)
    code = main(
        [
            "upload",
            *_args(sandbox, user_keys, upload_token),
            "--dry-run",
            "--alias",
            "D",
            str(source),
        ]
    )
    assert code == 0
    assert "would upload D" in capsys.readouterr().out
    assert not [
        e
        for e in sandbox.request_log()
        if e["method"] in ("POST", "PUT") and "/ucs/" in e["path"]
    ]


def test_download_default_all_files_and_token_from_stdin(
    sandbox: Sandbox,
    user_keys: KeyPair,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    files = [random_file(tmp_path / "in", f"{n}.txt", 1000 + n) for n in range(3)]
    accessions = [sandbox.add_file(path) for path in files]
    monkeypatch.setattr(
        "sys.stdin", io.StringIO(sandbox.download_token(user_keys.public))
    )
    common = [
        a
        for a in _args(sandbox, user_keys, tmp_path / "x")
        if a not in ("--token-file", str(tmp_path / "x"))
    ]
    out_dir = tmp_path / "new" / "dir"
    assert main(["download", *common, "--output-dir", str(out_dir)]) == 0
    captured = capsys.readouterr()
    assert "Please paste the complete access token" in captured.out
    assert captured.out.count("has been successfully downloaded") == 3
    for accession, path in zip(accessions, files, strict=True):
        assert (out_dir / f"{accession}.txt").read_bytes() == path.read_bytes()


def test_token_for_another_key_says_so(
    sandbox: Sandbox,
    user_keys: KeyPair,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    other = make_key_pair(tmp_path / "other", "other")
    sandbox.add_file(random_file(tmp_path, "f.txt", 10))
    monkeypatch.setenv("GHGA_WORK_PACKAGE_TOKEN", sandbox.download_token(other.public))
    common = [
        a
        for a in _args(sandbox, user_keys, tmp_path / "x")
        if a not in ("--token-file", str(tmp_path / "x"))
    ]
    code = main(["download", *common, "--output-dir", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 1
    assert "issued for another key" in err
    assert len(err.strip().splitlines()) == 1


def test_pinned_ghga_key_mismatch_refuses_upload(
    sandbox: Sandbox,
    user_keys: KeyPair,
    upload_token: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    wrong = tmp_path / "wrong.pub"
    keys.write_public_key(wrong, keys.generate_key_pair()[1])
    source = random_file(tmp_path, "p.bin", 10)
    code = main(
        [
            "upload",
            *_args(sandbox, user_keys, upload_token),
            "--ghga-public-key",
            str(wrong),
            str(source),
        ]
    )
    assert code == 1
    assert "differs from the pinned --ghga-public-key" in capsys.readouterr().err
    assert [u.state for u in sandbox.uploads()] == ["cancelled"]


def test_pinned_ghga_key_match_uploads(
    sandbox: Sandbox, user_keys: KeyPair, upload_token: Path, tmp_path: Path
) -> None:
    pinned = tmp_path / "hub.pub"
    keys.write_public_key(pinned, sandbox.hub_public_key)
    source = random_file(tmp_path, "q.bin", 10)
    code = main(
        [
            "upload",
            *_args(sandbox, user_keys, upload_token),
            "--ghga-public-key",
            str(pinned),
            str(source),
        ]
    )
    assert code == 0
