"""The file-backed presigned object store: S3-faithful answers, expiry, tampering."""

import hashlib
import os
import time
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
import requests

from snakemake_ghga.sandbox import Sandbox
from snakemake_ghga.sandbox.objecthttp import parse_range
from snakemake_ghga.sandbox.objects import FileObjectStore, multipart_etag
from snakemake_ghga.sandbox.problems import S3Problem


@pytest.fixture
def store(sandbox: Sandbox) -> FileObjectStore:
    """The running sandbox's file store (white-box access for URLs)."""
    found = sandbox._store
    assert isinstance(found, FileObjectStore)
    return found


@pytest.fixture
def object_url(sandbox: Sandbox, store: FileObjectStore) -> tuple[str, bytes]:
    """A presigned GET URL of a 1 MiB + 7 B outbox object, and its bytes."""
    data = os.urandom(1024 * 1024 + 7)
    (store.objects_dir / "outbox" / "obj").write_bytes(data)
    return store.download_url("outbox/obj"), data


def test_put_part_answers_exactly_200_with_md5_etag(store: FileObjectStore) -> None:
    upload_id = store.create_multipart("inbox/f1")
    body = os.urandom(100_000)

    answer = requests.put(store.part_upload_url("inbox/f1", upload_id, 1), data=body)

    assert answer.status_code == 200
    assert answer.headers["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
    [part] = store.list_parts("inbox/f1", upload_id)
    assert (part.number, part.size_bytes) == (1, len(body))


def test_put_to_unknown_upload_404_no_such_upload(store: FileObjectStore) -> None:
    upload_id = store.create_multipart("inbox/f1")
    url = store.part_upload_url("inbox/f1", upload_id, 1)
    store.abort_multipart("inbox/f1", upload_id)

    answer = requests.put(url, data=b"abc")

    assert answer.status_code == 404
    assert "<Code>NoSuchUpload</Code>" in answer.text


def test_complete_joins_parts_and_computes_multipart_etag(
    store: FileObjectStore,
) -> None:
    upload_id = store.create_multipart("inbox/f1")
    bodies = [os.urandom(1000), os.urandom(10)]
    for number, body in enumerate(bodies, start=1):
        url = store.part_upload_url("inbox/f1", upload_id, number)
        assert requests.put(url, data=body).status_code == 200

    done = store.complete_multipart(
        "inbox/f1", upload_id, store.list_parts("inbox/f1", upload_id)
    )

    expected = multipart_etag([hashlib.md5(b).hexdigest() for b in bodies])
    assert (done.etag, done.size_bytes) == (expected, 1010)
    with store.open_object("inbox/f1") as stream:
        assert stream.read() == b"".join(bodies)
    assert store.object_size("inbox/f1") == 1010
    assert not store.has_multipart("inbox/f1", upload_id)


def test_get_serves_a_completed_multipart_object_whole_and_ranged(
    store: FileObjectStore,
) -> None:
    """A finished inbox upload is its part files; a GET reads across them."""
    upload_id = store.create_multipart("inbox/f1")
    bodies = [os.urandom(1000), os.urandom(700), os.urandom(10)]
    for number, body in enumerate(bodies, start=1):
        url = store.part_upload_url("inbox/f1", upload_id, number)
        assert requests.put(url, data=body).status_code == 200
    store.complete_multipart(
        "inbox/f1", upload_id, store.list_parts("inbox/f1", upload_id)
    )
    data = b"".join(bodies)
    url = store.download_url("inbox/f1")

    whole = requests.get(url)
    across = requests.get(url, headers={"Range": "bytes=990-1705"})
    tail = requests.get(url, headers={"Range": "bytes=-15"})

    assert (whole.status_code, whole.content) == (200, data)
    assert (across.status_code, across.content) == (206, data[990:1706])
    assert across.headers["Content-Range"] == "bytes 990-1705/1710"
    assert (tail.status_code, tail.content) == (206, data[-15:])


def test_ranged_get_206_exact_bytes_and_content_range(
    object_url: tuple[str, bytes],
) -> None:
    url, data = object_url

    answer = requests.get(url, headers={"Range": "bytes=1000-70999"})

    assert answer.status_code == 206
    assert answer.content == data[1000:71000]
    assert answer.headers["Content-Range"] == f"bytes 1000-70999/{len(data)}"
    assert answer.headers["Content-Length"] == "70000"


def test_ranged_get_past_end_is_clamped(object_url: tuple[str, bytes]) -> None:
    url, data = object_url

    answer = requests.get(url, headers={"Range": f"bytes=5-{len(data) + 100}"})

    assert answer.status_code == 206
    assert answer.content == data[5:]


def test_get_without_range_200_whole_object(object_url: tuple[str, bytes]) -> None:
    url, data = object_url

    answer = requests.get(url)

    assert answer.status_code == 200
    assert answer.content == data


def test_range_beyond_object_416(object_url: tuple[str, bytes]) -> None:
    url, data = object_url

    answer = requests.get(url, headers={"Range": f"bytes={len(data)}-"})

    assert answer.status_code == 416
    assert "<Code>InvalidRange</Code>" in answer.text


def test_keep_alive_serves_many_ranges_on_one_connection(
    object_url: tuple[str, bytes],
) -> None:
    url, data = object_url
    with requests.Session() as session:
        for start in range(0, len(data), 300_000):
            end = min(start + 300_000, len(data)) - 1
            answer = session.get(url, headers={"Range": f"bytes={start}-{end}"})
            assert answer.content == data[start : end + 1]


def _with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query)) | changes
    return parts._replace(query=urlencode(query)).geturl()


@pytest.mark.parametrize(
    "changes",
    [
        {"partNumber": "2"},
        {"expires": str(int(time.time()) + 99_999)},
        {"signature": "0" * 64},
    ],
    ids=["part-number", "expiry", "signature"],
)
def test_tampered_url_403(store: FileObjectStore, changes: dict[str, str]) -> None:
    upload_id = store.create_multipart("inbox/f1")
    url = _with_query(store.part_upload_url("inbox/f1", upload_id, 1), **changes)

    answer = requests.put(url, data=b"abc")

    assert answer.status_code == 403
    assert "<Code>SignatureDoesNotMatch</Code>" in answer.text
    assert store.list_parts("inbox/f1", upload_id) == []


def test_expired_get_url_403_access_denied(
    store: FileObjectStore, object_url: tuple[str, bytes]
) -> None:
    store.url_ttl_s = -1
    url = store.download_url("outbox/obj")

    answer = requests.get(url, headers={"Range": "bytes=0-9"})

    assert answer.status_code == 403
    assert "<Code>AccessDenied</Code>" in answer.text


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-9", (0, 9)),
        ("bytes=10-", (10, 99)),
        ("bytes=-5", (95, 99)),
        ("bytes=-500", (0, 99)),
        ("bytes=90-500", (90, 99)),
        ("bytes=0-1,5-6", None),  # several ranges: S3 answers the whole object
        ("items=0-9", None),
    ],
)
def test_parse_range(header: str | None, expected: tuple[int, int] | None) -> None:
    assert parse_range(header, 100) == expected


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=5-4", "bytes=-0"])
def test_parse_range_unsatisfiable(header: str) -> None:
    with pytest.raises(S3Problem) as caught:
        parse_range(header, 100)
    assert caught.value.status == 416


def test_multipart_etag_single_part_has_suffix() -> None:
    md5 = hashlib.md5(b"abc").hexdigest()

    etag = multipart_etag([md5])

    assert etag == hashlib.md5(bytes.fromhex(md5)).hexdigest() + "-1"


def test_store_rejects_keys_outside_inbox_and_outbox(tmp_path: Path) -> None:
    store = FileObjectStore(tmp_path, b"k" * 32, 60)

    with pytest.raises(S3Problem):
        store.object_files("../state.json")
