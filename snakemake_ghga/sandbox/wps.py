"""The well-known value service (WKVS) and the work package service (WPS).

Imports the stdlib and the sandbox's `http`, `context`, `problems`, `tokens`
and `records`. The WPS answers W1 (work package), W2 (download WOT) and W3
(upload-path WOT) as the reference describes: access token as `Bearer`, 403
for any package it cannot grant, 201 with a JSON string for a sealed WOT.
"""

import base64
import datetime
import time

from .context import STORAGE_ALIAS, ServiceContext
from .http import Request, Response, Router, json_response
from .problems import HttpProblem
from .records import WorkPackageRecord
from .tokens import WorkOrderClaims, is_access_token, seal_to

__all__ = ["add_wkvs_routes", "add_wps_routes"]

_UPLOAD_WORK_TYPES = ("create", "upload", "close", "delete", "view")
_WP = r"/wps/work-packages/(?P<wp_id>[^/]+)"


def add_wkvs_routes(router: Router, ctx: ServiceContext) -> None:
    """Register GET /.well-known/values."""
    router.add("GET", r"/\.well-known/values", lambda r: _values(ctx, r), "api")


def _values(ctx: ServiceContext, request: Request) -> Response:
    base = request.base_url
    key = base64.b64encode(ctx.hub_public_key).decode("ascii")
    return json_response(
        200,
        {
            "crypt4gh_public_keys": {STORAGE_ALIAS: key},
            "wps_api_url": f"{base}/wps",
            "ucs_api_url": f"{base}/ucs",
            "dcs_api_url": f"{base}/dcs",
            "storage_aliases": [STORAGE_ALIAS],
            "storage_labels": {STORAGE_ALIAS: "GHGA sandbox"},
        },
    )


def add_wps_routes(router: Router, ctx: ServiceContext) -> None:
    """Register the WPS endpoints under /wps."""
    router.add(
        "GET", r"/wps/health", lambda r: json_response(200, {"status": "OK"}), "health"
    )
    router.add("GET", _WP, lambda r: _work_package(ctx, r), "api")
    router.add(
        "POST",
        _WP + r"/files/(?P<accession>[^/]+)/work-order-tokens",
        lambda r: _download_wot(ctx, r),
        "api",
    )
    router.add(
        "POST",
        _WP + r"/boxes/(?P<box_id>[^/]+)/work-order-tokens",
        lambda r: _upload_wot(ctx, r),
        "api",
    )


def _no_access(description: str) -> HttpProblem:
    return HttpProblem(403, "noWorkPackageAccess", description)


def _authorize(ctx: ServiceContext, request: Request) -> WorkPackageRecord:
    """The work package of the path, if the Bearer access token opens it."""
    scheme, _, token = (request.headers.get("Authorization") or "").partition(" ")
    with ctx.state.transaction() as state:
        package = state["work_packages"].get(request.params["wp_id"])
    if package is None or scheme.lower() != "bearer":
        raise _no_access("work package not found or no access token sent")
    if not is_access_token(token.strip(), package["token_sha256"]):
        raise _no_access("the access token does not open this work package")
    if time.time() > package["expires"]:
        raise _no_access("the work package has expired")
    return package


def _iso(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).isoformat()


def _work_package(ctx: ServiceContext, request: Request) -> Response:
    package = _authorize(ctx, request)
    return json_response(
        200,
        {
            "type": package["type"],
            "files": package["files"],
            "research_data_upload_box_id": package["research_data_upload_box_id"],
            "file_upload_box_id": package["file_upload_box_id"],
            "created": _iso(package["created"]),
            "expires": _iso(package["expires"]),
        },
    )


def _sealed_wot(ctx: ServiceContext, claims: WorkOrderClaims) -> Response:
    sealed = seal_to(claims.user_public_key, ctx.signer.issue(claims).encode())
    return json_response(201, sealed, (("Cache-Control", "max-age=30, private"),))


def _download_wot(ctx: ServiceContext, request: Request) -> Response:
    package = _authorize(ctx, request)
    accession = request.params["accession"]
    if package["type"] != "download" or accession not in (package["files"] or {}):
        raise _no_access(f"the work package does not grant access to {accession}")
    with ctx.state.transaction() as state:
        record = state["accessions"].get(accession)
    if record is None:
        raise _no_access(f"{accession} is not registered")
    user_key = base64.b64decode(package["user_public_key"])
    claims = WorkOrderClaims(
        "download", user_key, file_id=record["file_id"], accession=accession
    )
    return _sealed_wot(ctx, claims)


def _upload_wot(ctx: ServiceContext, request: Request) -> Response:
    package = _authorize(ctx, request)
    if package["type"] != "upload":
        raise _no_access("the work package is not an upload package")
    if request.params["box_id"] != package["research_data_upload_box_id"]:
        raise _no_access("the box id in the path is not the package's upload box")
    work_type, alias, file_id = _upload_wot_body(request.json())
    user_key = base64.b64decode(package["user_public_key"])
    claims = WorkOrderClaims(
        work_type,
        user_key,
        box_id=package["file_upload_box_id"],
        alias=alias if work_type == "create" else None,
        file_id=file_id if work_type in ("upload", "close", "delete") else None,
    )
    return _sealed_wot(ctx, claims)


def _upload_wot_body(body: object) -> tuple[str, str | None, str | None]:
    """Validate the W3 body: work_type, plus alias (create) or file_id."""
    if not isinstance(body, dict) or not {"work_type", "alias", "file_id"} <= set(body):
        raise HttpProblem(
            422, "validationError", "body needs the keys work_type, alias and file_id"
        )
    work_type, alias, file_id = body["work_type"], body["alias"], body["file_id"]
    if work_type not in _UPLOAD_WORK_TYPES:
        raise HttpProblem(422, "validationError", f"unknown work_type {work_type!r}")
    if work_type == "create" and not (isinstance(alias, str) and alias):
        raise HttpProblem(422, "validationError", "work_type create needs an alias")
    needs_file = work_type in ("upload", "close", "delete")
    if needs_file and not (isinstance(file_id, str) and file_id):
        raise HttpProblem(
            422, "validationError", f"work_type {work_type} needs a file_id"
        )
    return (
        work_type,
        alias if isinstance(alias, str) else None,
        file_id if isinstance(file_id, str) else None,
    )
