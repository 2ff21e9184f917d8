"""The Upload Controller Service (UCS) box API, strict: every check the reference names.

Imports the stdlib and the sandbox's `http`, `context`, `problems`, `records`,
`objects` and `tokens`. Each call verifies its work order token (401 when
expired, invalid or of the wrong work type; 403 when its box, file or alias
differs from the request). Answers and `exception_id`s follow reference §1.5
and §9; the part-layout rules at close (parts 1..N, no gaps, every part but
the last exactly `part_size`) are stricter than S3, on purpose (§9.3).
"""

import copy
import math
import re
import time
import uuid

from .context import STORAGE_ALIAS, ServiceContext
from .http import Request, Response, Router, json_response
from .objects import PartInfo, multipart_etag
from .problems import HttpProblem
from .records import StateData, UploadRecord
from .tokens import WorkOrderClaims

__all__ = [
    "MAX_OPEN_UPLOADS_PER_BOX",
    "MAX_PART_COUNT",
    "MAX_PART_SIZE_BYTES",
    "MIN_PART_SIZE_BYTES",
    "add_ucs_routes",
]

MIN_PART_SIZE_BYTES = 5 * 1024**2
MAX_PART_SIZE_BYTES = 5 * 1024**3
MAX_PART_COUNT = 10_000
MAX_OPEN_UPLOADS_PER_BOX = 5
_MAX_LIST_LIMIT = 1000
_BOX = r"/ucs/boxes/(?P<box_id>[^/]+)/uploads"
_FILE = _BOX + r"/(?P<file_id>[^/]+)"
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX32 = re.compile(r"[0-9a-f]{32}")
_ETAG = re.compile(r"[0-9a-f]{32}-[1-9][0-9]*")
_SUPERSEDED = ("cancelled", "failed")


def add_ucs_routes(router: Router, ctx: ServiceContext) -> None:
    """Register the UCS endpoints under /ucs."""
    router.add(
        "GET", r"/ucs/health", lambda r: json_response(200, {"status": "OK"}), "health"
    )
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
                f"the work order token's {name} does not match",
            )
    return claims


def _unprocessable(description: str) -> HttpProblem:
    return HttpProblem(422, "validationError", description)


def _box_of(state: StateData, box_id: str) -> None:
    if box_id not in state["boxes"]:
        raise HttpProblem(404, "boxNotFound", f"no upload box {box_id}")


def _upload_of(state: StateData, request: Request) -> UploadRecord:
    _box_of(state, request.params["box_id"])
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
        raise _unprocessable(f"{name} must be an integer in [{low}, {high}]")
    return int(text)


# -- U1 listing ---------------------------------------------------------------


def _listing_item(upload: UploadRecord) -> dict[str, object]:
    return {
        "id": upload["id"],
        "box_id": upload["box_id"],
        "alias": upload["alias"],
        "state": upload["state"],
        "decrypted_size": upload["decrypted_size"],
        "encrypted_size": upload["encrypted_size"],
        "part_size": upload["part_size"],
        "storage_alias": upload["storage_alias"],
    }


def _list_uploads(ctx: ServiceContext, request: Request) -> Response:
    _authorize(ctx, request, "view")
    skip = _int_query(request, "skip", 0, 0, 10**9)
    limit = _int_query(request, "limit", 10, 1, _MAX_LIST_LIMIT)
    with ctx.state.transaction() as state:
        _box_of(state, request.params["box_id"])
        uploads = [
            u
            for u in state["uploads"].values()
            if u["box_id"] == request.params["box_id"]
        ]
    uploads.sort(key=lambda u: (u["alias"], u["created"]))
    items = [_listing_item(u) for u in uploads[skip : skip + limit]]
    return json_response(200, {"items": items, "total_count": len(uploads)})


# -- U2 create ----------------------------------------------------------------


def _create_body(body: object) -> tuple[str, int, int, int, bool]:
    """Validate the U2 body as the UCS's pydantic model does (422 otherwise)."""
    if not isinstance(body, dict):
        raise _unprocessable("body must be a JSON object")
    alias, overwrite = body.get("alias"), body.get("overwrite", False)
    sizes = [body.get(k) for k in ("decrypted_size", "encrypted_size", "part_size")]
    if not isinstance(alias, str) or not alias or not isinstance(overwrite, bool):
        raise _unprocessable("alias must be a non-empty string, overwrite a bool")
    if not all(isinstance(s, int) and not isinstance(s, bool) for s in sizes):
        raise _unprocessable("decrypted_size, encrypted_size, part_size must be ints")
    decrypted: int = body["decrypted_size"]
    encrypted: int = body["encrypted_size"]
    part_size: int = body["part_size"]
    if decrypted < 1 or encrypted <= decrypted:
        raise _unprocessable(
            "need decrypted_size >= 1 and encrypted_size > decrypted_size"
        )
    return alias, decrypted, encrypted, part_size, overwrite


def _check_part_size(encrypted_size: int, part_size: int) -> None:
    if not MIN_PART_SIZE_BYTES <= part_size <= MAX_PART_SIZE_BYTES:
        raise HttpProblem(
            400,
            "invalidPartSize",
            f"part_size {part_size} is outside [{MIN_PART_SIZE_BYTES}, "
            f"{MAX_PART_SIZE_BYTES}]",
        )
    parts = math.ceil(encrypted_size / part_size)
    if parts > MAX_PART_COUNT:
        raise HttpProblem(
            400,
            "invalidPartSize",
            f"{parts} parts exceed the limit of {MAX_PART_COUNT}",
        )


def _admit(
    ctx: ServiceContext,
    state: StateData,
    box_id: str,
    alias: str,
    decrypted_size: int,
    overwrite: bool,
) -> None:
    """Apply the box rules: lock, duplicates/overwrite, open uploads, box size."""
    box = state["boxes"][box_id]
    if box["locked"]:
        raise HttpProblem(409, "boxStateError", "the upload box is locked")
    in_box = [u for u in state["uploads"].values() if u["box_id"] == box_id]
    for upload in in_box:
        if upload["alias"] != alias or upload["state"] in _SUPERSEDED:
            continue
        if not (overwrite and upload["state"] in ("init", "inbox")):
            raise HttpProblem(
                409,
                "fileUploadAlreadyExists",
                f"a file with alias {alias!r} already exists",
                {"alias": alias},
            )
        _cancel(ctx, upload)
    if sum(u["state"] == "init" for u in in_box) >= MAX_OPEN_UPLOADS_PER_BOX:
        raise HttpProblem(
            429,
            "tooManyOpenUploads",
            f"the box already has {MAX_OPEN_UPLOADS_PER_BOX} uploads in progress",
        )
    used = sum(u["decrypted_size"] for u in in_box if u["state"] not in _SUPERSEDED)
    if used + decrypted_size > box["max_size_bytes"]:
        raise HttpProblem(
            507,
            "boxMaxSizeExceeded",
            f"the box would hold {used + decrypted_size} bytes, more "
            f"than its {box['max_size_bytes']}",
        )


def _create_upload(ctx: ServiceContext, request: Request) -> Response:
    alias, decrypted, encrypted, part_size, overwrite = _create_body(request.json())
    _authorize(ctx, request, "create", alias=alias)
    box_id, file_id = request.params["box_id"], str(uuid.uuid4())
    object_upload_id = ctx.store.create_multipart(f"inbox/{file_id}")
    try:
        with ctx.state.transaction() as state:
            _box_of(state, box_id)
            _check_part_size(encrypted, part_size)
            _admit(ctx, state, box_id, alias, decrypted, overwrite)
            state["uploads"][file_id] = UploadRecord(
                id=file_id,
                box_id=box_id,
                alias=alias,
                decrypted_size=decrypted,
                encrypted_size=encrypted,
                part_size=part_size,
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
    except HttpProblem:
        ctx.store.abort_multipart(f"inbox/{file_id}", object_upload_id)
        raise
    body = {"file_id": file_id, "alias": alias, "storage_alias": STORAGE_ALIAS}
    return json_response(201, body)


# -- U3 part URL --------------------------------------------------------------


def _part_url(ctx: ServiceContext, request: Request) -> Response:
    _authorize(ctx, request, "upload", file_id=request.params["file_id"])
    text = request.params["part"]
    if not text.isdigit() or not 1 <= int(text) <= MAX_PART_COUNT:
        raise _unprocessable(f"part number must be in [1, {MAX_PART_COUNT}]")
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


def _close_body(body: object) -> tuple[str, str, list[str], list[str]]:
    if not isinstance(body, dict):
        raise _unprocessable("body must be a JSON object")
    sha, md5 = body.get("decrypted_sha256"), body.get("encrypted_md5")
    md5s, shas = body.get("encrypted_parts_md5"), body.get("encrypted_parts_sha256")
    if not (isinstance(sha, str) and _HEX64.fullmatch(sha)):
        raise _unprocessable("decrypted_sha256 must be 64 lowercase hex digits")
    if not (isinstance(md5, str) and _ETAG.fullmatch(md5)):
        raise _unprocessable("encrypted_md5 must be '<32 hex digits>-<parts>'")
    if not (
        isinstance(md5s, list)
        and isinstance(shas, list)
        and len(md5s) == len(shas)
        and all(isinstance(h, str) and _HEX32.fullmatch(h) for h in md5s)
        and all(isinstance(h, str) and _HEX64.fullmatch(h) for h in shas)
    ):
        raise _unprocessable("part checksum lists must be hex and of equal length")
    return sha, md5, md5s, shas


def _check_layout(parts: list[PartInfo], part_size: int) -> None:
    """Parts 1..N without gaps; every part but the last exactly part_size."""
    numbers = [p.number for p in parts]
    if numbers != list(range(1, len(parts) + 1)):
        raise HttpProblem(
            400,
            "uploadSizeMismatch",
            f"part numbers {numbers[:20]} are not 1..{len(parts)}",
        )
    for part in parts[:-1]:
        if part.size_bytes != part_size:
            raise HttpProblem(
                400,
                "uploadSizeMismatch",
                f"part {part.number} has {part.size_bytes} bytes, "
                f"not the declared part size {part_size}",
            )


def _verify_parts(upload: UploadRecord, parts: list[PartInfo], md5: str) -> None:
    _check_layout(parts, upload["part_size"])
    etag = multipart_etag([p.etag for p in parts]) if parts else "none"
    if etag != md5:
        raise HttpProblem(
            400,
            "checksumMismatch",
            f"the object's ETag {etag} differs from encrypted_md5 {md5}",
        )
    size = sum(p.size_bytes for p in parts)
    if size != upload["encrypted_size"]:
        raise HttpProblem(
            400,
            "uploadSizeMismatch",
            f"the object has {size} bytes, declared encrypted_size "
            f"is {upload['encrypted_size']}",
        )


def _close_upload(ctx: ServiceContext, request: Request) -> Response:
    sha, md5, md5s, shas = _close_body(request.json())
    _authorize(ctx, request, "close", file_id=request.params["file_id"])
    with ctx.state.transaction() as state:
        upload = copy.copy(_upload_of(state, request))
    if upload["state"] in _SUPERSEDED:
        raise HttpProblem(
            409, "fileUploadStateError", f"the file upload is {upload['state']}"
        )
    if upload["state"] != "init":
        return Response(204)
    key = f"inbox/{upload['id']}"
    try:
        parts = ctx.store.list_parts(key, upload["object_upload_id"])
        _verify_parts(upload, parts, md5)
        ctx.store.complete_multipart(key, upload["object_upload_id"], parts)
    except HttpProblem as problem:
        _fail(ctx, upload["id"], problem.description)
        raise
    with ctx.state.transaction() as state:
        record = state["uploads"][upload["id"]]
        record["state"], record["decrypted_sha256"] = "inbox", sha
        record["encrypted_md5"], record["encrypted_parts_md5"] = md5, md5s
        record["encrypted_parts_sha256"] = shas
    ctx.interrogator.submit(upload["id"])
    return Response(204)


def _fail(ctx: ServiceContext, file_id: str, reason: str) -> None:
    with ctx.state.transaction() as state:
        upload = state["uploads"][file_id]
        upload["state"], upload["failure_reason"] = "failed", reason
        key, upload_id = f"inbox/{file_id}", upload["object_upload_id"]
    ctx.store.abort_multipart(key, upload_id)


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
