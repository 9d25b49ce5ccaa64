"""S3 for backup uploads and retention (PUT, LIST, DELETE, GET of objects), through boto3.

Why boto3 and not a hand-signed request: operators run backups with whatever credentials their platform
hands out — access keys in the environment, a profile, an EKS service account (IRSA: a web-identity token
file and a role), an EC2 or ECS role — and boto3's default credential chain knows all of them, refreshing
temporary ones as they expire. Archives can exceed S3's 5 GiB single-PUT limit: the transfer manager
uploads large files in parts. Transient failures (5xx, throttling, dropped connections) are retried with
backoff (botocore's `standard` mode). With ``endpoint`` it talks path-style to S3-compatible stores (MinIO,
Ceph). Nothing here prints a credential.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from actors.core.errors import ConfigError, WorkerSyncError
from config.exit_codes import Exit

#: Archives above this size go up in parts of this size (S3 allows parts of 5 MiB to 5 GiB, 10,000 parts).
MULTIPART_THRESHOLD_BYTES = 64 * 1024 * 1024
#: Tries per request, the first included, before an error is reported (botocore's `standard` retry mode).
ATTEMPTS = 5


class S3Error(WorkerSyncError):
    """S3 answered with an error (access denied, no such bucket, ...)."""


class S3Unreachable(S3Error):
    """The S3 endpoint cannot be reached."""

    exit_code = Exit.UNAVAILABLE


class S3Client:
    """One bucket, through a boto3 client built from the default credential chain."""

    def __init__(
        self,
        bucket: str,
        region: str,
        *,
        endpoint: str | None = None,
        multipart_threshold_bytes: int = MULTIPART_THRESHOLD_BYTES,
        attempts: int = ATTEMPTS,
        timeout_s: float = 60.0,
    ) -> None:
        import boto3
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config

        self.bucket = bucket
        self.region = region
        self.endpoint = endpoint
        config = Config(
            region_name=region,
            retries={"mode": "standard", "total_max_attempts": attempts},
            connect_timeout=min(timeout_s, 10.0),
            read_timeout=timeout_s,
            s3={"addressing_style": "path" if endpoint else "auto"},
            # S3-compatible stores may not know the aws-chunked checksum trailers botocore sends to AWS by
            # default: send a plain body with its length there (its SHA-256 is signed and kept as metadata).
            **({"request_checksum_calculation": "when_required"} if endpoint else {}),
        )
        self._client: Any = boto3.session.Session().client("s3", endpoint_url=endpoint, config=config)
        self._transfer = TransferConfig(
            multipart_threshold=multipart_threshold_bytes, multipart_chunksize=multipart_threshold_bytes
        )

    def put_file(self, key: str, path: Path, sha256: str) -> None:
        """Upload ``path`` (in parts above the threshold); its SHA-256 travels as object metadata."""
        with self._errors("PUT", key):
            self._client.upload_file(
                str(path), self.bucket, key, Config=self._transfer, ExtraArgs={"Metadata": {"sha256": sha256}}
            )

    def get(self, key: str) -> bytes:
        with self._errors("GET", key):
            body: bytes = self._client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            return body

    def delete(self, key: str) -> None:
        with self._errors("DELETE", key):
            self._client.delete_object(Bucket=self.bucket, Key=key)

    def list(self, prefix: str = "") -> Iterator[str]:
        """Every key under ``prefix`` (ListObjectsV2, page after page)."""
        with self._errors("LIST", prefix):
            pages = self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
            keys = [item["Key"] for page in pages for item in page.get("Contents", [])]
        yield from keys

    def _errors(self, method: str, key: str) -> _Translated:
        return _Translated(f"S3 {method} s3://{self.bucket}/{key}", self.endpoint or f"S3 in {self.region}")


class _Translated:
    """Turns boto3's and botocore's exceptions into S3Error / S3Unreachable / ConfigError, in one line each."""

    def __init__(self, what: str, where: str) -> None:
        self.what, self.where = what, where

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc is None:
            return
        from boto3.exceptions import S3UploadFailedError
        from botocore import exceptions as bc

        if isinstance(exc, bc.NoCredentialsError | bc.PartialCredentialsError):
            raise ConfigError(
                "environment",
                f"{self.what}: no AWS credentials found (looked for AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
                "AWS_PROFILE, a web-identity token (AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN, as IRSA sets), "
                "container and instance roles)",
            ) from None
        if isinstance(exc, bc.ClientError):
            error = exc.response.get("Error", {})
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "?")
            raise S3Error(f"{self.what}: HTTP {status} {error.get('Code', '')}: {error.get('Message', '')}") from None
        if isinstance(exc, S3UploadFailedError):  # the transfer manager wraps the ClientError's text
            raise S3Error(f"{self.what}: {exc}") from None
        if isinstance(exc, bc.EndpointConnectionError | bc.ConnectionError | bc.HTTPClientError):
            raise S3Unreachable(f"{self.what}: cannot reach {_host(self.where)}: {exc}") from None
        if isinstance(exc, bc.BotoCoreError):
            raise S3Error(f"{self.what}: {exc}") from None


def _host(where: str) -> str:
    """host:port of an endpoint URL (the region's S3 for AWS)."""
    return where.split("://", 1)[-1].rstrip("/")
