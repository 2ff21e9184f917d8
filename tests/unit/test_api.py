"""GhgaApi: caching, WOT refresh and error mapping (requests-mock, no sockets)."""

import base64
import email.utils
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests_mock
from nacl.public import PrivateKey, PublicKey, SealedBox

from snakemake_ghga.errors import ApiError, AuthError, NotFoundError
from snakemake_ghga.ghga.api import GhgaApi
from snakemake_ghga.ghga.models import (
    Staging,
    UploadChecksums,
    jwt_claims,
    parse_work_package,
)
from snakemake_ghga.ghga.token import WorkPackageToken
from tests.support.busy_wkvs import VALUES, busy_wkvs

WKVS = "https://ghga.test/.well-known"
WPS, UCS, DCS = (
    "https://ghga.test/wps",
    "https://ghga.test/ucs",
    "https://ghga.test/dcs",
)
PACKAGE = "11111111-2222-4333-8444-555555555555"
RDUB, FUB = "rdub-1", "fub-1"
FILE_ID = "f0000000-0000-4000-8000-000000000001"
ITEM = {
    "id": FILE_ID,
    "alias": "a.bam",
    "state": "uploaded",
    "decrypted_size": 10,
    "encrypted_size": 190,
}


def _seal(plain: str, public_key: bytes) -> str:
    return base64.b64encode(
        SealedBox(PublicKey(public_key)).encrypt(plain.encode())
    ).decode()


def _jwt(claims: dict[str, Any]) -> str:
    def part(data: dict[str, Any]) -> str:
        raw = base64.urlsafe_b64encode(json.dumps(data).encode()).decode()
        return raw.rstrip("=")

    return f"{part({'alg': 'ES256'})}.{part(claims)}.c2ln"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def user() -> PrivateKey:
    return PrivateKey.generate()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def api(user: PrivateKey, clock: Clock) -> GhgaApi:
    token = WorkPackageToken(
        PACKAGE, _seal("access-token-24-chars-xx", bytes(user.public_key))
    )
    public_b64 = base64.b64encode(bytes(user.public_key)).decode()
    return GhgaApi(WKVS, token, bytes(user), public_b64, clock=clock)


@pytest.fixture
def mock(user: PrivateKey, clock: Clock) -> requests_mock.Mocker:
    with requests_mock.Mocker() as mocker:
        mocker.get(
            f"{WKVS}/values",
            json={
                "wps_api_url": WPS + "/",
                "ucs_api_url": UCS,
                "dcs_api_url": DCS,
                "crypt4gh_public_keys": {"HD01": "a2V5"},
            },
        )
        mocker.get(
            f"{WPS}/work-packages/{PACKAGE}",
            json={
                "type": "upload",
                "files": None,
                "research_data_upload_box_id": RDUB,
                "file_upload_box_id": FUB,
            },
        )
        wot = _jwt(
            {
                "exp": clock.now + 30,
                "user_public_crypt4gh_key": base64.b64encode(
                    bytes(user.public_key)
                ).decode(),
            }
        )
        for path in (f"boxes/{RDUB}", "files/GHGAF1"):
            mocker.post(
                f"{WPS}/work-packages/{PACKAGE}/{path}/work-order-tokens",
                status_code=201,
                json=_seal(wot, bytes(user.public_key)),
            )
        yield mocker


def _count(mocker: requests_mock.Mocker, method: str, fragment: str) -> int:
    return sum(
        1 for r in mocker.request_history if r.method == method and fragment in r.url
    )


def test_work_package_fetched_once_and_urls_stripped(
    api: GhgaApi, mock: requests_mock.Mocker
) -> None:
    mock.get(f"{UCS}/boxes/{FUB}/uploads", json={"items": [], "total_count": 0})
    api.list_uploads()
    api.list_uploads()
    assert api.well_known().wps_url == WPS
    assert _count(mock, "GET", "/work-packages/") == 1
    assert _count(mock, "GET", "/values") == 1
    wps_call = next(r for r in mock.request_history if "/work-packages/" in r.url)
    assert wps_call.headers["Authorization"] == "Bearer access-token-24-chars-xx"


def test_wot_cached_until_near_exp_then_refreshed(
    api: GhgaApi, mock: requests_mock.Mocker, clock: Clock
) -> None:
    mock.get(f"{UCS}/boxes/{FUB}/uploads/{FILE_ID}/parts/1", json="http://s3/part1")
    for _ in range(3):
        assert api.part_upload_url(FILE_ID, 1) == "http://s3/part1"
    assert _count(mock, "POST", "work-order-tokens") == 1
    clock.now += 26  # within 5 s of exp
    api.part_upload_url(FILE_ID, 1)
    assert _count(mock, "POST", "work-order-tokens") == 2
    body = mock.request_history[-2].json()
    assert body == {"work_type": "upload", "alias": None, "file_id": FILE_ID}


@pytest.mark.parametrize("status", [401, 403])
def test_wot_refreshed_once_on_401_and_403(
    api: GhgaApi, mock: requests_mock.Mocker, status: int
) -> None:
    mock.patch(
        f"{UCS}/boxes/{FUB}/uploads/{FILE_ID}",
        [{"status_code": status, "json": {"detail": "expired"}}, {"status_code": 204}],
    )
    api.complete_upload(
        FILE_ID, UploadChecksums("a" * 64, "b" * 32 + "-1", ["b"], ["c"])
    )
    assert _count(mock, "POST", "work-order-tokens") == 2
    assert _count(mock, "PATCH", FILE_ID) == 2


def test_auth_error_after_refresh_names_remedy(
    api: GhgaApi, mock: requests_mock.Mocker
) -> None:
    mock.delete(
        f"{UCS}/boxes/{FUB}/uploads/{FILE_ID}", status_code=403, json={"detail": "nope"}
    )
    with pytest.raises(AuthError, match=r"access denied \(HTTP 403\) \(nope\)") as info:
        api.delete_upload(FILE_ID)
    assert "request a new token" in str(info.value)


@pytest.mark.parametrize(
    ("status", "exception_id", "cls", "text"),
    [
        (409, "fileUploadAlreadyExists", ApiError, "--overwrite"),
        (429, "tooManyOpenUploads", ApiError, "ghga-transfer ls"),
        (507, "boxMaxSizeExceeded", ApiError, "size limit"),
        (404, "boxNotFound", NotFoundError, "does not exist"),
        (422, None, ApiError, "HTTP 422"),
    ],
)
def test_create_upload_error_bodies_are_mapped(
    api: GhgaApi,
    mock: requests_mock.Mocker,
    status: int,
    exception_id: str | None,
    cls: type[ApiError],
    text: str,
) -> None:
    body = {"exception_id": exception_id, "description": "d", "data": {}}
    mock.post(f"{UCS}/boxes/{FUB}/uploads", status_code=status, json=body)
    with pytest.raises(cls, match=text) as info:
        api.create_upload("a.bam", 10, 190, 5 * 2**20, overwrite=False)
    assert info.value.status == status
    assert info.value.exception_id == exception_id
    assert "creating the upload of 'a.bam'" in str(info.value)


def test_create_upload_returns_typed_answer(
    api: GhgaApi, mock: requests_mock.Mocker
) -> None:
    mock.post(
        f"{UCS}/boxes/{FUB}/uploads",
        status_code=201,
        json={"file_id": FILE_ID, "alias": "a.bam", "storage_alias": "HD01"},
    )
    created = api.create_upload("a.bam", 10, 190, 5 * 2**20, overwrite=True)
    assert (created.file_id, created.storage_alias) == (FILE_ID, "HD01")
    assert mock.request_history[-1].json()["overwrite"] is True
    wot_request = next(r for r in mock.request_history if "work-order-tokens" in r.url)
    assert wot_request.json() == {
        "work_type": "create",
        "alias": "a.bam",
        "file_id": None,
    }


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ([ITEM], "field 'items' missing or not list"),
        ("a.bam", "field 'items' missing or not list"),
        ({"items": {}, "total_count": 0}, "field 'items' missing or not list"),
        ({"items": [ITEM]}, "field 'total_count' missing or not int"),
        ({"items": [ITEM], "total_count": None}, "field 'total_count'"),
        ({"items": ["a.bam"], "total_count": 1}, "field 'id' missing or not str"),
        (
            {"items": [{**ITEM, "decrypted_size": True}], "total_count": 1},
            "field 'decrypted_size' missing or not int",
        ),
    ],
)
def test_malformed_upload_listing_is_api_error(
    api: GhgaApi, mock: requests_mock.Mocker, body: Any, problem: str
) -> None:
    mock.get(f"{UCS}/boxes/{FUB}/uploads", json=body)

    with pytest.raises(
        ApiError, match=f"^upload listing: unexpected response, {problem}"
    ):
        api.list_uploads()


def test_upload_listing_reads_every_page(
    api: GhgaApi, mock: requests_mock.Mocker
) -> None:
    second = {**ITEM, "id": "f2", "alias": "b.bam"}
    mock.get(
        f"{UCS}/boxes/{FUB}/uploads",
        [
            {"json": {"items": [ITEM], "total_count": 2}},
            {"json": {"items": [second], "total_count": 2}},
        ],
    )

    uploads = api.list_uploads()

    assert [u.alias for u in uploads] == ["a.bam", "b.bam"]
    assert [r.qs["skip"] for r in mock.request_history if "/uploads" in r.url] == [
        ["0"],
        ["1"],
    ]


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ([FILE_ID], "field 'file_id' missing or not str"),
        ({"file_id": FILE_ID, "alias": "a.bam"}, "field 'storage_alias'"),
        (
            {"file_id": FILE_ID, "alias": "b.bam", "storage_alias": "HD01"},
            "it is for alias 'b.bam'",
        ),
    ],
)
def test_malformed_created_upload_is_api_error(
    api: GhgaApi, mock: requests_mock.Mocker, body: Any, problem: str
) -> None:
    mock.post(f"{UCS}/boxes/{FUB}/uploads", status_code=201, json=body)

    with pytest.raises(ApiError) as info:
        api.create_upload("a.bam", 10, 190, 5 * 2**20, overwrite=False)

    message = str(info.value)
    assert message.startswith("creating the upload of 'a.bam': unexpected response, ")
    assert problem in message
    assert "check for a newer snakemake-ghga" in message


@pytest.mark.parametrize(
    ("response", "problem"),
    [
        ({"json": {"url": "http://s3/part1"}}, "not a JSON string"),
        ({"json": ["http://s3/part1"]}, "not a JSON string"),
        ({"text": ""}, "not a JSON string"),
        ({"text": "http://s3/part1"}, "not JSON"),
    ],
)
def test_malformed_part_url_is_api_error(
    api: GhgaApi, mock: requests_mock.Mocker, response: dict[str, Any], problem: str
) -> None:
    mock.get(f"{UCS}/boxes/{FUB}/uploads/{FILE_ID}/parts/1", **response)
    what = f"getting the URL of part 1 of upload {FILE_ID}"

    with pytest.raises(ApiError, match=f"^{what}: unexpected response, {problem}"):
        api.part_upload_url(FILE_ID, 1)


@pytest.mark.parametrize("body", [{"token": "x"}, None, 5])
def test_malformed_work_order_token_is_api_error(
    api: GhgaApi, mock: requests_mock.Mocker, body: Any
) -> None:
    mock.post(
        f"{WPS}/work-packages/{PACKAGE}/boxes/{RDUB}/work-order-tokens", json=body
    )
    what = "requesting a 'view' work order token"

    with pytest.raises(ApiError, match=f"^{what}: unexpected response, not a JSON"):
        api.list_uploads()


@pytest.mark.parametrize("body", [["wps"], {"wps_api_url": 5}])
def test_malformed_well_known_values_reach_the_caller_as_api_error(
    api: GhgaApi, body: Any
) -> None:
    with requests_mock.Mocker() as mocker:
        mocker.get(f"{WKVS}/values", json=body)

        with pytest.raises(ApiError, match=r"^well-known values: unexpected response"):
            api.well_known()


def test_drs_object_staging_then_ready(
    api: GhgaApi, mock: requests_mock.Mocker
) -> None:
    mock.get(
        f"{DCS}/objects/GHGAF1",
        [
            {"status_code": 202, "headers": {"Retry-After": "7"}, "text": "null"},
            {
                "status_code": 200,
                "headers": {"Cache-Control": "max-age=10, private"},
                "json": {
                    "id": "GHGAF1",
                    "size": 100,
                    "checksums": [{"type": "sha-256", "checksum": "ab" * 32}],
                    "access_methods": [
                        {"type": "s3", "access_url": {"url": "http://s3/x?sig=1"}}
                    ],
                },
            },
        ],
    )
    assert api.drs_object("GHGAF1") == Staging("GHGAF1", 7.0)
    drs = api.drs_object("GHGAF1")
    assert not isinstance(drs, Staging)
    assert (drs.size, drs.sha256, drs.max_age_s) == (100, "ab" * 32, 10.0)
    assert "sig=1" not in repr(drs)
    download_wots = _count(mock, "POST", "files/GHGAF1/work-order-tokens")
    assert download_wots == 1  # one WOT serves both DRS calls


@pytest.mark.parametrize(
    ("headers", "wait_s"),
    [({"Retry-After": "7"}, 7.0), ({}, 5.0), ({"Retry-After": "soon"}, 5.0)],
)
def test_drs_object_staging_wait_comes_from_retry_after(
    api: GhgaApi, mock: requests_mock.Mocker, headers: dict[str, str], wait_s: float
) -> None:
    mock.get(f"{DCS}/objects/GHGAF1", status_code=202, headers=headers, text="null")

    assert api.drs_object("GHGAF1") == Staging("GHGAF1", wait_s)


@pytest.mark.parametrize(
    ("cache_control", "max_age_s"),
    [
        ("private, max-age=10", 10.0),
        ("max-age=nan", None),
        ("max-age=-5", None),
        ("max-age=1e3", None),
        ("no-store", None),
    ],
)
def test_drs_object_max_age_takes_only_delta_seconds(
    api: GhgaApi,
    mock: requests_mock.Mocker,
    cache_control: str,
    max_age_s: float | None,
) -> None:
    body = {"size": 1, "access_methods": [{"type": "s3", "access_url": {"url": "u"}}]}
    headers = {"Cache-Control": cache_control}
    mock.get(f"{DCS}/objects/GHGAF1", json=body, headers=headers)

    drs = api.drs_object("GHGAF1")

    assert not isinstance(drs, Staging)
    assert drs.max_age_s == max_age_s


def test_drs_object_staging_wait_reads_http_date_like_the_retries(
    api: GhgaApi, mock: requests_mock.Mocker
) -> None:
    # RFC 9110 allows an HTTP-date; the session's Retry parses it, and so does
    # the staging wait, which goes through that same Retry.
    when = email.utils.formatdate(time.time() + 60, usegmt=True)
    mock.get(
        f"{DCS}/objects/GHGAF1",
        status_code=202,
        headers={"Retry-After": when},
        text="null",
    )

    staging = api.drs_object("GHGAF1")

    assert isinstance(staging, Staging)
    assert 55.0 <= staging.retry_after_s <= 60.0


@pytest.fixture
def busy_once_wkvs(
    request: pytest.FixtureRequest,
) -> Iterator[tuple[str, list[float]]]:
    """A loopback WKVS: 503 with the Retry-After ``request.param`` once, then values."""
    with busy_wkvs(request.param) as served:
        yield served


@pytest.mark.parametrize(
    ("busy_once_wkvs", "min_wait_s"),
    [("1", 0.9), ("soon", 0.0), ("-1", 0.0), ("", 0.0)],
    indirect=["busy_once_wkvs"],
)
def test_api_retry_after_a_503_waits_for_retry_after_or_backs_off_if_invalid(
    user: PrivateKey, busy_once_wkvs: tuple[str, list[float]], min_wait_s: float
) -> None:
    url, arrivals = busy_once_wkvs
    token = WorkPackageToken(PACKAGE, _seal("t" * 24, bytes(user.public_key)))
    api = GhgaApi(url, token, bytes(user), "unused")

    try:
        values = api.well_known()
    finally:
        api.close()

    assert values.dcs_url == VALUES["dcs_api_url"]
    assert len(arrivals) == 2
    assert arrivals[1] - arrivals[0] >= min_wait_s


def test_envelope_accepts_json_quoted_base64(
    api: GhgaApi, mock: requests_mock.Mocker
) -> None:
    mock.get(f"{DCS}/objects/GHGAF1/envelopes", text='"aGVhZGVy"')
    assert api.envelope("GHGAF1") == b"header"


def test_wot_for_another_key_is_refused(user: PrivateKey, clock: Clock) -> None:
    token = WorkPackageToken(PACKAGE, _seal("t" * 24, bytes(user.public_key)))
    other = base64.b64encode(bytes(PrivateKey.generate().public_key)).decode()
    api = GhgaApi(WKVS, token, bytes(user), other, clock=clock)
    with requests_mock.Mocker() as mocker:
        mocker.get(
            f"{WKVS}/values",
            json={
                "wps_api_url": WPS,
                "ucs_api_url": UCS,
                "dcs_api_url": DCS,
                "crypt4gh_public_keys": {},
            },
        )
        mocker.get(f"{WPS}/work-packages/{PACKAGE}", json={"files": {"GHGAF1": ".bam"}})
        wot = _jwt(
            {
                "exp": clock.now + 30,
                "user_public_crypt4gh_key": base64.b64encode(
                    bytes(user.public_key)
                ).decode(),
            }
        )
        mocker.post(
            f"{WPS}/work-packages/{PACKAGE}/files/GHGAF1/work-order-tokens",
            status_code=201,
            json=_seal(wot, bytes(user.public_key)),
        )
        with pytest.raises(AuthError, match="another public key"):
            api.envelope("GHGAF1")


def test_unreachable_service_is_api_error(api: GhgaApi) -> None:
    import requests

    with requests_mock.Mocker() as mocker:
        mocker.get(f"{WKVS}/values", exc=requests.ConnectionError("refused"))
        with pytest.raises(ApiError, match=r"cannot reach .*ConnectionError"):
            api.well_known()


def test_jwt_claims_opaque_token_is_empty() -> None:
    assert jwt_claims("opaque") == {}
    assert jwt_claims("a.!!!.c") == {}
    assert jwt_claims(_jwt({"exp": 5})) == {"exp": 5}


def test_concurrent_callers_share_one_wot_fetch(
    api: GhgaApi, mock: requests_mock.Mocker
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    mock.get(f"{UCS}/boxes/{FUB}/uploads/{FILE_ID}/parts/1", json="http://s3/p")
    with ThreadPoolExecutor(8) as pool:
        urls = list(pool.map(lambda _: api.part_upload_url(FILE_ID, 1), range(16)))
    assert urls == ["http://s3/p"] * 16
    assert _count(mock, "POST", "work-order-tokens") == 1


@pytest.mark.parametrize(
    ("body", "download_ok", "upload_ok"),
    [
        ({"type": "upload", "research_data_upload_box_id": RDUB}, False, False),
        (
            {
                "type": "upload",
                "research_data_upload_box_id": RDUB,
                "file_upload_box_id": FUB,
            },
            False,
            True,
        ),
        ({"type": "download", "files": {"GHGAF1": ".bam"}}, True, False),
        (  # a download package that also names boxes is still not for uploads
            {
                "type": "download",
                "files": {"GHGAF1": ".bam"},
                "research_data_upload_box_id": RDUB,
                "file_upload_box_id": FUB,
            },
            True,
            False,
        ),
        (  # untyped (older services): judged by what it holds
            {"research_data_upload_box_id": RDUB, "file_upload_box_id": FUB},
            False,
            True,
        ),
        ({"files": {"GHGAF1": ".bam"}}, True, False),
    ],
)
def test_work_package_type_decides_the_direction(
    body: dict[str, Any], download_ok: bool, upload_ok: bool
) -> None:
    package = parse_work_package(PACKAGE, body)
    assert package.type == body.get("type")
    if download_ok:
        package.require_download()
    else:
        with pytest.raises(AuthError, match="is an upload work package") as caught:
            package.require_download()
        assert "request a download token" in str(caught.value).lower()
    if upload_ok:
        assert package.require_upload() == (RDUB, FUB)
    else:
        with pytest.raises(AuthError, match="not for uploads") as caught:
            package.require_upload()
        assert "upload token" in str(caught.value)


def test_download_package_used_for_upload_fails_before_any_wot(
    api: GhgaApi, mock: requests_mock.Mocker
) -> None:
    mock.get(
        f"{WPS}/work-packages/{PACKAGE}",
        json={
            "type": "download",
            "files": {"GHGAF1": ".bam"},
            "research_data_upload_box_id": RDUB,
            "file_upload_box_id": FUB,
        },
    )
    with pytest.raises(AuthError, match="is a download work package, not for uploads"):
        api.list_uploads()
    assert _count(mock, "POST", "work-order-tokens") == 0
