"""Encrypt and upload files to a GHGA upload box: `ghga-transfer upload`.

The files are the rule's unnamed inputs; each gets the alias in params.aliases
(same order) or else its file name. The output is a JSON receipt with each
file's alias, file id, sizes, checksums and state. The token comes from the
file input.token, or from the environment variable named by params.token_env
(default GHGA_WORK_PACKAGE_TOKEN); it never appears on a command line.
"""

# `snakemake` is injected by Snakemake's script preamble.
# ruff: noqa: F821

__author__ = "snakemake-ghga developers"
__license__ = "MIT"

import contextlib
import os
import shlex
import subprocess
import tempfile
from pathlib import Path

TOKEN_VAR = "GHGA_WORK_PACKAGE_TOKEN"
NAMED_INPUTS = {
    "private_key": "--my-private-key",
    "public_key": "--my-public-key",
    "token": "--token-file",
}


def upload_items(snakemake):
    """(path, alias) of every unnamed input, in order."""
    named = {snakemake.input.get(name) for name in NAMED_INPUTS}
    files = [path for path in snakemake.input if path not in named]
    aliases = snakemake.params.get("aliases") or [Path(f).name for f in files]
    aliases = [aliases] if isinstance(aliases, str) else list(aliases)
    if len(aliases) != len(files):
        raise ValueError(
            f"params.aliases has {len(aliases)} entries for {len(files)} files; "
            "give one alias per file"
        )
    return list(zip(files, aliases, strict=True))


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
    for name, flag in NAMED_INPUTS.items():
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


with tempfile.TemporaryDirectory(prefix="ghga-upload-") as tmp:
    tsv = Path(tmp, "files.tsv")
    tsv.write_text("".join(f"{p}\t{a}\n" for p, a in upload_items(snakemake)))
    command = ["ghga-transfer", "upload", "--tsv", str(tsv)]
    command += ["--receipt", snakemake.output[0]]
    run(command + transfer_args(snakemake), transfer_env(snakemake))
