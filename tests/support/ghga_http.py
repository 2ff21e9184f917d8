"""A minimal, explicit client of the GHGA HTTP contract, for tests that probe servers.

Drives the WKVS, WPS, UCS and DCS with `requests` one call at a time, so a
test can send exactly the request it means (a wrong checksum, a gap in part
numbers, a stale token) and look at the raw answer. Not a product client:
no retries, no parallelism.
"""

import base64
import hashlib
from dataclasses import dataclass
from pathlib import Path

import requests
from nacl.public import PrivateKey, SealedBox

from snakemake_ghga import crypt4gh as crypt

__all__ = ["EncryptedUpload", "GhgaHttpDriver", "close_body_of", "unseal"]

STORAGE_ALIAS = "HD01"


def unseal(secret_key: bytes, sealed_b64: str) -> str:
    """Open a sealed box (base64) with the user's secret key."""
    box = SealedBox(PrivateKey(secret_key))
    return bytes(box.decrypt(base64.b64decode(sealed_b64))).decode()


def close_body_of(parts: list[bytes], decrypted_sha256: str) -> dict[str, object]:
    """The U5 body for exactly these part bodies (S3 multipart ETag included)."""
    md5s = [hashlib.md5(p).hexdigest() for p in parts]
    etag = hashlib.md5(b"".join(bytes.fromhex(h) for h in md5s)).hexdigest()
    return {
        "decrypted_sha256": decrypted_sha256,
        "encrypted_md5": f"{etag}-{len(parts)}",
        "encrypted_parts_md5": md5s,
        "encrypted_parts_sha256": [hashlib.sha256(p).hexdigest() for p in parts],
    }


@dataclass(frozen=True, slots=True)
class EncryptedUpload:
    """A Crypt4GH file ready to upload, with what the close call reports."""

    path: Path
    alias: str
    result: crypt.EncryptionResult

    def parts(self) -> list[bytes]:
        """The part bodies, in order."""
        data = self.path.read_bytes()
        return [data[p.offset : p.offset + p.size] for p in self.result.parts]

    def close_body(self) -> dict[str, object]:
        """The U5 body a correct client sends."""
        return {
            "decrypted_sha256": self.result.plain_sha256,
            "encrypted_md5": self.result.multipart_etag,
            "encrypted_parts_md5": [p.md5 for p in self.result.parts],
            "encrypted_parts_sha256": [p.sha256 for p in self.result.parts],
        }


class GhgaHttpDriver:
    """One user with one work package token, talking to one GHGA deployment."""

    def __init__(self, wkvs_url: str, token: str, user_secret_key: bytes) -> None:
        self.http = requests.Session()
        self.user_secret_key = user_secret_key
        values = self.http.get(f"{wkvs_url}/values", timeout=10).json()
        self.wps_url = values["wps_api_url"].rstrip("/")
        self.ucs_url = values["ucs_api_url"].rstrip("/")
        self.dcs_url = values["dcs_api_url"].rstrip("/")
        self.hub_public_key = base64.b64decode(
            values["crypt4gh_public_keys"][STORAGE_ALIAS]
        )
        self.package_id, sealed = token.split(":")
        self.access_token = unseal(user_secret_key, sealed)
        self.package = self.work_package().json()

    def work_package(self, access_token: str | None = None) -> requests.Response:
        """W1: GET the work package."""
        bearer = access_token if access_token is not None else self.access_token
        return self.http.get(
            f"{self.wps_url}/work-packages/{self.package_id}",
            headers={"Authorization": f"Bearer {bearer}"},
            timeout=10,
        )

    def upload_wot(
        self, work_type: str, alias: str | None = None, file_id: str | None = None
    ) -> str:
        """W3: a decrypted upload-path work order token."""
        rdub = self.package["research_data_upload_box_id"]
        answer = self.http.post(
            f"{self.wps_url}/work-packages/{self.package_id}/boxes/{rdub}"
            "/work-order-tokens",
            json={"work_type": work_type, "alias": alias, "file_id": file_id},
            headers={"Authorization": f"Bearer {self.access_token}"},
            timeout=10,
        )
        assert answer.status_code == 201, answer.text
        return unseal(self.user_secret_key, answer.json())

    def download_wot(self, accession: str) -> str:
        """W2: a decrypted download work order token."""
        answer = self.http.post(
            f"{self.wps_url}/work-packages/{self.package_id}/files/{accession}"
            "/work-order-tokens",
            headers={"Authorization": f"Bearer {self.access_token}"},
            timeout=10,
        )
        assert answer.status_code == 201, answer.text
        return unseal(self.user_secret_key, answer.json())

    @property
    def box_path(self) -> str:
        """`{ucs}/boxes/{FUB id}/uploads`."""
        return f"{self.ucs_url}/boxes/{self.package['file_upload_box_id']}/uploads"

    def call(
        self,
        method: str,
        url: str,
        wot: str,
        json: object = None,
        params: dict[str, int] | None = None,
    ) -> requests.Response:
        """A UCS/DCS call with a Bearer WOT, as the official client sends it."""
        headers = {"Authorization": f"Bearer {wot}", "Accept": "application/json"}
        return self.http.request(
            method, url, headers=headers, json=json, params=params, timeout=30
        )

    def create(
        self,
        alias: str,
        decrypted_size: int,
        encrypted_size: int,
        part_size: int,
        overwrite: bool = False,
    ) -> requests.Response:
        """U2 with a fresh `create` WOT."""
        body = {
            "alias": alias,
            "decrypted_size": decrypted_size,
            "encrypted_size": encrypted_size,
            "part_size": part_size,
            "overwrite": overwrite,
        }
        return self.call("POST", self.box_path, self.upload_wot("create", alias), body)

    def put_part(self, file_id: str, number: int, data: bytes) -> requests.Response:
        """U3 + U4: fetch a part URL and PUT the bytes to it."""
        wot = self.upload_wot("upload", file_id=file_id)
        answer = self.call("GET", f"{self.box_path}/{file_id}/parts/{number}", wot)
        assert answer.status_code == 200, answer.text
        return self.http.put(answer.json(), data=data, timeout=60)

    def close(self, file_id: str, body: dict[str, object]) -> requests.Response:
        """U5 with a fresh `close` WOT."""
        wot = self.upload_wot("close", file_id=file_id)
        return self.call("PATCH", f"{self.box_path}/{file_id}", wot, body)

    def delete(self, file_id: str) -> requests.Response:
        """U6 with a fresh `delete` WOT."""
        wot = self.upload_wot("delete", file_id=file_id)
        return self.call("DELETE", f"{self.box_path}/{file_id}", wot)

    def encrypt(
        self, source: Path, alias: str, part_size: int, workdir: Path
    ) -> EncryptedUpload:
        """Encrypt `source` to the hub key as the official client would."""
        target = workdir / f"{alias}.c4gh"
        result = crypt.encrypt_file(
            source,
            target,
            writer_secret_key=self.user_secret_key,
            recipient_public_key=self.hub_public_key,
            part_size=part_size,
        )
        return EncryptedUpload(target, alias, result)

    def start(self, upload: EncryptedUpload) -> str:
        """U2 for an encrypted file; return its file id."""
        answer = self.create(
            upload.alias,
            upload.result.plain_size,
            upload.result.encrypted_size,
            upload.result.part_size or 0,
        )
        assert answer.status_code == 201, answer.text
        return str(answer.json()["file_id"])

    def upload(self, upload: EncryptedUpload) -> tuple[str, requests.Response]:
        """Create, PUT every part and close; return the file id and U5's answer."""
        file_id = self.start(upload)
        for number, data in enumerate(upload.parts(), start=1):
            answer = self.put_part(file_id, number, data)
            assert answer.status_code == 200, answer.text
        return file_id, self.close(file_id, upload.close_body())
