"""Tampering with a real store through the admin connection, each way; the verifier names the first bad entry.

The admin disables the append-only triggers first (`ALTER TABLE ... DISABLE TRIGGER ALL`): that is the
attacker model, someone with full control of the database but without the signing key.
"""

from __future__ import annotations

import psycopg
import pytest
from nacl.signing import SigningKey

from actors.core.audit.checkpoint import Checkpoint
from actors.core.audit.entries import decode_entry, encode_entry, leaf_hash
from actors.core.audit.verify import Report, verify_log
from tests.audit.conftest import SCHEMA, SEED, Populated

PUBLIC = SigningKey(SEED).verify_key


def verify(p: Populated, external: Checkpoint | None = None) -> Report:
    return verify_log(p.store.read(), p.store.checkpoints(), PUBLIC, external)


def tamper(p: Populated, *statements: tuple[str, tuple[object, ...]]) -> None:
    with p.admin.transaction(), p.admin.cursor() as cur:
        for table in ("entries", "checkpoints"):
            cur.execute(f"ALTER TABLE {SCHEMA}.{table} DISABLE TRIGGER ALL")
        for statement, params in statements:
            cur.execute(statement, params)
        for table in ("entries", "checkpoints"):
            cur.execute(f"ALTER TABLE {SCHEMA}.{table} ENABLE TRIGGER ALL")


def test_intact_store_verifies(populated: Populated) -> None:
    report = verify(populated, Checkpoint.from_json(populated.exported.read_bytes()))
    assert report.ok, report.finding
    assert (report.entries, report.checkpoints, report.unsigned_tail) == (50, 5, 0)


def test_changed_value_is_named(populated: Populated) -> None:
    data = populated.entries[17].data.replace(b"a@example.com", b"b@example.com")
    tamper(populated, (f"UPDATE {SCHEMA}.entries SET data = %s WHERE seq = 17", (data,)))
    finding = verify(populated).finding
    assert finding is not None and finding.seq == 17 and "changed" in finding.problem


def test_changed_value_with_recomputed_hash_is_named(populated: Populated) -> None:
    data = populated.entries[17].data.replace(b"a@example.com", b"b@example.com")
    tamper(populated, (f"UPDATE {SCHEMA}.entries SET data = %s, leaf = %s WHERE seq = 17", (data, leaf_hash(data))))
    finding = verify(populated).finding
    assert finding is not None and finding.seq == 17 and "replaced" in finding.problem


def test_changed_indexed_column_is_named(populated: Populated) -> None:
    tamper(populated, (f"UPDATE {SCHEMA}.entries SET key = '{{\"id\":999}}' WHERE seq = 8", ()))
    finding = verify(populated).finding
    assert finding is not None and finding.seq == 8 and "indexed column" in finding.problem


def test_deleted_entry_is_named(populated: Populated) -> None:
    tamper(populated, (f"DELETE FROM {SCHEMA}.entries WHERE seq = 30", ()))
    finding = verify(populated).finding
    assert finding is not None and finding.seq == 30 and "missing" in finding.problem


def test_inserted_entry_is_named(populated: Populated) -> None:
    # The attacker shifts entries 20.. up by one and forges a well-chained entry 20 in the gap.
    forged = decode_entry(populated.entries[20].data)
    import msgspec

    forged_data = encode_entry(msgspec.structs.replace(forged, op="delete"))
    tamper(
        populated,
        (f"UPDATE {SCHEMA}.entries SET seq = seq + 1000000 WHERE seq >= 20", ()),
        (f"UPDATE {SCHEMA}.entries SET seq = seq - 999999 WHERE seq >= 1000000", ()),
        (
            f"INSERT INTO {SCHEMA}.entries SELECT 20, %s, %s, prev, kind, namespace, key, commit_time_us "
            f"FROM {SCHEMA}.entries WHERE seq = 21",
            (forged_data, leaf_hash(forged_data)),
        ),
    )
    finding = verify(populated).finding
    assert finding is not None and finding.seq == 20 and "inserted" in finding.problem


def test_swapped_entries_are_named(populated: Populated) -> None:
    tamper(
        populated,
        (f"UPDATE {SCHEMA}.entries SET seq = -1 WHERE seq = 12", ()),
        (f"UPDATE {SCHEMA}.entries SET seq = 12 WHERE seq = 13", ()),
        (f"UPDATE {SCHEMA}.entries SET seq = 13 WHERE seq = -1", ()),
    )
    finding = verify(populated).finding
    assert finding is not None and finding.seq == 12 and "swapped" in finding.problem


def test_truncated_tail_is_caught_against_the_exported_checkpoint(populated: Populated) -> None:
    tamper(
        populated,
        (f"DELETE FROM {SCHEMA}.entries WHERE seq >= 40", ()),
        (f"DELETE FROM {SCHEMA}.checkpoints WHERE size > 40", ()),
    )
    assert verify(populated).ok  # consistent in itself: only an outside checkpoint can tell
    finding = verify(populated, Checkpoint.from_json(populated.exported.read_bytes())).finding
    assert finding is not None and finding.seq == 40 and "truncated" in finding.problem


def test_replaced_checkpoint_signature_is_named(populated: Populated) -> None:
    other = populated.checkpoints[0].signature
    tamper(populated, (f"UPDATE {SCHEMA}.checkpoints SET signature = %s WHERE size = 20", (other,)))
    finding = verify(populated).finding
    assert finding is not None and "size 20: bad signature" in finding.problem


def test_checkpoint_signed_by_another_key_is_refused(populated: Populated) -> None:
    finding = verify_log(populated.store.read(), populated.store.checkpoints(), SigningKey.generate().verify_key)
    assert finding.finding is not None and "not among the given public keys" in finding.finding.problem


def test_service_role_cannot_update_delete_or_truncate(populated: Populated) -> None:
    for statement in (
        f"UPDATE {SCHEMA}.entries SET namespace = 'x' WHERE seq = 1",
        f"UPDATE {SCHEMA}.entries SET namespace = 'x'",
        f"DELETE FROM {SCHEMA}.entries WHERE seq = 1",
        f"TRUNCATE {SCHEMA}.entries",
        f"DELETE FROM {SCHEMA}.checkpoints",
        f"TRUNCATE {SCHEMA}.checkpoints",
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
            populated.service.execute(statement)


def test_even_the_owner_is_refused_while_the_triggers_stand(populated: Populated) -> None:
    for statement in (f"DELETE FROM {SCHEMA}.entries WHERE seq = 1", f"TRUNCATE {SCHEMA}.checkpoints"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            populated.admin.execute(statement)
    assert verify(populated).ok


def test_a_restarted_log_continues_the_chain(populated: Populated) -> None:
    from actors.core.audit.entries import change_entry
    from actors.core.audit.log import AuditLog
    from tests.audit.conftest import event

    frontier, last_leaf = populated.store.resume()
    assert frontier.size == 50 and last_leaf == populated.entries[-1].leaf
    log = AuditLog(SigningKey(SEED), every_entries=7, every_ms=10**9, frontier=frontier, last_leaf=last_leaf)
    stored, checkpoints = log.add(change_entry(event(i)) for i in range(50, 64))
    assert [cp.size for cp in checkpoints] == [57, 64]
    populated.store.append(stored, checkpoints)
    report = verify(populated, Checkpoint.from_json(populated.exported.read_bytes()))
    assert report.ok and report.entries == 64 and report.checkpoints == 7
