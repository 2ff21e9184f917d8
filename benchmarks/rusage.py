"""Measure one command alone: wall time, user+sys CPU seconds and peak RSS.

A child forked from a big process (a benchmark holding a sandbox client, say)
carries the parent's resident set until it execs, and Linux counts that in
the child's ``ru_maxrss``: every command then seems to need as much memory as
the benchmark. So the command is started by a small launcher process and
measured there, with ``wait4``, as GNU ``time`` does.
"""

import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

_LAUNCHER = """
import os, sys, time
start = time.perf_counter()
pid = os.posix_spawnp(sys.argv[1], sys.argv[1:], os.environ)
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - start
cpu = usage.ru_utime + usage.ru_stime
code = os.waitstatus_to_exitcode(status)
report = f"{wall} {cpu} {usage.ru_maxrss} {code}"
os.write(int(os.environ["RUSAGE_FD"]), report.encode())
"""


@dataclass(frozen=True)
class Usage:
    wall_s: float
    cpu_s: float
    rss_mib: float
    exit_code: int
    output: str


def measure(cmd: list[str], input_text: str | None = None, **popen: Any) -> Usage:
    """Run ``cmd`` via the launcher; ``popen`` goes to ``subprocess.Popen``.

    ``output`` holds whatever stdout/stderr were piped (for error messages).
    """
    read_fd, write_fd = os.pipe()
    env = {**(popen.pop("env", None) or os.environ), "RUSAGE_FD": str(write_fd)}
    stdin = subprocess.PIPE if input_text is not None else popen.pop("stdin", None)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-S", "-c", _LAUNCHER, *cmd],
            env=env,
            pass_fds=(write_fd,),
            stdin=stdin,
            text=True,
            **popen,
        )
    finally:
        os.close(write_fd)
    try:
        out, err = proc.communicate(input_text)
        fields = os.read(read_fd, 200).decode().split()
    finally:
        os.close(read_fd)
    if proc.returncode != 0 or len(fields) != 4:
        raise SystemExit(f"launcher failed for {' '.join(cmd)}: {err or ''}")
    wall, cpu, rss_kib, code = fields
    output = (out or "") + (err or "")
    return Usage(float(wall), float(cpu), int(rss_kib) / 1024, int(code), output)


def run(cmd: list[str], input_text: str | None = None, **popen: Any) -> Usage:
    """``measure``, ending the benchmark with the command's output if it fails."""
    usage = measure(cmd, input_text, **popen)
    if usage.exit_code != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{usage.output[-3000:]}")
    return usage
