"""StorageObject/catalog behaviour against a recording fake client (no network)."""

import asyncio
import hashlib
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from snakemake.io import IOCache
from snakemake_interface_common.exceptions import WorkflowError
from snakemake_interface_storage_plugins.exceptions import (
    FileOrDirectoryNotFoundError,
)

from snakemake_ghga.errors import ApiError, AuthError
from snakemake_storage_plugin_ghga import StorageProvider
from snakemake_storage_plugin_ghga.storage_object import (
    ARCHIVE_MTIME,
    StorageObject,
    safe_extension,
)
from tests.plugin.conftest import (
    FakeDownloadInfo,
    FakeOutcome,
    FakeUpload,
    RecordingClient,
)

MakeProvider = Callable[..., StorageProvider]


def test_local_path_has_work_package_extension(make_provider: MakeProvider) -> None:
    provider = make_provider()

    path = provider.object("ghga://GHGAF2").local_path()

    assert path == provider.local_prefix / "GHGAF2.vcf.gz"


def test_local_path_ignores_unsafe_extension(make_provider: MakeProvider) -> None:
    provider = make_provider()

    assert provider.object("ghga://GHGAF3").local_path().name == "GHGAF3"


def test_local_path_of_upload_and_wildcards_needs_no_listing(
    make_provider: MakeProvider, fake_client: RecordingClient
) -> None:
    provider = make_provider()

    upload = provider.object("ghga://upload/a/b.txt").local_path()
    pattern = provider.object("ghga://{acc}").local_path()

    assert upload == provider.local_prefix / "upload" / "a" / "b.txt"
    assert pattern == provider.local_prefix / "{acc}"
    assert fake_client.calls == {}


@pytest.mark.parametrize(
    ("extension", "expected"),
    [(".bam", ".bam"), (".vcf.gz", ".vcf.gz"), ("", ""), (None, ""), ("../x", ""),
     ("/abs", ""), (".a b", "")],
)  # fmt: skip
def test_safe_extension(extension: str | None, expected: str) -> None:
    assert safe_extension(extension) == expected


def test_exists_uses_one_listing_for_all_accessions(
    make_provider: MakeProvider, fake_client: RecordingClient
) -> None:
    provider = make_provider()

    found = [provider.object(f"ghga://GHGAF{n}").exists() for n in (1, 2, 3, 4)]

    assert found == [True, True, True, False]
    assert fake_client.calls["work_package_files"] == 1


def test_mtime_is_constant_archive_time(make_provider: MakeProvider) -> None:
    provider = make_provider()

    mtimes = {provider.object(q).mtime() for q in ("ghga://GHGAF1", "ghga://upload/x")}

    assert mtimes == {ARCHIVE_MTIME} == {0.0}


def test_size_and_checksum_describe_each_accession_once(
    make_provider: MakeProvider, fake_client: RecordingClient
) -> None:
    provider = make_provider()
    obj = provider.object("ghga://GHGAF2")

    sizes = [obj.size(), provider.object("ghga://GHGAF2").size(), obj.local_footprint()]
    checksum = obj.checksum()

    assert sizes == [4, 4, 4]
    assert checksum == "sha256:" + "ab" * 32
    assert fake_client.calls["describe_download"] == 1


def test_inventory_fills_cache_from_one_listing(
    make_provider: MakeProvider, fake_client: RecordingClient
) -> None:
    provider = make_provider()
    fake_client.uploads = [FakeUpload("old/x.txt", "inbox", 7)]
    cache = IOCache(max_wait_time=10)
    obj = provider.object("ghga://GHGAF1")
    upload = provider.object("ghga://upload/old/x.txt")

    for _ in range(2):
        asyncio.run(obj.inventory(cache))
        asyncio.run(upload.inventory(cache))

    prefix = provider.local_prefix
    assert cache.exists_in_storage[str(prefix / "GHGAF2.vcf.gz")] is True
    assert cache.mtime[str(prefix / "GHGAF3")].storage() == ARCHIVE_MTIME
    assert cache.size[str(prefix / "upload/old/x.txt")] == 7
    assert str(prefix / "GHGAF1.bam") not in cache.size
    assert fake_client.calls == {"work_package_files": 1, "list_uploads": 1}


@pytest.mark.parametrize(
    ("state", "exists"),
    [("inbox", True), ("archived", True), ("init", False), ("failed", False),
     ("cancelled", False)],
)  # fmt: skip
def test_upload_exists_only_when_complete(
    make_provider: MakeProvider, fake_client: RecordingClient, state: str, exists: bool
) -> None:
    fake_client.uploads = [FakeUpload("r.txt", state, 3)]

    assert make_provider().object("ghga://upload/r.txt").exists() is exists


def test_store_then_exists_answers_from_upload_state(
    make_provider: MakeProvider, fake_client: RecordingClient
) -> None:
    provider = make_provider()
    obj = provider.object("ghga://upload/out/r.txt")
    assert not obj.exists()
    obj.local_path().parent.mkdir(parents=True)
    obj.local_path().write_text("result")

    obj.store_object()

    assert obj.exists()
    assert obj.size() == 6
    assert obj.checksum() == "sha256:" + hashlib.sha256(b"result").hexdigest()
    assert obj.mtime() == ARCHIVE_MTIME
    # One listing, and one more for the miss before the store; none after it.
    assert fake_client.calls["list_uploads"] == 2


def test_exists_sees_upload_stored_by_another_process(
    make_provider: MakeProvider, fake_client: RecordingClient
) -> None:
    # --shared-fs-usage none: the job stores, the main process then checks.
    obj = make_provider().object("ghga://upload/r.txt")
    missing_before = not obj.exists()
    fake_client.uploads.append(FakeUpload("r.txt", "inbox", 3))

    assert missing_before
    assert obj.exists()
    assert obj.size() == 3


def test_remove_upload_deletes_it_from_box(
    make_provider: MakeProvider, fake_client: RecordingClient
) -> None:
    fake_client.uploads = [FakeUpload("r.txt", "inbox", 3)]
    obj = make_provider().object("ghga://upload/r.txt")
    assert obj.exists()

    obj.remove()

    assert not obj.exists()
    assert fake_client.calls["remove"] == 1
    assert fake_client.uploads == []


def _stored_output(
    make_provider: MakeProvider, fake_client: RecordingClient, content: str
) -> StorageObject:
    """r.txt stored once with content, as the job's own store leaves it."""
    obj = make_provider().object("ghga://upload/r.txt")
    obj.local_path().parent.mkdir(parents=True)
    obj.local_path().write_text(content)
    obj.store_object()
    fake_client.calls.clear()
    return obj


def test_store_again_with_same_content_succeeds_without_upload(
    make_provider: MakeProvider, fake_client: RecordingClient
) -> None:
    # Snakemake stores an output up to three times (job, job step, main process).
    _stored_output(make_provider, fake_client, "result")
    again = make_provider().object("ghga://upload/r.txt")  # another process

    again.store_object()

    assert again.exists()
    assert len(fake_client.uploads) == 1
    assert fake_client.calls["holds_same"] == 1


def test_store_again_with_other_content_fails_with_remedy(
    make_provider: MakeProvider, fake_client: RecordingClient
) -> None:
    obj = _stored_output(make_provider, fake_client, "result")
    obj.local_path().write_text("other")

    with pytest.raises(WorkflowError) as info:
        make_provider().object("ghga://upload/r.txt").store_object()

    assert "as 'r.txt' was skipped: already in the box (inbox)" in str(info.value)
    assert "`ghga-transfer rm r.txt`" in str(info.value)
    assert len(fake_client.uploads) == 1


def test_remove_keeps_upload_equal_to_local_copy(
    make_provider: MakeProvider, fake_client: RecordingClient
) -> None:
    # A failed job's cleanup must not delete an upload that is whole.
    obj = _stored_output(make_provider, fake_client, "result")

    obj.remove()

    assert fake_client.calls["remove"] == 0
    assert obj.exists()


def test_remove_deletes_upload_that_differs_from_local_copy(
    make_provider: MakeProvider, fake_client: RecordingClient
) -> None:
    obj = _stored_output(make_provider, fake_client, "result")
    obj.local_path().write_text("changed")

    obj.remove()

    assert fake_client.calls["remove"] == 1
    assert not obj.exists()


def test_store_replaces_unfinished_upload_without_local_state(
    make_provider: MakeProvider, fake_client: RecordingClient
) -> None:
    obj = make_provider().object("ghga://upload/r.txt")
    obj.local_path().parent.mkdir(parents=True)
    obj.local_path().write_text("x")

    obj.store_object()

    assert fake_client.replace_unfinished == [True]


def test_remove_accession_refused_as_immutable(make_provider: MakeProvider) -> None:
    obj = make_provider().object("ghga://GHGAF1")

    with pytest.raises(WorkflowError, match="archive files are immutable"):
        obj.remove()


def test_store_accession_refused_as_read_only(make_provider: MakeProvider) -> None:
    obj = make_provider().object("ghga://GHGAF1")

    with pytest.raises(
        WorkflowError, match=r"read-only; write outputs as ghga://upload/"
    ):
        obj.store_object()


def test_retrieve_upload_refused(make_provider: MakeProvider) -> None:
    obj = make_provider().object("ghga://upload/r.txt")

    with pytest.raises(WorkflowError, match="cannot be downloaded"):
        obj.retrieve_object()


def test_retrieve_writes_local_copy(make_provider: MakeProvider) -> None:
    obj = make_provider().object("ghga://GHGAF1")

    asyncio.run(obj.managed_retrieve())

    assert obj.local_path().read_bytes() == b"one"


def test_managed_retrieve_asks_size_once_off_the_event_loop(
    make_provider: MakeProvider, fake_client: RecordingClient
) -> None:
    # The free-space check is the only size question; it must not block the loop.
    obj = make_provider().object("ghga://GHGAF1")
    threads: list[str] = []
    size = obj.size

    def recording_size() -> int:
        threads.append(threading.current_thread().name)
        return size()

    obj.size = recording_size

    asyncio.run(obj.managed_retrieve())

    assert len(threads) == 1
    assert threads[0] != threading.main_thread().name
    assert fake_client.calls["describe_download"] == 1


def test_managed_retrieve_runs_files_concurrently(
    make_provider: MakeProvider, fake_client: RecordingClient
) -> None:
    # Three downloads must be inside download_file at the same time to pass the
    # barrier; run one after another, the first would wait alone and break it.
    barrier = threading.Barrier(3, timeout=20)
    fake_client.on_download = lambda accession: barrier.wait()
    provider = make_provider()
    objects = [provider.object(f"ghga://GHGAF{n}") for n in (1, 2, 3)]

    async def retrieve_all() -> None:
        await asyncio.gather(*(obj.managed_retrieve() for obj in objects))

    asyncio.run(retrieve_all())

    assert all(obj.local_path().exists() for obj in objects)
    assert not barrier.broken


def test_managed_store_runs_in_worker_thread(
    make_provider: MakeProvider, fake_client: RecordingClient
) -> None:
    threads: list[str] = []
    original = fake_client.upload_file

    def upload_file(path: Path, alias: str, **options: bool) -> FakeOutcome:
        threads.append(threading.current_thread().name)
        return original(path, alias, **options)

    fake_client.upload_file = upload_file
    obj = make_provider().object("ghga://upload/r.txt")
    obj.local_path().parent.mkdir(parents=True)
    obj.local_path().write_text("x")

    asyncio.run(obj.managed_store())

    assert threads and threads[0] != threading.main_thread().name


def test_engine_error_becomes_workflow_error_with_its_message(
    make_provider: MakeProvider, fake_client: RecordingClient
) -> None:
    fake_client.fail_with = AuthError(
        "the work package token was refused (401)", "Request a new token", status=401
    )
    obj = make_provider().object("ghga://GHGAF1")

    with pytest.raises(WorkflowError) as info:
        obj.exists()

    assert "the work package token was refused (401). Request a new token" in str(
        info.value
    )
    assert isinstance(info.value.__cause__, AuthError)


def test_managed_retrieve_failure_removes_partial_copy(
    make_provider: MakeProvider, fake_client: RecordingClient
) -> None:
    obj = make_provider().object("ghga://GHGAF1")

    def fail(accession: str) -> None:
        obj.local_path().write_bytes(b"partial")
        raise AuthError("download of GHGAF1 was refused", "Request a new token")

    fake_client.on_download = fail

    with pytest.raises(WorkflowError) as info:
        asyncio.run(obj.managed_retrieve())

    assert not obj.local_path().exists()
    assert "Failed to retrieve storage object from ghga://GHGAF1" in str(info.value)
    assert "download of GHGAF1 was refused. Request a new token" in str(info.value)


@pytest.mark.parametrize(
    ("token_setting", "query", "env_var"),
    [
        ("download_token", "ghga://GHGAF1", "SNAKEMAKE_STORAGE_GHGA_DOWNLOAD_TOKEN"),
        ("upload_token", "ghga://upload/x", "SNAKEMAKE_STORAGE_GHGA_UPLOAD_TOKEN"),
    ],
)
def test_missing_token_for_direction_names_env_var(
    make_provider: MakeProvider, token_setting: str, query: str, env_var: str
) -> None:
    obj = make_provider(**{token_setting: None}).object(query)

    with pytest.raises(WorkflowError, match=env_var):
        obj.exists()


def test_list_candidate_matches_returns_full_queries(
    make_provider: MakeProvider, fake_client: RecordingClient
) -> None:
    fake_client.uploads = [FakeUpload("a/b.txt", "inbox", 1)]
    provider = make_provider()

    accessions = provider.object("ghga://{acc}").list_candidate_matches()
    uploads = provider.object("ghga://upload/{name}").list_candidate_matches()

    assert sorted(accessions) == ["ghga://GHGAF1", "ghga://GHGAF2", "ghga://GHGAF3"]
    assert uploads == ["ghga://upload/a/b.txt"]


def test_catalog_close_closes_clients(
    make_provider: MakeProvider, fake_client: RecordingClient
) -> None:
    provider = make_provider()
    provider.object("ghga://GHGAF1").exists()

    provider.catalog.close()

    assert fake_client.closed


def test_upload_skipped_by_engine_fails_with_remedy(
    make_provider: MakeProvider, fake_client: RecordingClient
) -> None:
    # The engine skips an alias that is complete in the box: here one that
    # another run uploaded after this provider listed the box.
    def skip(path: Path, alias: str, **options: bool) -> FakeOutcome:
        return FakeOutcome("skipped", error="already in the box (inbox)")

    fake_client.upload_file = skip
    obj = make_provider().object("ghga://upload/r.txt")
    obj.local_path().parent.mkdir(parents=True)
    obj.local_path().write_text("x")

    with pytest.raises(WorkflowError) as info:
        obj.store_object()

    message = str(info.value)
    assert "as 'r.txt' was skipped: already in the box (inbox)" in message
    assert "`ghga-transfer rm r.txt`" in message
    assert not obj.exists()


def test_refused_upload_keeps_engine_message_if_box_cannot_be_listed(
    make_provider: MakeProvider, fake_client: RecordingClient
) -> None:
    obj = make_provider().object("ghga://upload/r.txt")
    obj.local_path().parent.mkdir(parents=True)
    obj.local_path().write_text("x")
    fake_client.fail_with = ApiError("creating the upload of 'r.txt': HTTP 500")

    with pytest.raises(WorkflowError) as info:
        obj.store_object()

    assert str(info.value) == "creating the upload of 'r.txt': HTTP 500"
    assert fake_client.calls["list_uploads"] == 0  # no second look at the box


def _store_refused(
    make_provider: MakeProvider, client: RecordingClient, error: ApiError
) -> str:
    """Store r.txt, unfinished (`init`) in the box, failing with error; the message."""
    obj = make_provider().object("ghga://upload/r.txt")
    obj.local_path().parent.mkdir(parents=True)
    obj.local_path().write_text("x")
    client.uploads = [FakeUpload("r.txt", "init", 0)]

    def upload_file(path: Path, alias: str, **options: bool) -> FakeOutcome:
        raise error

    client.upload_file = upload_file
    with pytest.raises(WorkflowError) as info:
        obj.store_object()
    return str(info.value)


def test_refused_upload_of_unfinished_alias_keeps_engine_message_for_other_errors(
    make_provider: MakeProvider, fake_client: RecordingClient
) -> None:
    # e.g. our own resumable upload of the alias hitting a full box
    full = "sending part 1 of 'r.txt': HTTP 507 (boxMaxSizeExceeded)"

    message = _store_refused(make_provider, fake_client, ApiError(full, status=507))

    assert message == full


def test_managed_size_asks_concurrently(
    make_provider: MakeProvider, fake_client: RecordingClient
) -> None:
    # Snakemake gathers managed_size() of all ready inputs; run inline, the first
    # describe_download would wait alone at the barrier until it breaks.
    barrier = threading.Barrier(3, timeout=20)
    original = fake_client.describe_download

    def describe(accession: str) -> FakeDownloadInfo:
        barrier.wait()
        return original(accession)

    fake_client.describe_download = describe
    provider = make_provider()
    objects = [provider.object(f"ghga://GHGAF{n}") for n in (1, 2, 3)]

    async def sizes() -> list[int]:
        return list(await asyncio.gather(*(o.managed_size() for o in objects)))

    assert asyncio.run(sizes()) == [3, 4, 5]


def test_managed_size_of_missing_accession_is_not_found(
    make_provider: MakeProvider,
) -> None:
    obj = make_provider().object("ghga://GHGAF9")

    with pytest.raises(FileOrDirectoryNotFoundError) as info:
        asyncio.run(obj.managed_size())

    assert info.value.local_path == obj.local_path()
    assert info.value.query == "ghga://GHGAF9"


def test_managed_checksum_wraps_engine_error(
    make_provider: MakeProvider, fake_client: RecordingClient
) -> None:
    provider = make_provider()
    obj = provider.object("ghga://GHGAF1")
    assert obj.exists()
    fake_client.fail_with = AuthError("download token expired", "Request a new one")

    with pytest.raises(WorkflowError) as info:
        asyncio.run(obj.managed_checksum())

    assert "Failed to get checksum of ghga://GHGAF1" in str(info.value)
    assert "download token expired. Request a new one" in str(info.value)


def test_invalid_query_object_builds_and_reports_reason(
    make_provider: MakeProvider, fake_client: RecordingClient
) -> None:
    obj = make_provider().object("ghga://sample1")

    validation = obj.is_valid_query()

    assert not validation
    assert "is not a file accession" in str(validation.reason)
    with pytest.raises(WorkflowError, match="invalid GHGA query 'ghga://sample1'"):
        obj.exists()
    assert fake_client.calls == {}
