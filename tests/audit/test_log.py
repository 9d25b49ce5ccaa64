"""AuditLog checkpoints on schedule, canonical entries, key loading and crypto-shredding."""

from __future__ import annotations

from pathlib import Path

import pytest
from nacl.signing import SigningKey
from nacl.utils import random as random_bytes

from actors.core.audit.checkpoint import Checkpoint, export, key_id, load_signing_key, verify_signature
from actors.core.audit.entries import change_entry, decode_entry, encode_entry
from actors.core.audit.fieldcrypt import CryptoError, FieldCipher, is_encrypted
from actors.core.audit.log import AuditLog
from actors.core.audit.verify import verify_log
from actors.core.encoding import decode_event
from actors.core.errors import ConfigError
from tests.audit.conftest import SEED, build_log, event


def test_entry_bytes_are_canonical_and_round_trip() -> None:
    entry = change_entry(event(7))
    assert encode_entry(entry) == encode_entry(change_entry(event(7)))
    assert decode_entry(encode_entry(entry)) == entry
    assert entry.key == '{"id":7}' and entry.resume == "0/7" and entry.order_hex == "0000000000000007"


def test_checkpoint_every_n_entries_and_every_t_ms() -> None:
    _, checkpoints = build_log(35, every_entries=10)
    assert [cp.size for cp in checkpoints] == [10, 20, 30]
    now = [0]
    log = AuditLog(SigningKey(SEED), every_entries=1000, every_ms=5, clock_us=lambda: now[0])
    _, cps = log.add([change_entry(event(0))])
    assert cps == [] and log.tick() is None
    now[0] = 5_000
    cp = log.tick()
    assert cp is not None and cp.size == 1 and log.tick() is None
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
    log = AuditLog(SigningKey(SEED), every_entries=5, every_ms=10**9)
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


def test_export_writes_latest_and_one_file_per_size(tmp_path: Path) -> None:
    _, checkpoints = build_log(25)
    for cp in checkpoints:
        latest = export(cp, tmp_path / "export")
    assert Checkpoint.from_json(latest.read_bytes()) == checkpoints[-1]
    assert sorted(p.name for p in (tmp_path / "export").iterdir()) == [
        "checkpoint-000000000010.json",
        "checkpoint-000000000020.json",
        "latest.json",
    ]
