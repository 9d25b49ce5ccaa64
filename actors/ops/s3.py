"""A minimal S3 client (PUT, LIST, DELETE, GET of objects) signed with AWS Signature Version 4 over
urllib, for backup uploads and retention.

Why not boto3: three calls do not justify ~80 MiB of dependencies in the image. Works with AWS S3
(virtual-hosted URLs) and, with an endpoint override, with S3-compatible stores (MinIO, Ceph; path-
style URLs). Credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (AWS_SESSION_TOKEN when
set); nothing here prints them. Instance roles and web-identity tokens are not supported.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from actors.core.errors import ConfigError, WorkerSyncError
from config.exit_codes import Exit

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


class S3Error(WorkerSyncError):
    """S3 answered with an error (access denied, no such bucket, ...)."""


class S3Unreachable(S3Error):
    """The S3 endpoint cannot be reached."""

    exit_code = Exit.UNAVAILABLE


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls) -> Credentials:
        key, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
        if not key or not secret:
            raise ConfigError(
                "environment", "S3 upload needs `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` in the environment"
            )
        return cls(key, secret, os.environ.get("AWS_SESSION_TOKEN") or None)


def _quote(text: str, safe: str = "-_.~") -> str:
    return urllib.parse.quote(text, safe=safe)


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


@dataclass(frozen=True)
class S3Client:
    bucket: str
    region: str
    credentials: Credentials
    #: e.g. "http://127.0.0.1:9000" for MinIO; None means AWS S3 in ``region``.
    endpoint: str | None = None
    timeout_s: float = 60.0

    def _url(self, key: str = "", query: dict[str, str] | None = None) -> str:
        path_key = "/" + _quote(key, safe="-_.~/") if key else "/"
        if self.endpoint:
            base = self.endpoint.rstrip("/") + "/" + _quote(self.bucket)
            url = base + (path_key if key else "")
        elif "." in self.bucket:
            url = f"https://s3.{self.region}.amazonaws.com/{_quote(self.bucket)}" + (path_key if key else "")
        else:
            url = f"https://{self.bucket}.s3.{self.region}.amazonaws.com" + path_key
        if query:
            url += "?" + "&".join(f"{_quote(k)}={_quote(v)}" for k, v in sorted(query.items()))
        return url

    def _signed_headers(self, method: str, url: str, payload_sha256: str, now: dt.datetime) -> dict[str, str]:
        parts = urllib.parse.urlsplit(url)
        amz_date = now.strftime("%Y%m%dT%H%M%SZ")
        day = amz_date[:8]
        headers = {"host": parts.netloc, "x-amz-content-sha256": payload_sha256, "x-amz-date": amz_date}
        if self.credentials.session_token:
            headers["x-amz-security-token"] = self.credentials.session_token
        names = sorted(headers)
        query = "&".join(
            f"{_quote(k)}={_quote(v)}" for k, v in sorted(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
        )
        canonical = "\n".join(
            [
                method,
                parts.path or "/",
                query,
                "".join(f"{name}:{headers[name].strip()}\n" for name in names),
                ";".join(names),
                payload_sha256,
            ]
        )
        scope = f"{day}/{self.region}/s3/aws4_request"
        to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
        key = _hmac(("AWS4" + self.credentials.secret_key).encode(), day)
        for part in (self.region, "s3", "aws4_request"):
            key = _hmac(key, part)
        signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        headers["authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={self.credentials.access_key}/{scope}, "
            f"SignedHeaders={';'.join(names)}, Signature={signature}"
        )
        del headers["host"]  # urllib sends the same value from the URL
        return headers

    def request(
        self,
        method: str,
        key: str = "",
        *,
        query: dict[str, str] | None = None,
        body: bytes | BinaryIO | None = None,
        body_sha256: str = EMPTY_SHA256,
        length: int | None = None,
    ) -> bytes:
        """One signed request; the response body. Raises S3Error / S3Unreachable."""
        url = self._url(key, query)
        headers = self._signed_headers(method, url, body_sha256, dt.datetime.now(dt.UTC))
        if body is not None:
            if length is None:
                assert isinstance(body, bytes), "a file body comes with its length"
                length = len(body)
            headers["content-length"] = str(length)
            # urllib would send form-urlencoded, which S3-compatible servers may parse as a form.
            headers["content-type"] = "application/octet-stream"
        req = urllib.request.Request(url, data=body, method=method, headers=headers)
        what = f"S3 {method} s3://{self.bucket}/{key}"
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as response:
                return response.read()
        except urllib.error.HTTPError as exc:
            raise S3Error(f"{what}: HTTP {exc.code} {_error_text(exc.read())}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise S3Unreachable(f"{what}: cannot reach {urllib.parse.urlsplit(url).netloc}: {reason}") from None

    def put_file(self, key: str, path: Path, sha256: str) -> None:
        with open(path, "rb") as handle:
            self.request("PUT", key, body=handle, body_sha256=sha256, length=path.stat().st_size)

    def get(self, key: str) -> bytes:
        return self.request("GET", key)

    def delete(self, key: str) -> None:
        self.request("DELETE", key)

    def list(self, prefix: str = "") -> Iterator[str]:
        """Every key under ``prefix`` (ListObjectsV2, following continuation tokens)."""
        token: str | None = None
        while True:
            query = {"list-type": "2", "prefix": prefix}
            if token:
                query["continuation-token"] = token
            root = ET.fromstring(self.request("GET", query=query))
            for item in root.iter(f"{_NS}Contents"):
                key = item.findtext(f"{_NS}Key")
                if key is not None:
                    yield key
            if root.findtext(f"{_NS}IsTruncated") != "true":
                return
            token = root.findtext(f"{_NS}NextContinuationToken")
            if not token:
                return


def _error_text(body: bytes) -> str:
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return ""
    code, message = root.findtext("Code") or "", root.findtext("Message") or ""
    return f"{code}: {message}".strip(": ")
