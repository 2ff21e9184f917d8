"""StorageObject against the sandbox: real downloads, uploads, listings, errors."""

import asyncio
import hashlib
import logging
from pathlib import Path

import pytest
from snakemake.io import IOCache
from snakemake_interface_common.exceptions import WorkflowError

from snakemake_ghga import crypt4gh as crypt
from snakemake_ghga.errors import ApiError
from snakemake_ghga.ghga.models import UploadChecksums
from snakemake_storage_plugin_ghga import StorageProvider
from snakemake_storage_plugin_ghga.storage_object import StorageObject
from tests.conftest import make_key_pair
from tests.plugin.conftest import SandboxUser

LOGGER = logging.getLogger(__name__)
PART_SIZE = 64 * 2**20


def _provider(user: SandboxUser, tmp_path: Path, **changes: object) -> StorageProvider:
    return StorageProvider(
        local_prefix=tmp_path / "prefix",
        logger=LOGGER,
        settings=user.settings(**changes),
    )


def _bam_accession(user: SandboxUser) -> str:
    return next(a for a, c in user.contents.items() if len(c) == 200_000)


def test_retrieve_gives_decrypted_verified_file_with_extension(
    sandbox_user: SandboxUser, tmp_path: Path
) -> None:
    accession = _bam_accession(sandbox_user)
    obj = _provider(sandbox_user, tmp_path).object(f"ghga://{accession}")
    content = sandbox_user.contents[accession]

    obj.local_path().parent.mkdir(parents=True, exist_ok=True)
    obj.retrieve_object()

    assert obj.local_path().name == f"{accession}.bam"
    assert obj.local_path().read_bytes() == content
    assert obj.size() == len(content)
    assert obj.checksum() == "sha256:" + hashlib.sha256(content).hexdigest()


def test_exists_for_many_files_costs_one_work_package_listing(
    sandbox_user: SandboxUser, tmp_path: Path
) -> None:
    provider = _provider(sandbox_user, tmp_path)
    assert provider.setup.download_token is not None
    package_id = provider.setup.download_token.split(":")[0]
    before = len(sandbox_user.sandbox.request_log())
    queries = [f"ghga://{a}" for a in sandbox_user.contents] + ["ghga://GHGAF9"]

    cache = IOCache(max_wait_time=10)
    asyncio.run(provider.object(queries[0]).inventory(cache))
    found = [provider.object(q).exists() for q in queries]

    listings = [
        e
        for e in sandbox_user.sandbox.request_log()[before:]
        if e["method"] == "GET" and e["path"] == f"/wps/work-packages/{package_id}"
    ]
    assert found == [True] * len(sandbox_user.contents) + [False]
    assert len(listings) == 1


def test_store_exists_remove_and_store_again(
    sandbox_user: SandboxUser, tmp_path: Path
) -> None:
    provider = _provider(sandbox_user, tmp_path)
    alias = f"objects/{tmp_path.name}/result.txt"
    obj = provider.object(f"ghga://upload/{alias}")
    obj.local_path().parent.mkdir(parents=True)
    obj.local_path().write_text("first version\n")

    obj.store_object()
    exists_after_store = obj.exists()
    obj.local_path().write_text("second version\n")  # the rerun's new output
    obj.remove()
    exists_after_remove = obj.exists()
    fresh_view = _provider(sandbox_user, tmp_path).object(f"ghga://upload/{alias}")
    exists_for_fresh_provider = fresh_view.exists()
    obj.store_object()

    states = [u.state for u in sandbox_user.sandbox.uploads() if u.alias == alias]
    assert exists_after_store and not exists_after_remove
    assert not exists_for_fresh_provider
    assert states[0] == "cancelled"
    assert states[1] in ("inbox", "interrogated")
    assert obj.exists() and obj.size() == len("second version\n")


def _output_over_left_upload(
    user: SandboxUser, tmp_path: Path, state: str
) -> StorageObject:
    """A written local output whose alias has an upload in `init` or `failed`.

    `init` is what a run killed after the create leaves once its local resume
    state is gone; `failed` is a close the UCS refused (here: no parts sent).
    """
    provider = _provider(user, tmp_path)
    alias = f"objects/{tmp_path.name}/{state}.txt"
    api = provider.catalog.client("upload").api
    created = api.create_upload(
        alias, 10, crypt.encrypted_size(10), PART_SIZE, overwrite=False
    )
    if state == "failed":
        bogus = UploadChecksums("0" * 64, "0" * 32 + "-1", ["0" * 32], ["0" * 64])
        with pytest.raises(ApiError):
            api.complete_upload(created.file_id, bogus)
    obj = provider.object(f"ghga://upload/{alias}")
    obj.local_path().parent.mkdir(parents=True)
    obj.local_path().write_text("result\n")
    return obj


def _states(user: SandboxUser, obj: StorageObject) -> list[str]:
    return [u.state for u in user.sandbox.uploads() if u.alias == obj.parsed.name]


def test_store_replaces_unfinished_upload_that_has_no_resume_state(
    sandbox_user: SandboxUser, tmp_path: Path
) -> None:
    # e.g. left by a job that died on another node: the alias is not blocked.
    obj = _output_over_left_upload(sandbox_user, tmp_path, "init")

    asyncio.run(obj.managed_store())

    assert obj.exists() and obj.size() == len("result\n")
    states = _states(sandbox_user, obj)
    assert states[0] == "cancelled"
    assert states[-1] in ("inbox", "interrogated")


def test_store_twice_and_remove_keep_the_same_upload(
    sandbox_user: SandboxUser, tmp_path: Path
) -> None:
    # Snakemake stores each output again in the main process and, after a
    # failed job, removes its outputs: neither may cost or lose the upload.
    provider = _provider(sandbox_user, tmp_path)
    alias = f"objects/{tmp_path.name}/twice.txt"
    obj = provider.object(f"ghga://upload/{alias}")
    obj.local_path().parent.mkdir(parents=True)
    obj.local_path().write_bytes(b"same content\n" * 1000)
    obj.store_object()
    before = len(sandbox_user.sandbox.request_log())

    _provider(sandbox_user, tmp_path).object(f"ghga://upload/{alias}").store_object()
    _provider(sandbox_user, tmp_path).object(f"ghga://upload/{alias}").remove()

    new = sandbox_user.sandbox.request_log()[before:]
    assert [e for e in new if e["method"] in ("PUT", "POST", "PATCH", "DELETE")
            and not e["path"].endswith("/work-order-tokens")] == []  # fmt: skip
    assert _states(sandbox_user, obj) in (["inbox"], ["interrogated"])


def test_store_after_removing_unfinished_upload_succeeds(
    sandbox_user: SandboxUser, tmp_path: Path
) -> None:
    obj = _output_over_left_upload(sandbox_user, tmp_path, "init")

    obj.catalog.client("upload").remove(obj.parsed.name)  # = `ghga-transfer rm`
    obj.store_object()

    assert obj.exists()
    assert _states(sandbox_user, obj)[0] == "cancelled"


def test_store_over_failed_upload_uploads_again(
    sandbox_user: SandboxUser, tmp_path: Path
) -> None:
    obj = _output_over_left_upload(sandbox_user, tmp_path, "failed")

    exists_before = obj.exists()
    obj.store_object()

    assert not exists_before
    assert obj.exists() and obj.size() == len("result\n")
    assert _states(sandbox_user, obj)[0] == "failed"


def test_token_for_another_key_fails_with_clear_message(
    sandbox_user: SandboxUser, tmp_path: Path
) -> None:
    other = make_key_pair(tmp_path / "other", "other")
    token = sandbox_user.sandbox.download_token(other.public)
    obj = _provider(sandbox_user, tmp_path, download_token=token).object(
        "ghga://" + _bam_accession(sandbox_user)
    )

    with pytest.raises(WorkflowError) as info:
        obj.exists()

    assert "cannot be opened with your private key" in str(info.value)
    assert token.split(":")[1] not in str(info.value)
