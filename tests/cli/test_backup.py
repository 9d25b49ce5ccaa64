"""`worker-sync backup` and `worker-sync restore` against a real PostgreSQL audit store: the archive,
restore into a fresh database that `audit verify` accepts, refusals, retention and dumps."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from actors.cli import main
from actors.core.audit.log import StoredEntry
from actors.core.events import Position
from actors.core.offsets import FileOffsetStore
from actors.engines.postgresql.audit_store import AuditStore, create_schema
from actors.harness import Endpoint
from tests.audit.conftest import SCHEMA, SEED, build_log

PASSWORD_ENV = "BACKUP_TEST_PG_PASSWORD"


def write_config(tmp_path: Path, db: Endpoint, name: str, *, port: int | None = None) -> Path:
    """A config whose audit node is ``db`` (as the apply user, which the store grants INSERT/SELECT)."""
    key = tmp_path / "signing.key"
    key.write_text(SEED.hex())
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        f"""databases:
  postgresql:
    host: {db.host}
    port: {port or db.port}
    database: {db.database}
    username: {db.apply.user}
    password_env: {PASSWORD_ENV}
    tls: {{mode: disable}}
audit:
  schema: {SCHEMA}
  signing_key_file: {key}
supervisor:
  state_dir: {tmp_path / f"state-{name}"}
"""
    )
    return path


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def source(fresh_pg_db: Endpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A populated audit store (50 entries, 5 checkpoints), a committed position and a user table."""
    monkeypatch.setenv(PASSWORD_ENV, fresh_pg_db.apply.password)
    with fresh_pg_db.connect("admin") as admin:
        create_schema(admin, SCHEMA, fresh_pg_db.apply.user)
        admin.execute("CREATE TABLE public.orders (id int PRIMARY KEY, note text)")
        admin.execute("INSERT INTO public.orders VALUES (1, 'dumped-row-4711')")
    entries, checkpoints = build_log(50)
    with fresh_pg_db.connect("apply") as conn:
        AuditStore(conn, SCHEMA).append(entries, checkpoints)
    config = write_config(tmp_path, fresh_pg_db, "source")
    FileOffsetStore(tmp_path / "state-source").save("postgresql", Position(b"\x00\x01", "0/16B3748"))
    return config


@pytest.fixture
def fresh_target(pg_server: Endpoint, tmp_path: Path):
    name = f"t_restore_{os.urandom(4).hex()}"
    db = pg_server.create_database(name)
    with db.connect("admin") as admin:
        create_schema(admin, SCHEMA, db.apply.user)  # what `worker-sync init` does
    yield db
    pg_server.drop_database(name)


def make_backup(capsys, config: Path, out: Path, *extra: str) -> tuple[Path, dict]:
    code, stdout, err = cli(capsys, "backup", "--config", str(config), "--output-dir", str(out), "--json", *extra)
    assert code == 0, err
    summary = json.loads(stdout)
    return Path(summary["archive"]), summary


def test_backup_then_restore_into_a_fresh_database_passes_audit_verify(
    source: Path, fresh_target: Endpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    archive, summary = make_backup(capsys, source, tmp_path / "out", "--retention-days", "30")
    assert re.fullmatch(r"backup_\d{8}_\d{6}\.tar\.gz", archive.name)
    assert (summary["audit_entries"], summary["audit_checkpoints"], summary["positions"]) == (50, 5, 1)
    assert sorted(p.name for p in archive.parent.iterdir()) == [archive.name]  # no temp file or staging left
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        manifest = json.loads(tar.extractfile("manifest.json").read())
    assert names[0] == "manifest.json"
    assert set(manifest["files"]) == {
        "config.yaml",
        "audit/entries.jsonl",
        "audit/checkpoints.jsonl",
        "audit/prunes.json",
        "positions/postgresql.offset",
    }
    assert manifest["audit"]["last_checkpoint_size"] == 50 and len(manifest["config_sha256"]) == 64

    target = write_config(tmp_path, fresh_target, "target")
    code, _, err = cli(capsys, "restore", "--config", str(target), str(archive), "--dry-run")
    assert code == 0 and "dry run" in err, err
    assert not (tmp_path / "state-target").exists()
    code, out, err = cli(capsys, "restore", "--config", str(target), str(archive), "--json")
    assert code == 0, err
    assert json.loads(out)["audit_entries"] == 50
    code, out, err = cli(capsys, "audit", "verify", "--config", str(target))
    assert code == 0 and "50 entries" in out and "5 signed checkpoints" in out, err
    restored = FileOffsetStore(tmp_path / "state-target").load("postgresql")
    assert restored == Position(b"\x00\x01", "0/16B3748")

    code, _, err = cli(capsys, "restore", "--config", str(target), str(archive))
    assert code == 1 and "not empty" in err


def _rewrite(archive: Path, out: Path, change) -> Path:
    """Copy ``archive`` to ``out`` with ``change(name, data) -> data`` applied to every member."""
    with tarfile.open(archive) as src, tarfile.open(out, "w:gz") as dst:
        for member in src.getmembers():
            data = change(member.name, src.extractfile(member).read())
            info = tarfile.TarInfo(member.name)
            info.size = len(data)
            dst.addfile(info, io.BytesIO(data))
    return out


def test_a_corrupted_archive_is_refused_naming_the_bad_file(
    source: Path, fresh_target: Endpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    archive, _ = make_backup(capsys, source, tmp_path / "out")
    target = write_config(tmp_path, fresh_target, "target")

    def flip_entry(name: str, data: bytes) -> bytes:
        """Entry 7 with one byte of its content changed, still well-formed."""
        if name != "audit/entries.jsonl":
            return data
        lines = data.splitlines()
        entry = msgspec.json.decode(lines[7], type=StoredEntry)
        lines[7] = msgspec.json.encode(msgspec.structs.replace(entry, data=entry.data[:-1] + b"\x00"))
        return b"\n".join(lines) + b"\n"

    bad = _rewrite(archive, tmp_path / "bad.tar.gz", flip_entry)
    code, _, err = cli(capsys, "restore", "--config", str(target), str(bad))
    assert code == 1 and "`audit/entries.jsonl` does not match its SHA-256" in err, err

    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    code, _, err = cli(capsys, "restore", "--config", str(target), str(truncated))
    assert code == 1 and "damaged" in err, err

    # An attacker who also rewrites the manifest's hash is caught by the audit log's own chain.
    def forge(name: str, data: bytes) -> bytes:
        if name == "audit/entries.jsonl":
            return flip_entry(name, data)
        if name == "manifest.json":
            manifest = json.loads(data)
            forged = flip_entry("audit/entries.jsonl", entries_bytes)
            manifest["files"]["audit/entries.jsonl"] = {
                "sha256": hashlib.sha256(forged).hexdigest(),
                "bytes": len(forged),
            }
            return json.dumps(manifest).encode()
        return data

    with tarfile.open(archive) as tar:
        entries_bytes = tar.extractfile("audit/entries.jsonl").read()
    forged = _rewrite(archive, tmp_path / "forged.tar.gz", forge)
    code, _, err = cli(capsys, "restore", "--config", str(target), str(forged))
    assert code == 1 and "first bad entry 7" in err, err
    with fresh_target.connect("apply") as conn:  # nothing was loaded by any refused restore
        assert list(AuditStore(conn, SCHEMA).read()) == []


def test_retention_removes_only_old_archives_and_a_failed_backup_leaves_nothing(
    source: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    for name in ("backup_20000101_020000.tar.gz", "backup_20991231_020000.tar.gz", "notes.txt", "backup_x.tar.gz"):
        (out / name).write_bytes(b"x")
    archive, summary = make_backup(capsys, source, out, "--retention-days", "30")
    assert summary["removed"] == [str(out / "backup_20000101_020000.tar.gz")]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [archive.name, "backup_20991231_020000.tar.gz", "notes.txt", "backup_x.tar.gz"]
    )

    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))  # no pg_dump to be found
    before = sorted(p.name for p in out.iterdir())
    code, _, err = cli(capsys, "backup", "--config", str(source), "--output-dir", str(out), "--databases")
    assert code == 1 and "`pg_dump` is not on PATH" in err, err
    assert sorted(p.name for p in out.iterdir()) == before  # no half archive, no staging directory


def test_databases_are_dumped_with_pg_dump(source: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    archive, summary = make_backup(capsys, source, tmp_path / "out", "--databases")
    assert summary["databases"] == ["postgresql"]
    with tarfile.open(archive) as tar:
        dump = tar.extractfile("databases/postgresql.sql").read().decode()
    assert "dumped-row-4711" in dump and "CREATE TABLE public.orders" in dump


def test_bad_usage_is_2_and_an_unreachable_audit_database_is_3(
    source: Path, fresh_pg_db: Endpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = cli(capsys, "backup", "--config", str(tmp_path / "nope.yaml"), "--output-dir", str(tmp_path))
    assert code == 2, err
    code, _, err = cli(
        capsys, "backup", "--config", str(source), "--output-dir", str(tmp_path / "o"), "--s3-bucket", "b"
    )
    assert code == 2 and "region" in err
    down = write_config(tmp_path, fresh_pg_db, "down", port=1)
    code, _, err = cli(capsys, "backup", "--config", str(down), "--output-dir", str(tmp_path / "o"))
    assert code == 3 and "cannot connect" in err and "Traceback" not in err
    assert fresh_pg_db.apply.password not in err
    code, _, err = cli(capsys, "restore", "--config", str(source), str(tmp_path / "missing.tar.gz"))
    assert code == 2 and "no such archive" in err


@pytest.fixture
def s3_server() -> Iterator[tuple[str, dict[str, str]]]:
    """A local S3-compatible HTTP endpoint (moto's server) that checks SigV4 signatures: an IAM user with
    an access key is created during the first unauthenticated calls, every later call must be signed."""
    pytest.importorskip("moto.server", reason="moto[server] (dev extra) runs the local S3 endpoint")
    import boto3
    from moto import settings
    from moto.core.responses import ActionAuthenticatorMixin
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    # moto keeps its accounts in the process, across servers: start each test from none.
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=30).close()
    before = settings.INITIAL_NO_AUTH_ACTION_COUNT
    settings.INITIAL_NO_AUTH_ACTION_COUNT = 3
    ActionAuthenticatorMixin.request_count = 0
    try:
        setup = {"aws_access_key_id": "setup", "aws_secret_access_key": "setup"}
        iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1", **setup)
        iam.create_user(UserName="backup")
        key = iam.create_access_key(UserName="backup")["AccessKey"]
        # iam: for tests that set up a role to assume (tests/cli/test_backup_s3.py).
        allow = {"Effect": "Allow", "Action": ["s3:*", "iam:*"], "Resource": "*"}
        policy = {"Version": "2012-10-17", "Statement": [allow]}
        iam.put_user_policy(UserName="backup", PolicyName="s3", PolicyDocument=json.dumps(policy))
        creds = {"aws_access_key_id": key["AccessKeyId"], "aws_secret_access_key": key["SecretAccessKey"]}
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **creds).create_bucket(Bucket=BUCKET)
        yield endpoint, creds
    finally:
        settings.INITIAL_NO_AUTH_ACTION_COUNT = before
        server.stop()


BUCKET = "worker-sync-backups"


def test_backup_uploads_to_s3_and_applies_retention_there(
    source: Path,
    s3_server: tuple[str, dict[str, str]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import boto3

    endpoint, creds = s3_server
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-west-2", **creds)  # the test's own oracle
    for key in ("ws/backup_20000101_020000.tar.gz", "ws/notes.txt", "other/backup_20000101_020000.tar.gz"):
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"old")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", creds["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", creds["aws_secret_access_key"])
    monkeypatch.setenv("AWS_REGION", "us-west-2")
    s3_args = ("--s3-bucket", BUCKET, "--s3-prefix", "ws/", "--s3-endpoint", endpoint)
    archive, summary = make_backup(capsys, source, tmp_path / "out", "--retention-days", "30", *s3_args)
    assert summary["s3"] == f"s3://{BUCKET}/ws/{archive.name}"
    body = s3.get_object(Bucket=BUCKET, Key=f"ws/{archive.name}")["Body"].read()
    assert body == archive.read_bytes()
    keys = sorted(item["Key"] for item in s3.list_objects_v2(Bucket=BUCKET)["Contents"])
    assert keys == sorted([f"ws/{archive.name}", "ws/notes.txt", "other/backup_20000101_020000.tar.gz"])
    assert f"s3://{BUCKET}/ws/backup_20000101_020000.tar.gz" in summary["removed"]

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret-0815")
    code, out, err = cli(capsys, "backup", "--config", str(source), "--output-dir", str(tmp_path / "o2"), *s3_args)
    assert code == 1 and "SignatureDoesNotMatch" in err, err
    assert "not-the-secret-0815" not in out + err and creds["aws_secret_access_key"] not in out + err
    s3_down = ("--s3-bucket", BUCKET, "--s3-endpoint", "http://127.0.0.1:1")
    code, _, err = cli(capsys, "backup", "--config", str(source), "--output-dir", str(tmp_path / "o3"), *s3_down)
    assert code == 3 and "cannot reach 127.0.0.1:1" in err, err
