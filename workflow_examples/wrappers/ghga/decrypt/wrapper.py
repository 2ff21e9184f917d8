"""Decrypt Crypt4GH files: `ghga-transfer decrypt`.

The unnamed inputs are decrypted, in order, to the outputs with
input.private_key (default: the CLI's, GHGA_MY_PRIVATE_KEY or ./key.sec).
A passphrase comes from C4GH_PASSPHRASE in the environment.
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


private_key = snakemake.input.get("private_key")
sources = [path for path in snakemake.input if path != private_key]
outputs = list(snakemake.output)
if len(sources) != len(outputs):
    raise ValueError(f"{len(sources)} files to decrypt but {len(outputs)} outputs")

staging = Path(outputs[0]).parent  # same file system: the moves are renames
staging.mkdir(parents=True, exist_ok=True)
with tempfile.TemporaryDirectory(prefix=".ghga-decrypt-", dir=staging) as tmp:
    os.mkdir(Path(tmp, "in"))
    command = ["ghga-transfer", "decrypt", "--output-dir", str(Path(tmp, "out"))]
    if private_key:
        command += ["--my-private-key", private_key]
    command += shlex.split(snakemake.params.get("extra", ""))
    names = [Path(output).name for output in outputs]
    run(command + stage(sources, [f"{name}.c4gh" for name in names], Path(tmp, "in")))
    for index, (name, output) in enumerate(zip(names, outputs, strict=True)):
        shutil.move(Path(tmp, "out", f"{index}_{name}"), output)
