"""Settings the plugin reads itself: `SNAKEMAKE_STORAGE_GHGA_*` and token files.

No setting is declared `env_var` to Snakemake (see `settings.py` for why), so
the plugin reads the variables of the same names itself, in the main process
and in every job (jobs inherit the environment: the local executor's
subprocesses and SLURM's `sbatch --export=ALL` alike). A value may be tagged
as Snakemake writes tagged values, `[wp1::value1, wp2::value2]`, for providers
registered with tags.

Tokens come from the environment or from a token file, whose mode and owner
are checked as ssh checks a private key: a token file that others can read is
refused, because the token then is no secret any more.

Imports the stdlib only.
"""

import os
import socket
import stat
from collections.abc import Mapping
from pathlib import Path

__all__ = ["ENV_PREFIX", "env_name", "read_token_file", "setting_from_env"]

ENV_PREFIX = "SNAKEMAKE_STORAGE_GHGA_"
_TAG_SEPARATOR = "::"


def env_name(field_name: str) -> str:
    """Return the environment variable of a setting, e.g. ..._UPLOAD_TOKEN."""
    return ENV_PREFIX + field_name.upper()


def setting_from_env(
    field_name: str, tag: str | None, environ: Mapping[str, str] | None = None
) -> str | None:
    """Return the value of a setting's variable for ``tag`` (None: unset/empty).

    An untagged value applies to every tag; a tagged list without an entry for
    ``tag`` (and without an untagged entry) gives None.
    """
    raw = (os.environ if environ is None else environ).get(env_name(field_name))
    if not raw or not raw.strip():
        return None
    raw = raw.strip()
    if not (raw.startswith("[") and raw.endswith("]")):
        return raw
    untagged = None
    for item in raw[1:-1].split(","):
        item = item.strip()
        item_tag, separator, value = item.partition(_TAG_SEPARATOR)
        if not separator:
            untagged = item or untagged
        elif item_tag == tag and value:
            return value
    return untagged


def read_token_file(path: Path, option: str) -> str:
    """Return the token in ``path``, refusing files that others can read.

    Raises:
        ValueError: missing, unreadable, empty, not ours or readable by others;
            the message names the option, the path, the host and the fix.
    """
    where = f"{option}: {path}"
    try:
        info = path.stat()
    except FileNotFoundError:
        raise ValueError(
            f"{where} does not exist on host {socket.gethostname()}; on a cluster, "
            "put the token file on a file system that every node mounts"
        ) from None
    if not stat.S_ISREG(info.st_mode):
        raise ValueError(f"{where} is not a regular file")
    if info.st_uid != os.geteuid() or info.st_mode & 0o077:
        raise ValueError(
            f"{where} is mode {stat.S_IMODE(info.st_mode):04o}, owner uid "
            f"{info.st_uid} (you are uid {os.geteuid()}): a token file must be "
            f"yours and readable by you only; run `chmod 600 {path}`, and revoke "
            "the token in the GHGA Data Portal if others could have read it"
        )
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"{where} cannot be read ({type(err).__name__})") from None
    if not token:
        raise ValueError(f"{where} is empty; put the token from the Data Portal in it")
    return token
