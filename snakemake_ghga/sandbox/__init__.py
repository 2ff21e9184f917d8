"""The GHGA sandbox: a strict local GHGA that the official ghga-connector accepts.

Its own layer: imports `snakemake_ghga.errors`, `keys` and `crypt`, never the
client side (parts, transfer, api, client, cli). Needs the `[sandbox]` extra
(pyjwt[crypto], boto3). See docs/sandbox.md.
"""

from typing import TYPE_CHECKING, Any

from .records import AccessionInfo, BoxInfo, UploadInfo
from .requestlog import RequestLogEntry

if TYPE_CHECKING:
    from .app import Sandbox

__all__ = ["AccessionInfo", "BoxInfo", "RequestLogEntry", "Sandbox", "UploadInfo"]


def __getattr__(name: str) -> Any:
    """Import the server lazily, so `ghga-transfer` starts fast (boto3 is slow)."""
    if name == "Sandbox":
        from .app import Sandbox

        return Sandbox
    raise AttributeError(name)
