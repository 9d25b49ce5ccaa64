"""Secrets come from environment variables or files named in the config, never from the YAML.

Nothing here logs or prints a secret; errors name the variable or file, not the value.
"""

from __future__ import annotations

import os
from pathlib import Path

from config.errors import ConfigError
from config.model import Node


def read_secret(*, env: str | None, file: str | None, what: str) -> str | None:
    """The secret named by ``env`` or ``file``; None when neither is set."""
    if env:
        value = os.environ.get(env)
        if value is None:
            raise ConfigError("environment", f"{what}: environment variable `{env}` is not set")
        return value
    if file:
        try:
            return Path(file).read_text().rstrip("\r\n")
        except OSError as exc:
            raise ConfigError(file, f"{what}: cannot read the secret file: {exc.strerror}") from None
    return None


def node_password(name: str, node: Node) -> str | None:
    """The password of a database node (from its `password_env` or `password_file`)."""
    return read_secret(env=node.password_env, file=node.password_file, what=f"node `{name}` password")
