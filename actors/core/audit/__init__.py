"""The tamper-evident audit log, pure: canonical entries, Merkle hashing, signed checkpoints, verification.

No driver and no Ray here: the PostgreSQL store lives in ``actors.engines.postgresql.audit_store``.
"""
