"""The masking key of `mask: hash`, read in the process that masks (a capture actor), never sent through Ray."""

from __future__ import annotations

from actors.core.errors import ConfigError
from actors.core.shaping.masks import MIN_KEY_BYTES
from config.secrets import read_secret


def load_mask_key(*, env: str | None, file: str | None) -> bytes:
    """The key's bytes (64 hex characters are read as 32 bytes; any other text as its UTF-8 bytes)."""
    text = read_secret(env=env, file=file, what="masking key")
    if text is None:
        raise ConfigError("config", "`mask: hash` needs a key: set `masking.key_env` or `masking.key_file`")
    text = text.strip()
    try:
        key = bytes.fromhex(text) if len(text) == 2 * MIN_KEY_BYTES else text.encode()
    except ValueError:
        key = text.encode()
    if len(key) < MIN_KEY_BYTES:
        raise ConfigError(
            "config",
            f"the masking key has {len(key)} bytes, fewer than {MIN_KEY_BYTES}: make one with "
            "`python -c 'import secrets; print(secrets.token_hex(32))'`",
        )
    return key
