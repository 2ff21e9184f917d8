"""Encrypt files with Crypt4GH for a recipient: `ghga-transfer encrypt`.

The unnamed inputs are encrypted, in order, to the outputs, with
input.recipient_public_key as the reader and input.private_key (default: the
CLI's, GHGA_MY_PRIVATE_KEY or ./key.sec) as the writer.
"""

# `snakemake` is injected by Snakemake's script preamble.
# ruff: noqa: F821

__author__ = "snakemake-ghga developers"
__license__ = "MIT"

import contextlib
import os
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

NAMED_INPUTS = {
    "recipient_public_key": "--recipient-public-key",
    "private_key": "--my-private-key",
}


def stage(sources, names, directory):
    """Link each source as directory/<index>_<name>: no two names collide."""
    links = [Path(directory, f"{i}_{name}") for i, name in enumerate(names)]
    for source, link in zip(sources, links, strict=True):
        link.symlink_to(Path(source).resolve())
    return [str(link) for link in links]


def run(command):
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
            check=True,
        )


named = {snakemake.input.get(name) for name in NAMED_INPUTS}
sources = [path for path in snakemake.input if path not in named]
outputs = list(snakemake.output)
if len(sources) != len(outputs):
    raise ValueError(f"{len(sources)} files to encrypt but {len(outputs)} outputs")
if not snakemake.input.get("recipient_public_key"):
    raise ValueError("input.recipient_public_key is required (the reader's key)")

staging = Path(outputs[0]).parent  # same file system: the moves are renames
staging.mkdir(parents=True, exist_ok=True)
with tempfile.TemporaryDirectory(prefix=".ghga-encrypt-", dir=staging) as tmp:
    os.mkdir(Path(tmp, "in"))
    command = ["ghga-transfer", "encrypt", "--output-dir", str(Path(tmp, "out"))]
    for name, flag in NAMED_INPUTS.items():
        if snakemake.input.get(name):
            command += [flag, snakemake.input.get(name)]
    command += shlex.split(snakemake.params.get("extra", ""))
    names = [Path(source).name for source in sources]
    run(command + stage(sources, names, Path(tmp, "in")))
    for index, (name, output) in enumerate(zip(names, outputs, strict=True)):
        shutil.move(Path(tmp, "out", f"{index}_{name}.c4gh"), output)
