"""S3 through boto3 (actors/ops/s3.py) against moto's server, which checks SigV4 signatures and IAM policies:
an archive above the threshold goes up in parts, credentials come from a web-identity token as IRSA hands
them out (no access key in the environment), and a 503 answer is retried instead of failing the backup."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from actors.ops.s3 import S3Client, S3Error
from tests.cli.test_backup import BUCKET, s3_server  # noqa: F401 - the fixture

MiB = 1024 * 1024
CREDENTIAL_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE")


@pytest.fixture
def keys_in_env(s3_server, monkeypatch: pytest.MonkeyPatch) -> str:  # noqa: F811
    endpoint, creds = s3_server
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", creds["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", creds["aws_secret_access_key"])
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)  # this machine's own profiles play no part
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    return endpoint


def test_a_large_archive_goes_up_in_parts(keys_in_env: str, tmp_path: Path) -> None:
    import boto3

    archive = tmp_path / "backup_20300101_000000.tar.gz"
    archive.write_bytes(os.urandom(11 * MiB))
    sha256 = hashlib.sha256(archive.read_bytes()).hexdigest()
    client = S3Client(BUCKET, "us-east-1", endpoint=keys_in_env, multipart_threshold_bytes=5 * MiB)
    client.put_file("ws/big.tar.gz", archive, sha256)
    oracle = boto3.client("s3", endpoint_url=keys_in_env, region_name="us-east-1")
    head = oracle.head_object(Bucket=BUCKET, Key="ws/big.tar.gz")
    assert head["ETag"].strip('"').endswith("-3"), head["ETag"]  # S3's ETag of a 3-part upload
    assert head["Metadata"] == {"sha256": sha256}
    assert client.get("ws/big.tar.gz") == archive.read_bytes()
    assert list(client.list("ws/")) == ["ws/big.tar.gz"]
    client.delete("ws/big.tar.gz")
    assert list(client.list("ws/")) == []


def test_credentials_from_a_web_identity_token_as_irsa_sets_them(
    s3_server,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No access key anywhere: AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE (what EKS injects for a service
    account), exchanged at STS (moto's) for temporary credentials of a role allowed to use S3."""
    import boto3

    endpoint, creds = s3_server
    iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1", **creds)
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRoleWithWebIdentity"}]}
    role = iam.create_role(RoleName="backup-irsa", AssumeRolePolicyDocument=json.dumps(trust))["Role"]
    allow = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
    iam.put_role_policy(RoleName="backup-irsa", PolicyName="s3", PolicyDocument=json.dumps(allow))
    token = tmp_path / "token"
    token.write_text("eyJhbGciOiJSUzI1NiJ9.e30.c2lnbmF0dXJl")  # moto does not check the JWT
    for name in CREDENTIAL_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # never wait for an instance role here
    monkeypatch.setenv("AWS_ROLE_ARN", role["Arn"])
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(token))
    monkeypatch.setenv("AWS_ROLE_SESSION_NAME", "worker-sync-backup")
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", endpoint)
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(b"archive")
    # moto's server wants every call signed once set up, AssumeRoleWithWebIdentity too, which never is (the
    # token is the proof): let exactly the next call, the exchange, through. The S3 calls after it are
    # checked: signed with the role's temporary keys, allowed by the role's policy.
    from moto import settings
    from moto.core.responses import ActionAuthenticatorMixin

    monkeypatch.setattr(settings, "INITIAL_NO_AUTH_ACTION_COUNT", ActionAuthenticatorMixin.request_count + 1)
    client = S3Client(BUCKET, "us-east-1", endpoint=endpoint)
    client.put_file("irsa/a.tar.gz", archive, hashlib.sha256(b"archive").hexdigest())
    assert client.get("irsa/a.tar.gz") == b"archive"
    assert ActionAuthenticatorMixin.request_count == settings.INITIAL_NO_AUTH_ACTION_COUNT, "one unsigned call"


class FlakyProxy:
    """Forwards to the S3 endpoint, but answers the first ``failures`` PUTs with 503 SlowDown (as S3 does
    under load). The Host header is passed on as the client signed it."""

    def __init__(self, upstream: str, failures: int) -> None:
        self.upstream, self.failures, self.puts = upstream, failures, 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.command == "PUT":
                    outer.puts += 1
                    if outer.puts <= outer.failures:
                        error = (
                            b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
                        )
                        self.send_response(503)
                        self.send_header("Content-Length", str(len(error)))
                        self.end_headers()
                        self.wfile.write(error)
                        return
                headers = {k: v for k, v in self.headers.items() if k.lower() != "expect"}  # the body is here
                headers.setdefault("Content-Type", "application/octet-stream")  # urllib would say: a form
                request = urllib.request.Request(
                    outer.upstream + self.path, data=body or None, method=self.command, headers=headers
                )
                try:
                    with urllib.request.urlopen(request, timeout=30) as response:
                        status, headers, payload = response.status, response.headers, response.read()
                except urllib.error.HTTPError as exc:
                    status, headers, payload = exc.code, exc.headers, exc.read()
                self.send_response(status)
                for name, value in headers.items():
                    if name.lower() not in ("content-length", "transfer-encoding", "connection", "server", "date"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FlakyProxy:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_503_is_retried_and_persistent_ones_fail_with_the_reason(keys_in_env: str, tmp_path: Path) -> None:
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(b"archive")
    sha256 = hashlib.sha256(b"archive").hexdigest()
    with FlakyProxy(keys_in_env, failures=2) as proxy:
        S3Client(BUCKET, "us-east-1", endpoint=proxy.url).put_file("retry/a.tar.gz", archive, sha256)
        assert proxy.puts == 3, "two 503 answers, then the upload"
    assert S3Client(BUCKET, "us-east-1", endpoint=keys_in_env).get("retry/a.tar.gz") == b"archive"
    with FlakyProxy(keys_in_env, failures=100) as proxy:
        client = S3Client(BUCKET, "us-east-1", endpoint=proxy.url, attempts=3)
        with pytest.raises(S3Error, match="SlowDown"):
            client.put_file("retry/b.tar.gz", archive, sha256)
        assert proxy.puts == 3, "3 tries, then the error"
