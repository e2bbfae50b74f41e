"""Where first frames go when a video API fetches its input by URL (Luma's keyframes):
an uploader turns a local file into a URL the provider can read.

``--upload-to s3://bucket/prefix`` (or ``api.upload_to`` in the catalog entry) picks the
S3-compatible uploader (boto3, the ``s3`` extra): AWS S3, MinIO, Cloudflare R2 or any
other store boto3 reaches. Credentials and endpoint come from boto3's own chain
(``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, ``~/.aws``, ``AWS_ENDPOINT_URL_S3`` or
``AWS_ENDPOINT_URL`` for a non-AWS store); vlm-bench never reads or writes them. Objects
are named by content (sha256), so a rerun uploads nothing new, and the provider gets a
presigned GET URL (the bucket need not be public). Records keep the ``s3://`` address,
never the presigned URL.
"""

from __future__ import annotations

import hashlib
import importlib.util
import mimetypes
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

S3_HINT = "pip install 'vlm-bench[s3]'"


class UploadError(RuntimeError):
    pass


class Uploader(Protocol):
    def check(self) -> None: ...

    def upload(self, path: Path) -> str:
        """A URL the provider can GET the file from."""
        ...

    def location(self, path: Path) -> str:
        """Where ``path`` goes (safe to write into records and the dry run)."""
        ...


def uploader_for(target: str | None, *, expires_s: int = 86400) -> Uploader | None:
    if not target:
        return None
    if target.startswith("s3://"):
        return S3Uploader.from_url(target, expires_s=expires_s)
    raise UploadError(f"--upload-to {target!r}: give an S3-compatible bucket as s3://bucket/prefix")


class S3Uploader:
    def __init__(self, bucket: str, prefix: str = "", *, expires_s: int = 86400, client=None):
        if not bucket:
            raise UploadError("--upload-to needs a bucket: s3://bucket/prefix")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.expires_s = expires_s
        self._client = client

    @classmethod
    def from_url(cls, url: str, **kwargs) -> "S3Uploader":
        parts = urlsplit(url)
        return cls(parts.netloc, parts.path, **kwargs)

    def check(self) -> None:
        if self._client is None and importlib.util.find_spec("boto3") is None:
            raise UploadError(f"--upload-to s3://{self.bucket}/{self.prefix} needs boto3: {S3_HINT}")

    @property
    def client(self):
        if self._client is None:
            self.check()
            import boto3
            from botocore.config import Config

            # SigV4 presigned URLs: what AWS requires in every region and S3-compatible stores accept
            self._client = boto3.client("s3", config=Config(signature_version="s3v4"))
        return self._client

    def key(self, path: Path, data: bytes | None = None) -> str:
        """The object's key: a hash of the file's bytes (``data``, when already read)."""
        digest = hashlib.sha256(Path(path).read_bytes() if data is None else data).hexdigest()[:32]
        name = f"{digest}{Path(path).suffix.lower()}"
        return f"{self.prefix}/{name}" if self.prefix else name

    def location(self, path: Path) -> str:
        return f"s3://{self.bucket}/{self.key(path)}"

    def upload(self, path: Path) -> str:
        data = Path(path).read_bytes()
        key = self.key(path, data)
        content_type = mimetypes.guess_type(str(path))[0] or "application/octet-stream"
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)
            return self.client.generate_presigned_url("get_object", Params={"Bucket": self.bucket, "Key": key},
                                                      ExpiresIn=self.expires_s)
        except Exception as exc:  # botocore's errors: the message names the bucket, never the secret
            raise UploadError(f"uploading {Path(path).name} to s3://{self.bucket}/{key} failed: {type(exc).__name__}: {exc}") from None
