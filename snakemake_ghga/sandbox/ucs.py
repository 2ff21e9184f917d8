"""The Upload Controller Service (UCS) box API, strict: every check the reference names.

Imports the stdlib and the sandbox's `http`, `context`, `problems`, `records`,
`ucsrules` and `tokens`. Each call verifies its work order token (401 when
expired, invalid or of the wrong work type; 403 when its box, file or alias
differs from the request). Answers and `exception_id`s follow reference §1.5
and §9; the pure validation rules live in `ucsrules`.
"""

import copy
import time
import uuid

from .context import STORAGE_ALIAS, ServiceContext
from .http import Request, Response, Router, json_response
from .problems import HttpProblem
from .records import StateData, UploadRecord
from .tokens import WorkOrderClaims
from .ucsrules import (
    MAX_PART_COUNT,
    CreateRequest,
    check_part_size,
    check_parts,
    parse_close_body,
    parse_create_body,
    unprocessable,
)

__all__ = ["MAX_OPEN_UPLOADS_PER_BOX", "add_ucs_routes"]

MAX_OPEN_UPLOADS_PER_BOX = 5
_MAX_LIST_LIMIT = 1000
_BOX = r"/ucs/boxes/(?P<box_id>[^/]+)/uploads"
_FILE = _BOX + r"/(?P<file_id>[^/]+)"
_SUPERSEDED = ("cancelled", "failed")


def add_ucs_routes(router: Router, ctx: ServiceContext) -> None:
    """Register the UCS endpoints under /ucs."""
    health = json_response(200, {"status": "OK"})
    router.add("GET", r"/ucs/health", lambda r: health, "health")
    router.add("GET", _BOX, lambda r: _list_uploads(ctx, r), "api")
    router.add("POST", _BOX, lambda r: _create_upload(ctx, r), "api")
    router.add(
        "GET", _FILE + r"/parts/(?P<part>[^/]+)", lambda r: _part_url(ctx, r), "api"
    )
    router.add("PATCH", _FILE, lambda r: _close_upload(ctx, r), "api")
    router.add("DELETE", _FILE, lambda r: _delete_upload(ctx, r), "api")


# -- shared checks ------------------------------------------------------------


def _authorize(
    ctx: ServiceContext, request: Request, work_type: str, **expected: str
) -> WorkOrderClaims:
    """Verify the WOT and that its claims match the request (box, file, alias)."""
    claims = ctx.signer.verify(request.headers.get("Authorization"))
    if claims.work_type != work_type:
        raise HttpProblem(
            401,
            "notAuthenticated",
            f"a {claims.work_type!r} work order token cannot be used to {work_type}",
        )
    for name, value in {"box_id": request.params["box_id"], **expected}.items():
        if getattr(claims, name) != value:
            raise HttpProblem(
                403,
                "wrongWorkOrderToken",
                f"the work order token's {name} does not match the request",
            )
    return claims


def _check_box(state: StateData, box_id: str) -> None:
    if box_id not in state["boxes"]:
        raise HttpProblem(404, "boxNotFound", f"no upload box {box_id}")


def _upload_of(state: StateData, request: Request) -> UploadRecord:
    _check_box(state, request.params["box_id"])
    upload = state["uploads"].get(request.params["file_id"])
    if upload is None or upload["box_id"] != request.params["box_id"]:
        raise HttpProblem(
            404,
            "fileUploadNotFound",
            f"no file upload {request.params['file_id']} in this box",
        )
    return upload


def _int_query(request: Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query.get(name)
    if text is None:
        return default
    if not text.isdigit() or not low <= int(text) <= high:
        raise unprocessable(f"{name} must be an integer in [{low}, {high}]")
    return int(text)


# -- U1 listing ---------------------------------------------------------------


def _listing_item(upload: UploadRecord, with_checksums: bool) -> dict[str, object]:
    checksums = {
        "decrypted_sha256": upload["decrypted_sha256"],
        "encrypted_parts_md5": upload["encrypted_parts_md5"],
        "encrypted_parts_sha256": upload["encrypted_parts_sha256"],
    }
    return {
        "id": upload["id"],
        "box_id": upload["box_id"],
        "alias": upload["alias"],
        "state": upload["state"],
        "decrypted_size": upload["decrypted_size"],
        "encrypted_size": upload["encrypted_size"],
        "part_size": upload["part_size"],
        "storage_alias": upload["storage_alias"],
        **(checksums if with_checksums else {}),
    }


def _list_uploads(ctx: ServiceContext, request: Request) -> Response:
    _authorize(ctx, request, "view")
    skip = _int_query(request, "skip", 0, 0, 10**9)
    limit = _int_query(request, "limit", 10, 1, _MAX_LIST_LIMIT)
    with_checksums = request.query.get("with_checksums", "false") == "true"
    box_id = request.params["box_id"]
    with ctx.state.transaction() as state:
        _check_box(state, box_id)
        uploads = [u for u in state["uploads"].values() if u["box_id"] == box_id]
    uploads.sort(key=lambda u: (u["alias"], u["created"]))
    items = [_listing_item(u, with_checksums) for u in uploads[skip : skip + limit]]
    return json_response(200, {"items": items, "total_count": len(uploads)})


# -- U2 create ----------------------------------------------------------------


def _resolve_duplicates(
    ctx: ServiceContext, in_box: list[UploadRecord], create: CreateRequest
) -> None:
    """409 for a live upload of the alias, unless overwrite may cancel it."""
    for upload in in_box:
        if upload["alias"] != create.alias or upload["state"] in _SUPERSEDED:
            continue
        if not (create.overwrite and upload["state"] in ("init", "inbox")):
            raise HttpProblem(
                409,
                "fileUploadAlreadyExists",
                f"a file with alias {create.alias!r} already exists",
                {"alias": create.alias},
            )
        _cancel(ctx, upload)


def _check_capacity(
    in_box: list[UploadRecord], max_size_bytes: int, decrypted_size: int
) -> None:
    """429 beyond 5 uploads in `init`; 507 beyond the box's size limit."""
    if sum(u["state"] == "init" for u in in_box) >= MAX_OPEN_UPLOADS_PER_BOX:
        raise HttpProblem(
            429,
            "tooManyOpenUploads",
            f"the box already has {MAX_OPEN_UPLOADS_PER_BOX} uploads in progress",
        )
    used = sum(u["decrypted_size"] for u in in_box if u["state"] not in _SUPERSEDED)
    if used + decrypted_size > max_size_bytes:
        raise HttpProblem(
            507,
            "boxMaxSizeExceeded",
            f"the box would hold {used + decrypted_size} bytes, more than its "
            f"{max_size_bytes}",
        )


def _admit(
    ctx: ServiceContext, state: StateData, box_id: str, create: CreateRequest
) -> None:
    """Apply the box rules: existence, lock, part size, duplicates, capacity."""
    _check_box(state, box_id)
    box = state["boxes"][box_id]
    if box["locked"]:
        raise HttpProblem(409, "boxStateError", "the upload box is locked")
    check_part_size(create.encrypted_size, create.part_size)
    in_box = [u for u in state["uploads"].values() if u["box_id"] == box_id]
    _resolve_duplicates(ctx, in_box, create)
    _check_capacity(in_box, box["max_size_bytes"], create.decrypted_size)


def _new_record(
    file_id: str, box_id: str, create: CreateRequest, object_upload_id: str
) -> UploadRecord:
    return UploadRecord(
        id=file_id,
        box_id=box_id,
        alias=create.alias,
        decrypted_size=create.decrypted_size,
        encrypted_size=create.encrypted_size,
        part_size=create.part_size,
        state="init",
        storage_alias=STORAGE_ALIAS,
        object_upload_id=object_upload_id,
        created=time.time(),
        decrypted_sha256=None,
        encrypted_md5=None,
        encrypted_parts_md5=[],
        encrypted_parts_sha256=[],
        accession=None,
        failure_reason=None,
    )


def _create_upload(ctx: ServiceContext, request: Request) -> Response:
    create = parse_create_body(request.json())
    _authorize(ctx, request, "create", alias=create.alias)
    box_id, file_id = request.params["box_id"], str(uuid.uuid4())
    key = f"inbox/{file_id}"
    object_upload_id = ctx.store.create_multipart(key)
    try:
        with ctx.state.transaction() as state:
            _admit(ctx, state, box_id, create)
            state["uploads"][file_id] = _new_record(
                file_id, box_id, create, object_upload_id
            )
    except HttpProblem:
        ctx.store.abort_multipart(key, object_upload_id)
        raise
    body = {"file_id": file_id, "alias": create.alias, "storage_alias": STORAGE_ALIAS}
    return json_response(201, body)


# -- U3 part URL --------------------------------------------------------------


def _part_url(ctx: ServiceContext, request: Request) -> Response:
    _authorize(ctx, request, "upload", file_id=request.params["file_id"])
    text = request.params["part"]
    if not text.isdigit() or not 1 <= int(text) <= MAX_PART_COUNT:
        raise unprocessable(f"part number must be in [1, {MAX_PART_COUNT}]")
    with ctx.state.transaction() as state:
        upload = _upload_of(state, request)
        key, upload_id = f"inbox/{upload['id']}", upload["object_upload_id"]
        in_progress = upload["state"] == "init"
    if not in_progress or not ctx.store.has_multipart(key, upload_id):
        raise HttpProblem(
            404, "s3UploadNotFound", "no multipart upload in progress for this file"
        )
    return json_response(200, ctx.store.part_upload_url(key, upload_id, int(text)))


# -- U5 close -----------------------------------------------------------------


def _complete(ctx: ServiceContext, upload: UploadRecord, encrypted_md5: str) -> None:
    """Check the parts and complete the object; mark the upload failed if wrong."""
    key, upload_id = f"inbox/{upload['id']}", upload["object_upload_id"]
    try:
        parts = ctx.store.list_parts(key, upload_id)
        check_parts(parts, upload["part_size"], upload["encrypted_size"], encrypted_md5)
        ctx.store.complete_multipart(key, upload_id, parts)
    except HttpProblem as problem:
        with ctx.state.transaction() as state:
            record = state["uploads"][upload["id"]]
            record["state"], record["failure_reason"] = "failed", problem.description
        ctx.store.abort_multipart(key, upload_id)
        raise


def _close_upload(ctx: ServiceContext, request: Request) -> Response:
    close = parse_close_body(request.json())
    _authorize(ctx, request, "close", file_id=request.params["file_id"])
    with ctx.state.transaction() as state:
        upload = copy.copy(_upload_of(state, request))
    if upload["state"] in _SUPERSEDED:
        raise HttpProblem(
            409, "fileUploadStateError", f"the file upload is {upload['state']}"
        )
    if upload["state"] != "init":
        return Response(204)  # already closed: idempotent, as the real UCS
    _complete(ctx, upload, close.encrypted_md5)
    with ctx.state.transaction() as state:
        record = state["uploads"][upload["id"]]
        record["state"], record["decrypted_sha256"] = "inbox", close.decrypted_sha256
        record["encrypted_md5"] = close.encrypted_md5
        record["encrypted_parts_md5"] = close.encrypted_parts_md5
        record["encrypted_parts_sha256"] = close.encrypted_parts_sha256
    ctx.interrogator.submit(upload["id"])
    return Response(204)


# -- U6 delete ----------------------------------------------------------------


def _cancel(ctx: ServiceContext, upload: UploadRecord) -> None:
    """Cancel an upload in place (the caller holds the state transaction)."""
    key = f"inbox/{upload['id']}"
    if upload["state"] == "init":
        ctx.store.abort_multipart(key, upload["object_upload_id"])
    elif upload["state"] in ("inbox", "failed"):
        ctx.store.delete_object(key)
    upload["state"] = "cancelled"


def _delete_upload(ctx: ServiceContext, request: Request) -> Response:
    _authorize(ctx, request, "delete", file_id=request.params["file_id"])
    with ctx.state.transaction() as state:
        upload = _upload_of(state, request)
        if state["boxes"][upload["box_id"]]["locked"]:
            raise HttpProblem(409, "boxStateError", "the upload box is locked")
        if upload["state"] != "cancelled":
            _cancel(ctx, upload)
    return Response(204)
