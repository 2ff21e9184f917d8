"""The GHGA sandbox: a strict local GHGA that the official ghga-connector accepts.

Its own layer: imports `snakemake_ghga.errors`, `keys` and `crypt`, never the
client side (parts, transfer, api, client, cli). Needs the `[sandbox]` extra
(pyjwt[crypto], boto3). See docs/sandbox.md.
"""

from .app import Sandbox
from .records import AccessionInfo, BoxInfo, UploadInfo
from .requestlog import RequestLogEntry

__all__ = ["AccessionInfo", "BoxInfo", "RequestLogEntry", "Sandbox", "UploadInfo"]
