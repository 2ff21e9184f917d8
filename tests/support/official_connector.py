"""Run the official `ghga-connector==4.0.1` CLI in its own cached virtualenv.

Its pins conflict with ours, so it lives in `<repo>/.cache/ghga-connector-venv`
(override with GHGA_CONNECTOR_VENV), created once with the running Python and
pip from PyPI, guarded by a file lock so parallel test processes share it.
Each run gets a clean environment (no proxies, no GHGA_CONNECTOR_* leaking in,
HOME = the work dir so no ~/.ghga_connector.yaml applies), a work dir holding
`key.pub`/`key.sec`, the WKVS URL in GHGA_CONNECTOR_WKVS_API_URL, and the work
package token on stdin, which is how GHGA's own testbed drives it.
"""

import fcntl
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from snakemake_ghga.crypt4gh import keys

__all__ = [
    "CONNECTOR_VERSION",
    "ConnectorRun",
    "connector_executable",
    "prepare_workdir",
    "run_connector",
]

CONNECTOR_VERSION = "4.0.1"
REPO_ROOT = Path(__file__).resolve().parents[2]
_DEFAULT_VENV = REPO_ROOT / ".cache" / "ghga-connector-venv"
_DROPPED_ENV_PREFIXES = ("GHGA_CONNECTOR_", "C4GH_")
_DROPPED_ENV = {
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "SSL_CERT_FILE",
    "REQUESTS_CA_BUNDLE",
}


@dataclass(frozen=True, slots=True)
class ConnectorRun:
    """The outcome of one official-connector command."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def describe(self) -> str:
        """Everything needed to understand a failed run, for assertion messages."""
        return (
            f"ghga-connector {' '.join(self.args)} -> {self.returncode}\n"
            f"--- stdout ---\n{self.stdout[-4000:]}\n"
            f"--- stderr ---\n{self.stderr[-4000:]}"
        )


def _venv_dir() -> Path:
    return Path(os.environ.get("GHGA_CONNECTOR_VENV", _DEFAULT_VENV))


def connector_executable() -> Path:
    """Return the `ghga-connector` script, installing it on first use.

    Raises:
        RuntimeError: the venv could not be created or pip failed (offline?).
    """
    venv = _venv_dir()
    script = venv / "bin" / "ghga-connector"
    stamp = venv / f".installed-ghga-connector-{CONNECTOR_VERSION}"
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / ".ghga-connector-venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not stamp.exists():
            _install(venv)
            stamp.touch()
    return script


def _install(venv: Path) -> None:
    steps = [
        [sys.executable, "-m", "venv", "--clear", str(venv)],
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            f"ghga-connector=={CONNECTOR_VERSION}",
        ],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(
                f"installing ghga-connector {CONNECTOR_VERSION} failed at "
                f"{' '.join(step[:4])}: {done.stderr[-2000:]}"
            )


def prepare_workdir(workdir: Path, secret_key: bytes, public_key: bytes) -> Path:
    """Write `key.sec` (unencrypted) and `key.pub` into `workdir`; return it."""
    workdir.mkdir(parents=True, exist_ok=True)
    keys.write_private_key(workdir / "key.sec", secret_key)
    keys.write_public_key(workdir / "key.pub", public_key)
    return workdir


def _environment(wkvs_url: str, extra: dict[str, str], workdir: Path) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in _DROPPED_ENV and not name.startswith(_DROPPED_ENV_PREFIXES)
    }
    env.update(
        GHGA_CONNECTOR_WKVS_API_URL=wkvs_url,
        NO_PROXY="127.0.0.1,localhost",
        HOME=str(workdir),
        COLUMNS="200",
        TERM="dumb",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def run_connector(
    args: list[str],
    *,
    workdir: Path,
    wkvs_url: str,
    token: str | None = None,
    env: dict[str, str] | None = None,
    timeout_s: float = 300,
) -> ConnectorRun:
    """Run `ghga-connector ARGS` in `workdir` with the token on stdin.

    Args:
        args: the command line after `ghga-connector`.
        workdir: current directory; must hold key.pub and key.sec.
        wkvs_url: `http://127.0.0.1:PORT/.well-known` of the sandbox.
        token: the work package token (`<wp_id>:<base64>`), sent with a newline.
        env: extra variables, e.g. {"GHGA_CONNECTOR_PART_SIZE": "8388608"}.
        timeout_s: kill the process after this long.
    """
    done = subprocess.run(
        [str(connector_executable()), *args],
        cwd=workdir,
        env=_environment(wkvs_url, env or {}, workdir),
        input=f"{token}\n" if token is not None else "",
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    return ConnectorRun(tuple(args), done.returncode, done.stdout, done.stderr)
