"""Tampering with a real store through the admin connection, each way: plain `audit verify --config` (which
reads the configured export directory) exits 1 and names the first bad entry.

The admin disables the append-only triggers first (`ALTER TABLE ... DISABLE TRIGGER ALL`): that is the
attacker model, someone with full control of the database but without the signing key or the export
directory.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import psycopg
import pytest
from nacl.signing import SigningKey

from actors.audit_chain import AuditWriter
from actors.cli import main
from actors.core.audit.entries import decode_entry, encode_entry, leaf_hash
from actors.core.audit.verify import verify_log
from actors.core.errors import ForeignEntries
from config import load_config
from config.loader import nodes_by_name
from config.model import PostgresNode
from tests.audit.conftest import SCHEMA, SEED, Populated
from tests.audit.test_cli import write_config

PUBLIC = SigningKey(SEED).verify_key


@pytest.fixture
def config(populated: Populated, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The store's config, with the export directory the writer kept."""
    path = write_config(tmp_path, populated.db, monkeypatch)
    with open(path, "a") as handle:
        handle.write(f"  checkpoint_export_dir: {populated.export_dir}\n")
    return path


def verify(config: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["audit", "verify", "--config", config])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out + err


def tampered(config: str, capsys: pytest.CaptureFixture[str], first_bad: int, *words: str) -> None:
    code, output = verify(config, capsys)
    assert code == 1, output
    assert f"first bad entry {first_bad}:" in output, output
    for word in words:
        assert word in output, output


def tamper(p: Populated, *statements: tuple[str, tuple[object, ...]]) -> None:
    with p.admin.transaction(), p.admin.cursor() as cur:
        for table in ("entries", "checkpoints"):
            cur.execute(f"ALTER TABLE {SCHEMA}.{table} DISABLE TRIGGER ALL")
        for statement, params in statements:
            cur.execute(statement, params)
        for table in ("entries", "checkpoints"):
            cur.execute(f"ALTER TABLE {SCHEMA}.{table} ENABLE TRIGGER ALL")


def rechained(p: Populated, start: int, first: bytes) -> list[tuple[str, tuple[object, ...]]]:
    """Statements that store ``first`` as entry ``start`` and re-chain every later entry to it, each with its
    leaf hash recomputed: a rewrite no stored hash gives away."""
    statements: list[tuple[str, tuple[object, ...]]] = []
    data, prev = first, p.entries[start].prev
    for seq in range(start, len(p.entries)):
        if seq > start:
            data = encode_entry(msgspec.structs.replace(decode_entry(p.entries[seq].data), prev=prev))
        leaf = leaf_hash(data)
        statements.append(
            (f"UPDATE {SCHEMA}.entries SET data = %s, leaf = %s, prev = %s WHERE seq = %s", (data, leaf, prev, seq))
        )
        prev = leaf
    return statements


def test_intact_store_verifies_against_its_export(config: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, output = verify(config, capsys)
    assert code == 0 and "50 entries, 5 signed checkpoints; 5 exported checkpoints and 50 exported leaf" in output


def test_changed_value(populated: Populated, config: str, capsys: pytest.CaptureFixture[str]) -> None:
    data = populated.entries[17].data.replace(b"a@example.com", b"b@example.com")
    tamper(populated, (f"UPDATE {SCHEMA}.entries SET data = %s WHERE seq = 17", (data,)))
    tampered(config, capsys, 17, "changed")


def test_changed_value_with_leaf_and_chain_recomputed(
    populated: Populated, config: str, capsys: pytest.CaptureFixture[str]
) -> None:
    data = populated.entries[37].data.replace(b"a@example.com", b"b@example.com")
    tamper(populated, *rechained(populated, 37, data))
    # The stored log is consistent in itself; only the leaf hashes exported when entry 37 was stored tell.
    tampered(config, capsys, 37, "leaf hash differs from the one exported")


def test_changed_indexed_key(populated: Populated, config: str, capsys: pytest.CaptureFixture[str]) -> None:
    tamper(populated, (f"UPDATE {SCHEMA}.entries SET key = '{{\"id\":999}}' WHERE seq = 8", ()))
    tampered(config, capsys, 8, "indexed column")


def test_deleted_entry(populated: Populated, config: str, capsys: pytest.CaptureFixture[str]) -> None:
    tamper(populated, (f"DELETE FROM {SCHEMA}.entries WHERE seq = 30", ()))
    tampered(config, capsys, 30, "missing")


def test_deleted_and_renumbered(populated: Populated, config: str, capsys: pytest.CaptureFixture[str]) -> None:
    tamper(
        populated,
        (f"DELETE FROM {SCHEMA}.entries WHERE seq = 30", ()),
        (f"UPDATE {SCHEMA}.entries SET seq = seq + 1000000 WHERE seq > 30", ()),
        (f"UPDATE {SCHEMA}.entries SET seq = seq - 1000001 WHERE seq >= 1000000", ()),
    )
    tampered(config, capsys, 30, "is entry 31")


def test_forged_chained_entry_in_the_middle(
    populated: Populated, config: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # The attacker shifts entries 20.. up by one and forges a well-chained entry 20 in the gap.
    forged = msgspec.structs.replace(decode_entry(populated.entries[20].data), op="delete")
    forged_data = encode_entry(forged)
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
    tampered(config, capsys, 20, "leaf hash differs from the one exported")


def forge_tail(p: Populated) -> None:
    """A well-chained entry 50 appended after the last signed one, as Worker-Sync would have written it."""
    forged = msgspec.structs.replace(decode_entry(p.entries[49].data), seq=50, prev=p.entries[49].leaf, op="delete")
    data = encode_entry(forged)
    tamper(
        p,
        (
            f"INSERT INTO {SCHEMA}.entries SELECT 50, %s, %s, %s, kind, namespace, key, commit_time_us "
            f"FROM {SCHEMA}.entries WHERE seq = 49",
            (data, leaf_hash(data), p.entries[49].leaf),
        ),
    )


def test_forged_chained_entry_at_the_tail_is_never_signed_by_the_next_writer(
    populated: Populated, config: str, capsys: pytest.CaptureFixture[str]
) -> None:
    forge_tail(populated)
    tampered(config, capsys, 50, "foreign")
    settings = load_config(config)
    node = nodes_by_name(settings)["postgresql"]
    assert isinstance(node, PostgresNode)
    writer = AuditWriter(settings.audit, node, ["pg1"])  # what the next `run` starts
    with pytest.raises(ForeignEntries, match="first foreign entry 50") as refused:
        writer.record_admin("config-loaded", {"sha256": "0" * 64}, request_id="restart", actor="test")
    assert refused.value.first == 50
    writer.close()
    assert max(cp.size for cp in populated.store.checkpoints()) == 50, "the writer signed the forged entry"
    tampered(config, capsys, 50, "foreign")  # still: nothing covers it


def test_swapped_entries(populated: Populated, config: str, capsys: pytest.CaptureFixture[str]) -> None:
    tamper(
        populated,
        (f"UPDATE {SCHEMA}.entries SET seq = -1 WHERE seq = 12", ()),
        (f"UPDATE {SCHEMA}.entries SET seq = 12 WHERE seq = 13", ()),
        (f"UPDATE {SCHEMA}.entries SET seq = 13 WHERE seq = -1", ()),
    )
    tampered(config, capsys, 12, "swapped")


def test_truncated_tail_with_its_checkpoints_fails_plain_verify(
    populated: Populated, config: str, capsys: pytest.CaptureFixture[str]
) -> None:
    tamper(
        populated,
        (f"DELETE FROM {SCHEMA}.entries WHERE seq >= 40", ()),
        (f"DELETE FROM {SCHEMA}.checkpoints WHERE size > 40", ()),
    )
    assert verify_log(populated.store.read(), populated.store.checkpoints(), PUBLIC).ok  # alone, consistent
    tampered(config, capsys, 40, "truncated", "signs 50")


def test_forged_checkpoint_signature(populated: Populated, config: str, capsys: pytest.CaptureFixture[str]) -> None:
    other = populated.checkpoints[0].signature
    tamper(populated, (f"UPDATE {SCHEMA}.checkpoints SET signature = %s WHERE size = 20", (other,)))
    tampered(config, capsys, 19, "size 20: bad signature")


def test_an_altered_export_is_named(populated: Populated, config: str, capsys: pytest.CaptureFixture[str]) -> None:
    leaves = populated.export_dir / "leaves.bin"
    raw = bytearray(leaves.read_bytes())
    raw[32 * 5] ^= 1
    leaves.write_bytes(bytes(raw))
    tampered(config, capsys, 0, "leaves.bin contradicts the exported checkpoint of size 10")


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


def test_even_the_owner_is_refused_while_the_triggers_stand(
    populated: Populated, config: str, capsys: pytest.CaptureFixture[str]
) -> None:
    for statement in (f"DELETE FROM {SCHEMA}.entries WHERE seq = 1", f"TRUNCATE {SCHEMA}.checkpoints"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            populated.admin.execute(statement)
    assert verify(config, capsys)[0] == 0


def test_a_restarted_log_continues_the_chain(populated: Populated) -> None:
    from actors.core.audit.entries import change_entry
    from actors.core.audit.log import AuditLog
    from tests.audit.conftest import event

    frontier, last_leaf = populated.store.resume()
    assert frontier.size == 50 and last_leaf == populated.entries[-1].leaf
    log = AuditLog(SigningKey(SEED), every_entries=7, frontier=frontier, last_leaf=last_leaf)
    stored, checkpoints = log.add(change_entry(event(i)) for i in range(50, 64))
    assert [cp.size for cp in checkpoints] == [57, 64]
    populated.store.append(stored, checkpoints)
    report = verify_log(populated.store.read(), populated.store.checkpoints(), PUBLIC)
    assert report.ok and report.entries == 64 and report.checkpoints == 7
