"""Read a config file and check what msgspec's schema alone cannot (names that refer to nodes)."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec

from config.errors import ConfigError
from config.model import Config, Databases, Node

_SECRET_KEYS = re.compile(r"unknown field `(password|token|secret|signing_key|encryption_key)`")


def load_config(path: str | Path) -> Config:
    """Load and validate a config file; every problem is a :class:`ConfigError` naming the key path."""
    path = Path(path)
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read the file: {exc.strerror}") from None
    return parse_config(text, source=str(path))


def parse_config(text: bytes | str, *, source: str = "<config>") -> Config:
    """Validate a YAML document; ``source`` names it in error messages."""
    if not str(text if isinstance(text, str) else text.decode(errors="replace")).strip():
        raise ConfigError(source, "the file is empty")
    try:
        config = msgspec.yaml.decode(text, type=Config)
    except msgspec.ValidationError as exc:
        raise ConfigError(source, _explain(str(exc))) from None
    except msgspec.DecodeError as exc:
        raise ConfigError(source, f"not valid YAML: {exc}") from None
    _check_references(config, source)
    return config


def _explain(message: str) -> str:
    if _SECRET_KEYS.search(message):
        return (
            f"{message} - secrets never go in the config file: name an environment variable "
            "(`password_env`) or a file (`password_file`) instead"
        )
    return message


def nodes_by_name(config: Config) -> dict[str, Node]:
    """Every enabled node: the ``databases:`` block's (named after their key) and ``nodes:``."""
    nodes: dict[str, Node] = {}
    for key in Databases.__struct_fields__:
        node = getattr(config.databases, key)
        if node is not None and node.enabled:
            nodes[key] = node
    for node in config.nodes:
        if node.enabled:
            nodes[node.name] = node
    return nodes


def _check_references(config: Config, source: str) -> None:
    seen = set(Databases.__struct_fields__)
    for i, node in enumerate(config.nodes):
        if node.name in seen:
            raise ConfigError(source, f"node name `{node.name}` is used twice - at `$.nodes[{i}].name`")
        seen.add(node.name)
    enabled = nodes_by_name(config)
    link_names: set[str] = set()
    for i, link in enumerate(config.links):
        if link.name in link_names:
            raise ConfigError(source, f"link name `{link.name}` is used twice - at `$.links[{i}].name`")
        link_names.add(link.name)
        for end in ("source", "target"):
            name = getattr(link, end)
            if name not in enabled:
                raise ConfigError(
                    source,
                    f"link `{link.name}` names node `{name}`, which is not defined or not enabled "
                    f"(defined and enabled: {', '.join(sorted(enabled)) or 'none'}) - at `$.links[{i}].{end}`",
                )
    _check_masking(config, source)
    if config.audit.enabled and config.links and config.audit.node not in enabled:
        raise ConfigError(
            source,
            f"audit store node `{config.audit.node}` is not defined or not enabled - at `$.audit.node`",
        )


def _check_masking(config: Config, source: str) -> None:
    """`mask: hash` needs the masking key named (its value is read where it is used, never here)."""
    if config.masking.key_env or config.masking.key_file:
        return
    for i, link in enumerate(config.links):
        for j, table in enumerate(link.tables):
            hashed = sorted(name for name in table.mask if table.mask_kind(name) == "hash")
            if hashed:
                raise ConfigError(
                    source,
                    f"column `{hashed[0]}` has `mask: hash` but no key is named: set `masking.key_env` or "
                    f"`masking.key_file` - at `$.links[{i}].tables[{j}].mask`",
                )
