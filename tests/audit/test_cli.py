"""`worker-sync init` and `worker-sync audit ...` against a real PostgreSQL: output and exit codes."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from actors.cli import main
from actors.harness import Endpoint
from tests.audit.conftest import SCHEMA, SEED, Populated

PASSWORD_ENV = "AUDIT_TEST_PG_PASSWORD"
ADMIN_PASSWORD_ENV = "AUDIT_TEST_PG_ADMIN_PASSWORD"


def write_config(tmp_path: Path, db: Endpoint, monkeypatch: pytest.MonkeyPatch, *, port: int | None = None) -> str:
    monkeypatch.setenv(PASSWORD_ENV, db.apply.password)
    monkeypatch.setenv(ADMIN_PASSWORD_ENV, db.admin.password)
    key = tmp_path / "signing.key"
    key.write_text(SEED.hex())
    config = tmp_path / "worker-sync.yaml"
    config.write_text(
        f"""databases:
  postgresql:
    host: {db.host}
    port: {port or db.port}
    database: {db.database}
    username: {db.apply.user}
    password_env: {PASSWORD_ENV}
    tls: {{mode: disable}}
audit:
  node: postgresql
  schema: {SCHEMA}
  signing_key_file: {key}
"""
    )
    return str(config)


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_keygen_writes_a_private_key_file_and_prints_only_the_public_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_file = tmp_path / "audit.key"
    code, out, _ = cli(capsys, "audit", "keygen", "--out", str(out_file))
    assert code == 0
    secret = out_file.read_text().strip()
    assert len(secret) == 64 and secret not in out
    assert stat.S_IMODE(os.stat(out_file).st_mode) == 0o600
    assert (tmp_path / "audit.key.pub").read_text().strip() in out and "key id:" in out
    assert cli(capsys, "audit", "keygen", "--out", str(out_file))[0] == 2  # never overwrites


def test_init_then_verify_prove_logs(
    fresh_pg_db: Endpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, fresh_pg_db, monkeypatch)
    init = ("init", "--config", config, "--admin-user", fresh_pg_db.admin.user)
    for _ in range(2):  # idempotent
        code, out, err = cli(capsys, *init, "--admin-password-env", ADMIN_PASSWORD_ENV)
        assert code == 0, err
    from actors.engines.postgresql.audit_store import AuditStore
    from tests.audit.conftest import build_log

    entries, checkpoints = build_log(30)
    with fresh_pg_db.connect("apply") as conn:
        AuditStore(conn, SCHEMA).append(entries, checkpoints)
    code, out, err = cli(capsys, "audit", "verify", "--config", config)
    assert code == 0 and "30 entries, 3 signed checkpoints" in out, err

    code, out, _ = cli(capsys, "audit", "prove", "--config", config, "13")
    assert code == 0
    proof = tmp_path / "proof.json"
    proof.write_text(out)
    public = tmp_path / "pub.key"
    public.write_text(json.loads(out)["checkpoint"]["key_id"] and _public_hex())
    assert cli(capsys, "audit", "verify-proof", str(proof), "--public-key", str(public))[0] == 0
    document = json.loads(out)
    document["entry"] = bytes.fromhex(entries[14].data.hex()).hex()
    proof.write_text(json.dumps(document))
    code, _, err = cli(capsys, "audit", "verify-proof", str(proof), "--public-key", str(public))
    assert code == 1 and "INVALID" in err
    assert cli(capsys, "audit", "prove", "--config", config, "30")[0] == 1  # not covered by a checkpoint

    code, out, _ = cli(capsys, "audit", "logs", "--config", config, "--table", "public.orders", "--key", "7", "--json")
    assert code == 0 and [json.loads(line)["seq"] for line in out.splitlines()] == [7]
    code, out, _ = cli(capsys, "audit", "logs", "--config", config, "--since", "2023-11-14T22:13:45", "--json")
    assert code == 0 and json.loads(out.splitlines()[0])["seq"] == 25
    code, out, _ = cli(capsys, "audit", "logs", "--config", config, "--key", '{"id":3}')
    assert code == 0 and len(out.splitlines()) == 1 and "txid=1000" in out


def _public_hex() -> str:
    from nacl.signing import SigningKey

    return bytes(SigningKey(SEED).verify_key).hex()


def test_verify_exit_1_names_the_first_bad_entry(
    populated: Populated, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, populated.db, monkeypatch)
    public = tmp_path / "pub.key"
    public.write_text(_public_hex())
    verify = (
        "audit",
        "verify",
        "--config",
        config,
        "--public-key",
        str(public),
        "--checkpoint",
        str(populated.exported),
    )
    assert cli(capsys, *verify)[0] == 0
    with populated.admin.transaction():
        populated.admin.execute(f"ALTER TABLE {SCHEMA}.entries DISABLE TRIGGER ALL")
        populated.admin.execute(f"DELETE FROM {SCHEMA}.entries WHERE seq >= 44")
    code, _, err = cli(capsys, *verify)
    assert code == 1 and "first bad entry 44" in err and "truncated" in err and "Traceback" not in err
    code, out, _ = cli(capsys, *verify, "--json")
    assert code == 1 and json.loads(out.splitlines()[0])["first_bad_entry"] == 44


def test_bad_config_is_2_and_unreachable_database_is_3(
    fresh_pg_db: Endpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = cli(capsys, "audit", "verify", "--config", str(tmp_path / "absent.yaml"))
    assert code == 2 and "Traceback" not in err
    config = write_config(tmp_path, fresh_pg_db, monkeypatch)
    code, _, err = cli(capsys, "audit", "verify", "--config", config)
    assert code == 2 and "worker-sync init" in err  # no audit store yet
    config = write_config(tmp_path, fresh_pg_db, monkeypatch, port=1)
    code, _, err = cli(capsys, "audit", "verify", "--config", config)
    assert code == 3 and "cannot connect" in err
    code, _, err = cli(capsys, "init", "--config", config)
    assert code == 3
    with pytest.raises(SystemExit) as info:
        main(["audit", "verify"])  # --config missing
    assert info.value.code == 2
    assert cli(capsys, "audit")[0] == 2


@pytest.mark.parametrize(
    "argv",
    [["init"], ["audit"], *[["audit", c] for c in ("keygen", "rotate-key", "verify", "prove", "verify-proof", "logs")]],
)
def test_help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([*argv, "--help"])
    assert info.value.code == 0 and "usage:" in capsys.readouterr().out
