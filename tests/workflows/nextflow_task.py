"""Run a Nextflow process's script the way Nextflow would, without Nextflow.

Nextflow cannot run here (its launcher downloads a jar). What a task does is
still well defined: Nextflow renders the `script:` (or `stub:`) GString with the
task's variables, stages the inputs as symlinks under their names in a fresh
work directory, exports the secrets, runs the script with `bash -ue`, then
collects the declared `path(...)` outputs by glob and runs each `eval(...)`
output command in the same directory. This module does exactly that for one
process, with the Groovy variables given by the test (the `def` lines of the
script block are Groovy and are checked only by the reftrace parse).
"""

import glob
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

_ESCAPES = {"\\": "\\", "$": "$", "t": "\t", "n": "\n", '"': '"', "'": "'", "\n": ""}
_TOKEN = re.compile(r"\\(.)|\$\{([^}]*)\}|\$([A-Za-z_][\w.]*)", re.S)


def render(gstring: str, variables: dict[str, str]) -> str:
    """Interpolate a Groovy triple-quoted string; unknown variables are errors."""

    def replace(match: re.Match[str]) -> str:
        escaped, braced, bare = match.groups()
        if escaped is not None:
            if escaped not in _ESCAPES:
                raise ValueError(f"unsupported Groovy escape \\{escaped}")
            return _ESCAPES[escaped]
        name = (braced if braced is not None else bare).strip()
        if name not in variables:
            raise KeyError(f"the test gives no value for ${{{name}}}")
        return variables[name]

    return _TOKEN.sub(replace, gstring)


def _section(text: str, label: str, ends: tuple[str, ...]) -> str:
    start = re.search(rf"^\s*{label}:\s*$", text, re.M)
    if start is None:
        raise ValueError(f"no {label}: block")
    rest = text[start.end() :]
    stops = [
        m.start() for end in ends for m in [re.search(rf"^\s*{end}:", rest, re.M)] if m
    ]
    return rest[: min(stops)] if stops else rest


def _gstring(block: str) -> str:
    match = re.search(r'"""(.*?)"""', block, re.S)
    if match is None:
        raise ValueError('no """ string in the block')
    return match.group(1)


@dataclass(frozen=True)
class Process:
    """The parts of a process that a task run needs."""

    script: str
    stub: str
    output_paths: list[str]
    eval_commands: list[str]

    @classmethod
    def from_file(cls, main_nf: Path) -> "Process":
        text = main_nf.read_text()
        outputs = _section(text, "output", ("when", "script"))
        return cls(
            script=_gstring(_section(text, "script", ("stub",))),
            stub=_gstring(_section(text, "stub", ())),
            output_paths=re.findall(r'path\("([^"]*)"\)', outputs),
            eval_commands=re.findall(r'eval\("((?:[^"\\]|\\.)*)"\)', outputs),
        )


@dataclass(frozen=True)
class TaskResult:
    """What Nextflow would collect from the task."""

    returncode: int
    stderr: str
    outputs: dict[str, list[Path]]  # declared pattern -> matching files
    evals: list[str]  # stdout of each eval command, stripped


def run_task(
    process: Process,
    workdir: Path,
    variables: dict[str, str],
    staged: dict[str, Path],
    env: dict[str, str],
    *,
    stub: bool = False,
) -> TaskResult:
    """Stage inputs, run the (stub) script with bash -ue, collect the outputs."""
    workdir.mkdir(parents=True)
    for name, source in staged.items():
        (workdir / name).symlink_to(source.resolve())
    script = render(process.stub if stub else process.script, variables)
    (workdir / ".command.sh").write_text(f"#!/bin/bash -ue\n{script}")
    task = subprocess.run(
        ["bash", "-ue", ".command.sh"],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    outputs = {}
    for pattern in process.output_paths:
        rendered = render(pattern, variables)
        outputs[pattern] = sorted(Path(p) for p in glob.glob(str(workdir / rendered)))
    evals = [
        subprocess.run(
            ["bash", "-c", render(command, variables)],
            cwd=workdir, env=env, capture_output=True, text=True, check=True,
        ).stdout.strip()
        for command in process.eval_commands
    ]  # fmt: skip
    return TaskResult(task.returncode, task.stderr, outputs, evals)


def secret_env(base: dict[str, str], **secrets: str) -> dict[str, str]:
    """The task environment: base without any token, plus the secrets."""
    clean = {k: v for k, v in base.items() if not k.startswith("GHGA_")}
    return {**clean, **secrets, "PATH": base.get("PATH", os.defpath)}
