"""Look for secrets where other users could find them: argv, logs, job scripts.

`CmdlineWatch` samples `/proc/*/cmdline` of every process on the machine in a
thread while a workflow runs (every process's argv is world-readable);
`files_holding` searches files under directories for the secrets. Findings
name the secret and where it was, never the secret itself.
"""

import os
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path

__all__ = ["CmdlineWatch", "files_holding"]


class CmdlineWatch:
    """Samples every process's argv until stopped; a context manager."""

    def __init__(self, secrets: Mapping[str, str], interval_s: float = 0.02) -> None:
        self.secrets = {name: value.encode() for name, value in secrets.items()}
        self.interval_s = interval_s
        self.findings: set[str] = set()
        self.samples = 0
        self.commands_seen = 0
        self._seen: set[tuple[int, bytes]] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "CmdlineWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self.samples += 1
            self._stop.wait(self.interval_s)

    def _sample(self) -> None:
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/cmdline", "rb") as handle:
                    argv = handle.read()
            except OSError:
                continue  # the process ended meanwhile
            key = (int(entry.name), argv[:200])
            if key not in self._seen:
                self._seen.add(key)
                self.commands_seen += 1
            for name, value in self.secrets.items():
                if value in argv:
                    program = argv.split(b"\0", 1)[0].decode(errors="replace")
                    self.findings.add(
                        f"{name} in the argv of pid {entry.name} ({program})"
                    )


def files_holding(secrets: Mapping[str, str], roots: Iterable[Path]) -> list[str]:
    """Return `<name> in <file>` for each secret found in a file under roots."""
    found = []
    for root in roots:
        paths = [Path(root)] if Path(root).is_file() else Path(root).rglob("*")
        for path in paths:
            if not path.is_file() or path.is_symlink():
                continue
            try:
                data = path.read_bytes()
            except OSError:
                continue
            found += [
                f"{name} in {path}"
                for name, value in secrets.items()
                if value.encode() in data
            ]
    return found
