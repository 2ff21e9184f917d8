"""Turn the engine's errors into Snakemake's: `GhgaError` -> `WorkflowError`.

The message stays the engine's (what, why, what to do); only option names in
its hints are reworded, because the engine is shared with `ghga-transfer`, whose
hints say `--my-private-key` where a Snakemake user sets
`--storage-ghga-my-private-key`.

Imports only `snakemake_ghga.errors` (stdlib-only) and the interface.
"""

import re
from collections.abc import Iterator
from contextlib import contextmanager

from snakemake_interface_common.exceptions import WorkflowError

from snakemake_ghga.errors import GhgaError

__all__ = ["plugin_wording", "workflow_errors"]

_CLI_OPTION_RE = re.compile(
    r"(?<![\w-])--(my-private-key|my-public-key|ghga-public-key|part-size|"
    r"max-workers|tmp-dir|wkvs-url)\b"
)
_CLI_ENV_RE = re.compile(r"(?<!\w)GHGA_PUBLIC_KEY\b")


def plugin_wording(message: str) -> str:
    """Return the message with the CLI's option names replaced by the plugin's."""
    message = _CLI_OPTION_RE.sub(r"--storage-ghga-\1", message)
    return _CLI_ENV_RE.sub("SNAKEMAKE_STORAGE_GHGA_GHGA_PUBLIC_KEY", message)


@contextmanager
def workflow_errors() -> Iterator[None]:
    """Re-raise a `GhgaError` as a `WorkflowError` with the engine's message."""
    try:
        yield
    except GhgaError as err:
        raise WorkflowError(plugin_wording(str(err))) from err
