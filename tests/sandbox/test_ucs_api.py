"""The sandbox WPS and UCS beyond the strictness list: listing, lifecycle, box rules."""

import uuid
from collections.abc import Callable
from pathlib import Path

from snakemake_ghga.sandbox import Sandbox
from tests.conftest import KeyPair
from tests.sandbox.conftest import PART_SIZE, sign_wot
from tests.support.ghga_http import GhgaHttpDriver, close_body_of


def test_work_package_wrong_access_token_403(uploader: GhgaHttpDriver) -> None:
    wrong = "A" * 24

    answer = uploader.work_package(wrong)

    assert answer.status_code == 403
    assert uploader.work_package().status_code == 200


def test_work_package_lists_both_box_ids(uploader: GhgaHttpDriver) -> None:
    package = uploader.package

    assert package["type"] == "upload"
    assert uuid.UUID(package["file_upload_box_id"]).version == 4
    assert package["research_data_upload_box_id"] != package["file_upload_box_id"]


def test_upload_wot_for_another_rdub_403(uploader: GhgaHttpDriver) -> None:
    url = (
        f"{uploader.wps_url}/work-packages/{uploader.package_id}/boxes/"
        f"{uploader.package['file_upload_box_id']}/work-order-tokens"
    )

    answer = uploader.http.post(
        url,
        json={"work_type": "view", "alias": None, "file_id": None},
        headers={"Authorization": f"Bearer {uploader.access_token}"},
    )

    assert answer.status_code == 403


def test_upload_wot_create_without_alias_422(uploader: GhgaHttpDriver) -> None:
    rdub = uploader.package["research_data_upload_box_id"]
    url = f"{uploader.wps_url}/work-packages/{uploader.package_id}/boxes/{rdub}"

    answer = uploader.http.post(
        f"{url}/work-order-tokens",
        json={"work_type": "create", "alias": None, "file_id": None},
        headers={"Authorization": f"Bearer {uploader.access_token}"},
    )

    assert answer.status_code == 422


def test_wot_answer_is_201_json_string_with_cache_control(
    uploader: GhgaHttpDriver,
) -> None:
    rdub = uploader.package["research_data_upload_box_id"]
    url = f"{uploader.wps_url}/work-packages/{uploader.package_id}/boxes/{rdub}"

    answer = uploader.http.post(
        f"{url}/work-order-tokens",
        json={"work_type": "view", "alias": None, "file_id": None},
        headers={"Authorization": f"Bearer {uploader.access_token}"},
    )

    assert answer.status_code == 201
    assert isinstance(answer.json(), str)
    assert answer.headers["Cache-Control"] == "max-age=30, private"


def test_listing_pages_with_skip_and_limit(uploader: GhgaHttpDriver) -> None:
    for alias in ("c", "a", "b"):
        assert uploader.create(alias, 10, 162, PART_SIZE).status_code == 201
    wot = uploader.upload_wot("view")

    first = uploader.call("GET", uploader.box_path, wot, params={"limit": 2}).json()
    rest = uploader.call(
        "GET", uploader.box_path, wot, params={"skip": 2, "limit": 2}
    ).json()

    assert first["total_count"] == rest["total_count"] == 3
    assert [i["alias"] for i in first["items"] + rest["items"]] == ["a", "b", "c"]
    assert all(uuid.UUID(i["id"]).version == 4 for i in first["items"])
    assert {i["state"] for i in first["items"]} == {"init"}


def test_listing_limit_over_1000_422(uploader: GhgaHttpDriver) -> None:
    wot = uploader.upload_wot("view")

    answer = uploader.call("GET", uploader.box_path, wot, params={"limit": 1001})

    assert answer.status_code == 422


def test_wot_of_wrong_work_type_401(uploader: GhgaHttpDriver) -> None:
    view_wot = uploader.upload_wot("view")

    answer = uploader.call(
        "POST",
        uploader.box_path,
        view_wot,
        {
            "alias": "a",
            "decrypted_size": 10,
            "encrypted_size": 162,
            "part_size": PART_SIZE,
            "overwrite": False,
        },
    )

    assert answer.status_code == 401


def test_create_alias_differs_from_wot_claim_403(uploader: GhgaHttpDriver) -> None:
    wot = uploader.upload_wot("create", alias="a.bin")

    answer = uploader.call(
        "POST",
        uploader.box_path,
        wot,
        {
            "alias": "other.bin",
            "decrypted_size": 10,
            "encrypted_size": 162,
            "part_size": PART_SIZE,
            "overwrite": False,
        },
    )

    assert answer.status_code == 403


def test_create_zero_decrypted_size_422(uploader: GhgaHttpDriver) -> None:
    answer = uploader.create("a.bin", 0, 124, PART_SIZE)

    assert answer.status_code == 422


def test_create_answers_file_id_alias_and_storage_alias(
    uploader: GhgaHttpDriver,
) -> None:
    answer = uploader.create("a.bin", 10, 162, PART_SIZE)

    assert answer.status_code == 201
    body = answer.json()
    assert body["alias"] == "a.bin"
    assert body["storage_alias"] == "HD01"
    assert uuid.UUID(body["file_id"]).version == 4


def test_create_beyond_box_size_507(tmp_path: Path, user_keys: KeyPair) -> None:
    with Sandbox(tmp_path / "small", box_max_size_bytes=100) as small:
        token = small.upload_token(user_keys.public)
        driver = GhgaHttpDriver(small.wkvs_url, token, user_keys.secret)
        assert driver.create("a", 60, 212, PART_SIZE).status_code == 201

        answer = driver.create("b", 41, 193, PART_SIZE)

    assert answer.status_code == 507
    assert answer.json()["exception_id"] == "boxMaxSizeExceeded"


def test_unknown_box_404_box_not_found(
    sandbox: Sandbox, uploader: GhgaHttpDriver, user_keys: KeyPair
) -> None:
    missing = str(uuid.uuid4())
    wot = sign_wot(sandbox, user_keys.public, work_type="view", box_id=missing)
    url = uploader.box_path.replace(uploader.package["file_upload_box_id"], missing)

    answer = uploader.call("GET", url, wot)

    assert answer.status_code == 404
    assert answer.json()["exception_id"] == "boxNotFound"


def test_part_url_unknown_file_404_file_upload_not_found(
    uploader: GhgaHttpDriver,
) -> None:
    missing = str(uuid.uuid4())
    wot = uploader.upload_wot("upload", file_id=missing)

    answer = uploader.call("GET", f"{uploader.box_path}/{missing}/parts/1", wot)

    assert answer.status_code == 404
    assert answer.json()["exception_id"] == "fileUploadNotFound"


def _failed_upload(uploader: GhgaHttpDriver) -> str:
    file_id = uploader.create("a.bin", 10, 162, PART_SIZE).json()["file_id"]
    assert uploader.put_part(file_id, 1, b"x" * 162).status_code == 200
    bad = close_body_of([b"x" * 162], "0" * 64) | {"encrypted_md5": "0" * 32 + "-1"}
    assert uploader.close(file_id, bad).status_code == 400
    return str(file_id)


def test_close_failed_upload_409_file_upload_state_error(
    uploader: GhgaHttpDriver,
) -> None:
    file_id = _failed_upload(uploader)

    answer = uploader.close(file_id, close_body_of([b"x" * 162], "0" * 64))

    assert answer.status_code == 409
    assert answer.json()["exception_id"] == "fileUploadStateError"


def test_failed_alias_can_be_created_again(uploader: GhgaHttpDriver) -> None:
    _failed_upload(uploader)

    answer = uploader.create("a.bin", 10, 162, PART_SIZE)

    assert answer.status_code == 201


def test_close_twice_is_idempotent(
    sandbox: Sandbox,
    uploader: GhgaHttpDriver,
    sample: Callable[[int], Path],
    tmp_path: Path,
) -> None:
    upload = uploader.encrypt(sample(1000), "a.bin", PART_SIZE, tmp_path)
    file_id, first = uploader.upload(upload)

    second = uploader.close(file_id, upload.close_body())

    assert (first.status_code, second.status_code) == (204, 204)
    assert sandbox.wait_interrogated("a.bin", 20).state == "interrogated"


def test_delete_cancels_and_part_urls_stop(
    sandbox: Sandbox, uploader: GhgaHttpDriver
) -> None:
    file_id = uploader.create("a.bin", 10, 162, PART_SIZE).json()["file_id"]

    answer = uploader.delete(file_id)

    assert answer.status_code == 204
    assert sandbox.uploads()[0].state == "cancelled"
    wot = uploader.upload_wot("upload", file_id=file_id)
    again = uploader.call("GET", f"{uploader.box_path}/{file_id}/parts/1", wot)
    assert again.status_code == 404
    assert again.json()["exception_id"] == "s3UploadNotFound"


def test_delete_unknown_404(uploader: GhgaHttpDriver) -> None:
    answer = uploader.delete(str(uuid.uuid4()))

    assert answer.status_code == 404
    assert answer.json()["exception_id"] == "fileUploadNotFound"


def test_create_overwrite_cancels_the_open_upload(
    sandbox: Sandbox, uploader: GhgaHttpDriver
) -> None:
    first = uploader.create("a.bin", 10, 162, PART_SIZE).json()["file_id"]

    answer = uploader.create("a.bin", 10, 162, PART_SIZE, overwrite=True)

    assert answer.status_code == 201
    states = {u.id: u.state for u in sandbox.uploads()}
    assert states == {first: "cancelled", answer.json()["file_id"]: "init"}


def test_upload_roundtrip_registers_accession(
    sandbox: Sandbox,
    uploader: GhgaHttpDriver,
    sample: Callable[[int], Path],
    tmp_path: Path,
) -> None:
    source = sample(11 * 1024 * 1024)
    upload = uploader.encrypt(source, "reads.fastq.gz", PART_SIZE, tmp_path)

    _, answer = uploader.upload(upload)

    assert answer.status_code == 204
    settled = sandbox.wait_interrogated("reads.fastq.gz", 30)
    assert settled.state == "interrogated"
    assert settled.accession is not None
    assert settled.accession.startswith("GHGAF")
    [archived] = sandbox.accessions()
    assert archived.decrypted_size == source.stat().st_size
    assert archived.decrypted_sha256 == upload.result.plain_sha256
