"""The Download Controller Service (DCS): DRS objects, staging and personal envelopes.

Imports the stdlib and the sandbox's `http`, `context`, `problems`, `records`
and `tokens`. The first request for an accession starts its staging; until
`stage_delay_s` has passed it answers 202 with an integer `Retry-After`. Then
the DRS object: `size` is the outbox ciphertext (no header), the checksum is
the plaintext SHA-256, and the access method is a presigned S3 GET. The
envelope is a fresh header for the user key named in the WOT claim.
"""

import base64
import datetime
import math
import time

from .context import ServiceContext
from .http import Request, Response, Router, json_response
from .hub import outbox_key
from .problems import HttpProblem
from .records import AccessionRecord

__all__ = ["add_dcs_routes"]

_OBJECT = r"/dcs/objects/(?P<accession>[^/]+)"


def add_dcs_routes(router: Router, ctx: ServiceContext) -> None:
    """Register the DCS endpoints under /dcs."""
    router.add(
        "GET", r"/dcs/health", lambda r: json_response(200, {"status": "OK"}), "health"
    )
    router.add("GET", _OBJECT, lambda r: _drs_object(ctx, r), "api")
    router.add("GET", _OBJECT + r"/envelopes", lambda r: _envelope(ctx, r), "api")


def _authorized_accession(
    ctx: ServiceContext, request: Request
) -> tuple[AccessionRecord, bytes]:
    """Verify the download WOT against the path; return the record and user key."""
    claims = ctx.signer.verify(request.headers.get("Authorization"))
    accession = request.params["accession"]
    if claims.work_type != "download":
        raise HttpProblem(
            401,
            "notAuthenticated",
            f"a {claims.work_type!r} work order token cannot download",
        )
    if claims.accession != accession:
        raise HttpProblem(
            403,
            "wrongFileAuthorizationError",
            f"the work order token is not for {accession}",
        )
    with ctx.state.transaction() as state:
        record = state["accessions"].get(accession)
    if record is None:
        raise HttpProblem(404, "noSuchObject", f"{accession} is not registered")
    if claims.file_id != record["file_id"]:
        raise HttpProblem(
            403,
            "wrongFileAuthorizationError",
            f"the work order token is not for {accession}",
        )
    return record, claims.user_public_key


def _staging_wait_s(ctx: ServiceContext, accession: str) -> int:
    """Seconds until the file is staged (0 when it is); starts staging."""
    if ctx.stage_delay_s <= 0:
        return 0
    now = time.monotonic()
    with ctx.staging_lock:
        started = ctx.staging_started.setdefault(accession, now)
    remaining = started + ctx.stage_delay_s - now
    return max(1, math.ceil(remaining)) if remaining > 0 else 0


def _drs_object(ctx: ServiceContext, request: Request) -> Response:
    record, _ = _authorized_accession(ctx, request)
    accession = record["accession"]
    wait_s = _staging_wait_s(ctx, accession)
    if wait_s:
        headers = (("Retry-After", str(wait_s)), ("Cache-Control", "no-store"))
        return json_response(202, None, headers)
    url = ctx.store.download_url(outbox_key(record["file_id"]))
    created = datetime.datetime.fromtimestamp(record["created"], datetime.UTC)
    drs = {
        "id": accession,
        "self_uri": f"drs://{request.base_url.split('://', 1)[1]}/{accession}",
        "size": record["object_size"],
        "created_time": created.isoformat(),
        "checksums": [{"checksum": record["decrypted_sha256"], "type": "sha-256"}],
        "access_methods": [{"type": "s3", "access_url": {"url": url}}],
    }
    cache = (("Cache-Control", f"max-age={ctx.url_ttl_s}, private"),)
    return json_response(200, drs, cache)


def _envelope(ctx: ServiceContext, request: Request) -> Response:
    record, user_key = _authorized_accession(ctx, request)
    header = ctx.interrogator.envelope(record, user_key)
    return json_response(200, base64.b64encode(header).decode("ascii"))
