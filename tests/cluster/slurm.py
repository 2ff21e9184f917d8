"""A single-node SLURM on localhost for tests and benchmarks, stopped by PID.

    python -m tests.cluster.slurm start DIR   # prints `export PATH=DIR/bin:…`
    python -m tests.cluster.slurm stop DIR

Everything lives in DIR: the munge key and socket, `slurm.conf`, the state,
spool, log and PID files, and `bin/`, wrappers for the client commands
(`sbatch`, `srun`, `squeue`, …) that set `SLURM_CONF`. Put `DIR/bin` first on
PATH: the wrappers are how every client finds this cluster, even inside a job,
where the jobstep executor removes every `SLURM_*` variable (SLURM_CONF
included) before its `srun`. Nothing is written outside DIR, so no
`/etc/slurm/slurm.conf` is needed and two clusters never meet.

The daemons (`munged`, `slurmctld`, `slurmd`) run in the foreground as our
children, in their own sessions; their PIDs are kept in `DIR/pids` and `stop`
signals exactly those. Ports are free ephemeral ones on 127.0.0.1. Needs the
Debian packages `slurmctld slurmd slurm-client munge` and root (SLURM 22.05:
facts in ../shared/reference/cluster.md).
"""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["CLIENT_COMMANDS", "LocalSlurm", "slurm_available"]

CLIENT_COMMANDS = ("sbatch", "srun", "squeue", "scontrol", "scancel", "sinfo", "sacct")
_DAEMONS = ("munged", "slurmctld", "slurmd")
_START_TIMEOUT_S = 30.0


def slurm_available() -> str | None:
    """Return why a local SLURM cannot run here, or None if it can."""
    missing = [
        name
        for name in (*_DAEMONS, "mungekey", "sbatch")
        if not any(Path(d, name).is_file() for d in ("/usr/sbin", "/usr/bin", "/sbin"))
    ]
    if missing:
        return f"missing {', '.join(missing)} (Debian: slurmctld slurmd slurm-client munge)"
    if os.geteuid() != 0:
        return "a local SLURM needs root (SlurmdUser=root)"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalSlurm:
    """A one-node SLURM cluster rooted in `root`; a context manager."""

    def __init__(self, root: Path, cpus: int | None = None) -> None:
        self.root = Path(root).resolve()
        self.cpus = cpus or os.cpu_count() or 2
        self.conf = self.root / "slurm.conf"
        self.bin = self.root / "bin"
        self.state_dir = self.root / "state"
        self.log_dir = self.root / "log"
        self._children: list[subprocess.Popen[bytes]] = []  # reaped by stop()

    def __enter__(self) -> "LocalSlurm":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """Return an environment whose client commands reach this cluster."""
        env = dict(os.environ if base is None else base)
        env["PATH"] = f"{self.bin}{os.pathsep}{env.get('PATH', '')}"
        env["SLURM_CONF"] = str(self.conf)
        return env

    def start(self) -> None:
        """Write the files, start munged, slurmctld and slurmd; wait for `idle`."""
        stop_root(self.root)  # daemons a previous start left here (run twice)
        for sub in ("munge", "state", "spool", "log", "run", "bin"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        (self.root / "munge").chmod(0o755)  # munged insists on it
        self._write_munge_key()
        self._write_conf()
        self._write_wrappers()
        munge = self.root / "munge"
        self._spawn(
            "munged",
            ["munged", "-F", "--force", f"--key-file={munge / 'munge.key'}",
             f"--socket={munge / 'munge.socket'}", f"--pid-file={munge / 'munged.pid'}",
             f"--log-file={self.log_dir / 'munged.log'}",
             f"--seed-file={munge / 'munged.seed'}"],
        )  # fmt: skip
        self._wait_for(lambda: (munge / "munge.socket").exists(), "munged's socket")
        self._spawn("slurmctld", ["slurmctld", "-D", "-i", "-f", str(self.conf)])
        self._spawn("slurmd", ["slurmd", "-D", "-f", str(self.conf), "-N", "localhost"])
        self._wait_for(self._node_idle, "the node to become idle")

    def stop(self) -> None:
        """Signal the daemons started in this root (by PID), wait, forget them."""
        stop_root(self.root)
        for child in self._children:
            child.wait()
        self._children.clear()

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = open(self.log_dir / f"{name}.out", "ab")  # noqa: SIM115 (child keeps it)
        with log:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=self.env(),
            )
        self._children.append(process)
        with open(self.root / "pids", "a", encoding="utf-8") as pids:
            pids.write(f"{name} {process.pid}\n")

    def _write_munge_key(self) -> None:
        key = self.root / "munge" / "munge.key"
        if not key.exists():
            fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(os.urandom(1024))

    def _write_conf(self) -> None:
        root = self.root
        lines = {
            "ClusterName": "ghgatest",
            "SlurmctldHost": "localhost",
            "SlurmctldPort": _free_port(),
            "SlurmdPort": _free_port(),
            "SlurmUser": "root",
            "SlurmdUser": "root",
            "AuthType": "auth/munge",
            "AuthInfo": f"socket={root / 'munge' / 'munge.socket'}",
            "CredType": "cred/munge",
            "ProctrackType": "proctrack/linuxproc",
            "TaskPlugin": "task/none",
            "JobAcctGatherType": "jobacct_gather/none",
            "AccountingStorageType": "accounting_storage/none",
            "SelectType": "select/cons_tres",
            "SelectTypeParameters": "CR_Core_Memory",
            "MpiDefault": "none",
            "ReturnToService": 2,
            "MinJobAge": 300,
            "SchedulerType": "sched/backfill",
            "StateSaveLocation": root / "state",
            "SlurmdSpoolDir": root / "spool",
            "SlurmctldPidFile": root / "run" / "slurmctld.pid",
            "SlurmdPidFile": root / "run" / "slurmd.pid",
            "SlurmctldLogFile": root / "log" / "slurmctld.log",
            "SlurmdLogFile": root / "log" / "slurmd.log",
            "NodeName": f"localhost NodeAddr=127.0.0.1 CPUs={self.cpus} "
            "RealMemory=8000 State=UNKNOWN",
            "PartitionName": "debug Nodes=localhost Default=YES MaxTime=INFINITE "
            "State=UP",
        }
        text = "".join(f"{key}={value}\n" for key, value in lines.items())
        self.conf.write_text(text, encoding="utf-8")

    def _write_wrappers(self) -> None:
        for name in CLIENT_COMMANDS:
            wrapper = self.bin / name
            wrapper.write_text(
                f'#!/bin/sh\nSLURM_CONF={self.conf} exec /usr/bin/{name} "$@"\n',
                encoding="utf-8",
            )
            wrapper.chmod(0o755)

    def _node_idle(self) -> bool:
        answer = subprocess.run(
            ["sinfo", "-h", "-N", "-o", "%t"],
            env=self.env(),
            capture_output=True,
            text=True,
            check=False,
        )
        return answer.returncode == 0 and answer.stdout.strip() == "idle"

    def _wait_for(self, ready: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not ready():
            if time.monotonic() > deadline:
                logs = "; ".join(
                    f"{p.name}: {p.read_text(errors='replace')[-400:]!r}"
                    for p in sorted(self.log_dir.glob("*"))
                )
                self.stop()
                raise RuntimeError(f"local SLURM: no {what} after 30 s ({logs})")
            time.sleep(0.2)


def stop_root(root: Path) -> None:
    """Stop the daemons listed in ROOT/pids: TERM, then KILL after 10 s."""
    pids_file = Path(root) / "pids"
    if not pids_file.exists():
        return
    pids = [
        int(line.split()[1])
        for line in pids_file.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    for pid in reversed(pids):  # slurmd, slurmctld, then munged
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in pids:
        _signal(pid, signal.SIGKILL)
        _reap(pid)
    pids_file.unlink()


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _alive(pid: int) -> bool:
    _reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _reap(pid: int) -> None:
    # Not our child (stopped from another process): nothing to reap.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def main(argv: list[str]) -> int:
    """`start DIR` or `stop DIR`."""
    if len(argv) != 2 or argv[0] not in ("start", "stop"):
        print("usage: python -m tests.cluster.slurm start|stop DIR", file=sys.stderr)
        return 2
    root = Path(argv[1])
    if argv[0] == "stop":
        stop_root(root)
        return 0
    reason = slurm_available()
    if reason is not None:
        print(f"cannot start SLURM: {reason}", file=sys.stderr)
        return 1
    cluster = LocalSlurm(root)
    cluster.start()
    print(f"export PATH={cluster.bin}:$PATH SLURM_CONF={cluster.conf}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
