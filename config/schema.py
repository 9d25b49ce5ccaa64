"""Writes config/schema.json, the JSON Schema of the config file: `python -m config.schema`."""

from pathlib import Path
from typing import Any

import msgspec

from config.model import Config

SCHEMA_PATH = Path(__file__).with_name("schema.json")


def normalized(node: Any) -> Any:
    """The schema with every description's whitespace collapsed to single spaces.

    msgspec copies docstrings into descriptions, and its releases keep their indentation differently
    (0.23 changed it): comparing normalised schemas catches every real change, not a formatting one.
    """
    if isinstance(node, dict):
        return {
            key: " ".join(value.split()) if key == "description" and isinstance(value, str) else normalized(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [normalized(item) for item in node]
    return node


def current_schema() -> dict[str, Any]:
    """The JSON Schema of :class:`Config` as the installed msgspec generates it, normalised."""
    return normalized(msgspec.json.schema(Config))


def main() -> None:
    SCHEMA_PATH.write_bytes(msgspec.json.format(msgspec.json.encode(current_schema()), indent=2) + b"\n")
    print(f"wrote {SCHEMA_PATH.name}")


if __name__ == "__main__":
    main()
