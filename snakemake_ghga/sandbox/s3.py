"""The object store on a real S3 (Ceph RGW, MinIO, moto's server) through boto3.

Imports the stdlib, boto3/botocore and the sandbox's `objects` and `problems`.
Uploads are real S3 multipart uploads with presigned `upload_part` URLs,
downloads real presigned `get_object` URLs (SigV4), so expiry and signatures
are whatever that S3 enforces. Credentials come from the usual AWS variables.
Objects live in one bucket (default `ghga-sandbox`), created when missing.
"""

import contextlib
import io
import os
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from .objects import CompletedObject, PartInfo
from .problems import S3Problem

__all__ = ["DEFAULT_BUCKET", "S3ObjectStore"]

DEFAULT_BUCKET = "ghga-sandbox"


class _StreamingRaw(io.RawIOBase):
    """A raw stream over a botocore StreamingBody, so it can be buffered."""

    def __init__(self, body: Any) -> None:
        self._body = body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._body.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._body.close()
        super().close()


def _error_code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))


class S3ObjectStore:
    """Objects in a bucket of a real S3 endpoint, via boto3."""

    def __init__(
        self,
        endpoint_url: str,
        temp_dir: Path,
        url_ttl_s: int,
        bucket: str = DEFAULT_BUCKET,
    ) -> None:
        self.temp_dir = temp_dir
        self.temp_dir.mkdir(parents=True, exist_ok=True)
        self.url_ttl_s = url_ttl_s
        self.bucket = bucket
        config = Config(signature_version="s3v4", s3={"addressing_style": "path"})
        self._client: Any = boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            config=config,
            region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        )

    def __repr__(self) -> str:
        return f"S3ObjectStore(bucket={self.bucket})"

    def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist yet."""
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except ClientError:
            self._client.create_bucket(Bucket=self.bucket)

    def create_multipart(self, key: str) -> str:
        """Start a multipart upload of `key`; return its upload id."""
        answer = self._client.create_multipart_upload(Bucket=self.bucket, Key=key)
        return str(answer["UploadId"])

    def part_upload_url(self, key: str, upload_id: str, part_number: int) -> str:
        """Presign a PUT of one part."""
        params = {
            "Bucket": self.bucket,
            "Key": key,
            "UploadId": upload_id,
            "PartNumber": part_number,
        }
        return str(
            self._client.generate_presigned_url(
                "upload_part", Params=params, ExpiresIn=self.url_ttl_s
            )
        )

    def has_multipart(self, key: str, upload_id: str) -> bool:
        """Whether the multipart upload exists (not completed or aborted)."""
        try:
            self._client.list_parts(
                Bucket=self.bucket, Key=key, UploadId=upload_id, MaxParts=1
            )
        except ClientError:
            return False
        return True

    def list_parts(self, key: str, upload_id: str) -> list[PartInfo]:
        """The uploaded parts, by part number."""
        pages = self._client.get_paginator("list_parts").paginate(
            Bucket=self.bucket, Key=key, UploadId=upload_id
        )
        try:
            return sorted(
                (
                    PartInfo(int(p["PartNumber"]), int(p["Size"]), p["ETag"].strip('"'))
                    for page in pages
                    for p in page.get("Parts", [])
                ),
                key=lambda part: part.number,
            )
        except ClientError as err:
            raise S3Problem(404, "NoSuchUpload", _error_code(err)) from None

    def complete_multipart(
        self, key: str, upload_id: str, parts: list[PartInfo]
    ) -> CompletedObject:
        """Complete the S3 multipart upload with `parts`; return ETag and size."""
        listing = [{"PartNumber": p.number, "ETag": f'"{p.etag}"'} for p in parts]
        self._client.complete_multipart_upload(
            Bucket=self.bucket,
            Key=key,
            UploadId=upload_id,
            MultipartUpload={"Parts": listing},
        )
        head = self._client.head_object(Bucket=self.bucket, Key=key)
        return CompletedObject(str(head["ETag"]).strip('"'), int(head["ContentLength"]))

    def abort_multipart(self, key: str, upload_id: str) -> None:
        """Drop a multipart upload and its parts (no error if gone)."""
        with contextlib.suppress(ClientError):
            self._client.abort_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id
            )

    def open_object(self, key: str) -> io.BufferedIOBase:
        """Open an object for sequential reading (a streaming GET)."""
        body = self._client.get_object(Bucket=self.bucket, Key=key)["Body"]
        return io.BufferedReader(_StreamingRaw(body), buffer_size=1 << 20)

    def store_object(self, key: str, source: Path) -> None:
        """Upload the local file `source` as `key`, then remove it."""
        self._client.upload_file(str(source), self.bucket, key)
        source.unlink()

    def object_size(self, key: str) -> int:
        """Size of an object in bytes."""
        head = self._client.head_object(Bucket=self.bucket, Key=key)
        return int(head["ContentLength"])

    def download_url(self, key: str) -> str:
        """Presign a GET of an object (ranged GETs allowed)."""
        return str(
            self._client.generate_presigned_url(
                "get_object",
                Params={"Bucket": self.bucket, "Key": key},
                ExpiresIn=self.url_ttl_s,
            )
        )

    def delete_object(self, key: str) -> None:
        """Delete an object (no error if gone)."""
        self._client.delete_object(Bucket=self.bucket, Key=key)
