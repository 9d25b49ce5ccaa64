"""Key rotation: a rotation entry sealed by the old key, later checkpoints by the new one; verify with a key ring."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest
from nacl.signing import SigningKey

from actors.audit_chain import AuditWriter
from actors.core.audit.checkpoint import key_id, key_ring, sign
from actors.core.audit.entries import AdminKind, admin_entry, change_entry
from actors.core.audit.log import AuditLog
from actors.core.audit.verify import verify_log
from actors.core.batches import Batch
from actors.core.encoding import encode_batch
from actors.core.errors import ConfigError
from actors.harness import Endpoint
from config import load_config, nodes_by_name
from tests.audit.conftest import SEED, event
from tests.audit.test_cli import ADMIN_PASSWORD_ENV, cli, write_config

OLD = SigningKey(SEED)
NEW = SigningKey(bytes(range(100, 132)))
OTHER = SigningKey(bytes(range(200, 232)))


def rotated_log(n_before: int = 25, n_after: int = 25):
    """Entries 0..n_before-1 under OLD, the rotation entry, then n_after entries under NEW (checkpoints every 10,
    and one of each batch's head)."""
    clock = iter(range(1, 10**9))
    log = AuditLog(OLD, every_entries=10, clock_us=lambda: next(clock))
    rows, cps = log.add(change_entry(event(i)) for i in range(n_before))
    detail: dict[str, object] = {"old_key_id": key_id(bytes(OLD.verify_key)).hex()}
    detail["new_key_id"] = key_id(bytes(NEW.verify_key)).hex()
    rotation = admin_entry(AdminKind.KEY_ROTATION, request_id="r1", actor="test", time_us=1, detail=detail)
    more, sealed = log.add([rotation])
    log.use_key(NEW)
    tail, late = log.add(change_entry(event(i)) for i in range(n_before, n_before + n_after))
    return rows + more + tail, cps + sealed + late


def test_rotation_in_the_middle_verifies_with_both_keys() -> None:
    rows, cps = rotated_log()
    signed = [(cp.size, cp.key_id == key_id(bytes(OLD.verify_key))) for cp in cps]
    assert signed[2:5] == [(25, True), (26, True), (36, False)]
    report = verify_log(rows, cps, key_ring([OLD.verify_key, NEW.verify_key]))
    assert report.ok and report.entries == 51, report.finding


@pytest.mark.parametrize("listed", [OLD, NEW])
def test_a_key_missing_from_the_ring_is_named(listed: SigningKey) -> None:
    rows, cps = rotated_log()
    missing = NEW if listed is OLD else OLD
    finding = verify_log(rows, cps, key_ring([listed.verify_key])).finding
    assert finding is not None and key_id(bytes(missing.verify_key)).hex() in finding.problem
    assert "not among the given public keys" in finding.problem


def test_a_checkpoint_by_an_unknown_key_is_named_even_if_its_root_is_right() -> None:
    rows, cps = rotated_log()
    forged = [sign(OTHER, cp.size, cp.root, cp.time_us) if cp.size == 46 else cp for cp in cps]
    finding = verify_log(rows, forged, key_ring([OLD.verify_key, NEW.verify_key])).finding
    assert finding is not None and finding.seq == 45 and key_id(bytes(OTHER.verify_key)).hex() in finding.problem
    # Listed but never handed over to by a rotation entry: refused all the same.
    finding = verify_log(rows, forged, key_ring([OLD.verify_key, NEW.verify_key, OTHER.verify_key])).finding
    assert finding is not None and "in force" in finding.problem


def test_the_old_key_signing_after_the_rotation_is_refused() -> None:
    rows, cps = rotated_log()
    stale = [sign(OLD, cp.size, cp.root, cp.time_us) if cp.size == 46 else cp for cp in cps]
    finding = verify_log(rows, stale, key_ring([OLD.verify_key, NEW.verify_key])).finding
    assert finding is not None and "in force" in finding.problem and finding.seq == 45


def _batch(seq: int, lo: int, hi: int) -> list[bytes]:
    events = [msgspec.structs.replace(event(i), node="pg1") for i in range(lo, hi)]
    return [encode_batch(Batch("pg1", seq, events, None, False, 0))]


def test_rotate_key_command_in_the_middle_of_a_real_log(
    fresh_pg_db: Endpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config_path = write_config(tmp_path, fresh_pg_db, monkeypatch)
    init = ("init", "--config", config_path, "--admin-user", fresh_pg_db.admin.user)
    assert cli(capsys, *init, "--admin-password-env", ADMIN_PASSWORD_ENV)[0] == 0
    config = load_config(config_path)
    node = nodes_by_name(config)["postgresql"]
    writer = AuditWriter(config.audit, node, ["pg1"])
    writer.append(_batch(1, 0, 30))
    writer.close()

    new_key, ring = tmp_path / "new.key", tmp_path / "keys.ring"
    rotate = ("audit", "rotate-key", "--config", config_path, "--new-key", str(new_key), "--key-ring", str(ring))
    code, out, err = cli(capsys, *rotate, "--json")
    assert code == 0, err
    result = json.loads(out)
    secret = new_key.read_text().strip()
    assert secret not in out + err and SEED.hex() not in out + err
    assert result["rotation_entry"] == 30 and result["new_key_id"] == key_id(bytes.fromhex(_pub(new_key))).hex()

    # The old key configured after the rotation is refused, rather than signing checkpoints verify would reject.
    stale = AuditWriter(config.audit, node, ["pg1"])
    with pytest.raises(ConfigError, match="not the key in force"):
        stale.append([])
    stale.close()
    Path(config.audit.signing_key_file).write_text(secret)  # the operator installs the new key
    writer = AuditWriter(config.audit, node, ["pg1"])
    assert writer.append(_batch(2, 30, 60)).size == 61
    writer.close()
    code, out, _ = cli(capsys, *rotate)  # run again: already done, nothing appended
    assert code == 0 and "already rotated" in out

    old_pub = tmp_path / "old.pub"
    old_pub.write_text(bytes(OLD.verify_key).hex())
    verify = ("audit", "verify", "--config", config_path)
    code, out, err = cli(capsys, *verify, "--public-key", str(old_pub), "--public-key", f"{new_key}.pub")
    assert code == 0 and "61 entries" in out, err
    assert cli(capsys, *verify, "--key-ring", str(ring))[0] == 0
    code, _, err = cli(capsys, *verify, "--public-key", str(old_pub))
    assert code == 1 and result["new_key_id"] in err and "not among the given public keys" in err

    code, out, _ = cli(capsys, "audit", "logs", "--config", config_path, "--table", "admin.key-rotation", "--json")
    (line,) = out.splitlines()
    assert json.loads(line)["detail"] == {"old_key_id": result["old_key_id"], "new_key_id": result["new_key_id"]}


def _pub(key_file: Path) -> str:
    return Path(f"{key_file}.pub").read_text().strip()
