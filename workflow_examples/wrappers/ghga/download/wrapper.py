"""Download GHGA files and decrypt them: `ghga-transfer download` for one rule.

Each output is one accession: params.accessions in output order, or else the
accession that the output's file name starts with. The token comes from the
file input.token, or from the environment variable named by params.token_env
(default GHGA_WORK_PACKAGE_TOKEN); it never appears on a command line.
"""

# `snakemake` is injected by Snakemake's script preamble.
# ruff: noqa: F821

__author__ = "snakemake-ghga developers"
__license__ = "MIT"

import contextlib
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

TOKEN_VAR = "GHGA_WORK_PACKAGE_TOKEN"
ACCESSION = re.compile(r"GHGAF\d{14}")


def accessions_for(outputs, given):
    """The accession of each output: given in order, or its file name's prefix."""
    if given:
        given = [given] if isinstance(given, str) else list(given)
        if len(given) != len(outputs):
            raise ValueError(
                f"params.accessions has {len(given)} entries for {len(outputs)} "
                "outputs; give one accession per output"
            )
        return given
    found = [ACCESSION.match(Path(out).name) for out in outputs]
    unnamed = [out for out, match in zip(outputs, found, strict=True) if match is None]
    if unnamed:
        raise ValueError(
            f"cannot tell the accession of {unnamed}: name each output "
            "GHGAF<14 digits>… or set params.accessions"
        )
    return [match.group(0) for match in found]


def transfer_env(snakemake):
    """The environment of ghga-transfer: the token under its standard name."""
    env = dict(os.environ)
    if snakemake.input.get("token"):
        env.pop(TOKEN_VAR, None)  # the CLI would prefer it to --token-file
        return env
    name = snakemake.params.get("token_env", TOKEN_VAR)
    if not os.environ.get(name):
        raise ValueError(
            f"the token variable {name} is not set: export the work-package token "
            "under that name (params.token_env chooses it) or give input.token"
        )
    env[TOKEN_VAR] = os.environ[name]
    return env


def transfer_args(snakemake):
    """Options shared by upload and download: keys, token file, extra.

    No --max-workers: the parts in flight adapt to the network (a far link
    needs a dozen or more, whatever the job's threads); extra can pin them.
    """
    args = []
    for name, flag in (
        ("private_key", "--my-private-key"),
        ("public_key", "--my-public-key"),
        ("token", "--token-file"),
    ):
        if snakemake.input.get(name):
            args += [flag, snakemake.input.get(name)]
    return args + shlex.split(snakemake.params.get("extra", ""))


def run(command, env=None):
    """Run command with stdout and stderr in the rule's log (if it has one)."""
    with contextlib.ExitStack() as stack:
        log = (
            stack.enter_context(open(snakemake.log[0], "w")) if snakemake.log else None
        )
        subprocess.run(
            command,
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            env=env,
            check=True,
        )


def written_file(directory, accession):
    """The file ghga-transfer wrote for accession: ACCESSION.<ext>[.c4gh]."""
    for path in Path(directory).iterdir():
        if path.name.split(".", 1)[0] == accession:
            return path
    raise FileNotFoundError(f"ghga-transfer wrote no file for {accession}")


outputs = list(snakemake.output)
accessions = accessions_for(outputs, snakemake.params.get("accessions"))
staging = Path(outputs[0]).parent  # same file system: the moves are renames
staging.mkdir(parents=True, exist_ok=True)
with tempfile.TemporaryDirectory(prefix=".ghga-download-", dir=staging) as tmp:
    command = ["ghga-transfer", "download", "--output-dir", tmp]
    if snakemake.params.get("keep_encrypted", False):
        command.append("--keep-encrypted")
    run(command + transfer_args(snakemake) + accessions, transfer_env(snakemake))
    for accession, output in zip(accessions, outputs, strict=True):
        shutil.move(written_file(tmp, accession), output)
