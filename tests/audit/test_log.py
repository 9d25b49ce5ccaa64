"""AuditLog checkpoints on schedule, canonical entries, key loading and crypto-shredding."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from nacl.signing import SigningKey
from nacl.utils import random as random_bytes

from actors.core.audit.checkpoint import Checkpoint, key_id, load_signing_key, verify_signature
from actors.core.audit.entries import change_entry, decode_entry, encode_entry
from actors.core.audit.exports import ExportDir, read_exports
from actors.core.audit.fieldcrypt import CryptoError, FieldCipher, is_encrypted
from actors.core.audit.log import AuditLog
from actors.core.audit.note import NoteError, open_note
from actors.core.audit.verify import verify_log
from actors.core.encoding import decode_event
from actors.core.errors import ConfigError
from tests.audit.conftest import ORIGIN, SEED, build_log, event, export_all


def test_entry_bytes_are_canonical_and_round_trip() -> None:
    entry = change_entry(event(7))
    assert encode_entry(entry) == encode_entry(change_entry(event(7)))
    assert decode_entry(encode_entry(entry)) == entry
    assert entry.key == '{"id":7}' and entry.resume == "0/7" and entry.order_hex == "0000000000000007"


def test_every_batch_is_sealed_by_a_checkpoint_of_its_head() -> None:
    _, checkpoints = build_log(35, every_entries=10)
    assert [cp.size for cp in checkpoints] == [10, 20, 30, 35]
    log = AuditLog(SigningKey(SEED), every_entries=1000)
    _, (cp,) = log.add([change_entry(event(0))])
    assert cp.size == 1 and log.add([]) == ([], [])
    assert verify_signature(cp, SigningKey(SEED).verify_key) is None
    assert Checkpoint.from_json(cp.to_json()) == cp


def test_signing_key_from_file_or_env_raw_or_hex(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    raw, hexed = tmp_path / "raw.key", tmp_path / "hex.key"
    raw.write_bytes(SEED)
    hexed.write_text(SEED.hex() + "\n")
    monkeypatch.setenv("AUDIT_KEY", SEED.hex())
    keys = [load_signing_key(file=str(raw)), load_signing_key(file=str(hexed)), load_signing_key(env="AUDIT_KEY")]
    assert {bytes(k) for k in keys} == {SEED}
    assert len(key_id(bytes(keys[0].verify_key))) == 8
    hexed.write_text("not a key")
    with pytest.raises(ConfigError) as info:
        load_signing_key(file=str(hexed))
    assert "not a key" not in str(info.value)


def test_crypto_shredding_erases_values_and_the_log_still_verifies() -> None:
    key = random_bytes(32)
    cipher = FieldCipher(key, ["public.orders.email"])
    encrypted = [cipher.encrypt_event(event(i, email=f"user{i}@example.com")) for i in range(20)]
    assert all(is_encrypted(e.after["email"]) for e in encrypted)  # type: ignore[index]
    log = AuditLog(SigningKey(SEED), every_entries=5)
    stored, checkpoints = log.add(change_entry(e) for e in encrypted)
    assert all(b"user" not in row.data for row in stored)  # no plaintext anywhere in the log
    payload = decode_event(decode_entry(stored[3].data).payload)
    assert cipher.decrypt_value(payload.after["email"]) == "user3@example.com"  # type: ignore[index]
    assert payload.after["total"] == 30  # type: ignore[index]  # other columns stay readable
    # The key is destroyed: nobody can read the value any more, and verification never needed it.
    del cipher, key
    with pytest.raises(CryptoError):
        FieldCipher(random_bytes(32), []).decrypt_value(payload.after["email"])  # type: ignore[index]
    report = verify_log(stored, checkpoints, SigningKey(SEED).verify_key)
    assert report.ok and report.entries == 20


def test_export_keeps_every_leaf_and_a_signed_note_per_size(tmp_path: Path) -> None:
    entries, checkpoints = build_log(25)
    export_all(tmp_path / "export", entries, checkpoints)
    assert sorted(p.name for p in (tmp_path / "export").iterdir()) == [
        "checkpoint-000000000010.note",
        "checkpoint-000000000020.note",
        "checkpoint-000000000025.note",
        "latest.note",
        "leaves.bin",
    ]
    note = (tmp_path / "export" / "latest.note").read_text()
    lines = note.splitlines()
    assert lines[:3] == [ORIGIN, "25", base64.b64encode(checkpoints[-1].root).decode()] and lines[3] == ""
    assert lines[4].startswith(f"\u2014 {ORIGIN} ")
    exported = read_exports(tmp_path / "export", [SigningKey(SEED).verify_key])
    assert exported.problem is None and sorted(exported.checkpoints) == [10, 20, 25]
    assert exported.leaves == [e.leaf for e in entries]
    with pytest.raises(NoteError, match="no signature by the given key"):
        open_note(note, [SigningKey.generate().verify_key])
    forged = note.replace("\n25\n", "\n24\n")
    with pytest.raises(NoteError, match="bad signature"):
        open_note(forged, [SigningKey(SEED).verify_key])


def test_a_torn_leaf_record_is_cut_off(tmp_path: Path) -> None:
    exports = ExportDir(tmp_path / "export")
    exports.append_leaves([bytes(32), bytes(32)])
    with open(tmp_path / "export" / "leaves.bin", "ab") as handle:
        handle.write(b"\x01" * 7)  # a crash in the middle of a write
    assert exports.leaf_count() == 2 and (tmp_path / "export" / "leaves.bin").stat().st_size == 64
