"""Writes config/schema.json, the JSON Schema of the config file: `python -m config.schema`."""

from pathlib import Path

import msgspec

from config.model import Config


def main() -> None:
    target = Path(__file__).with_name("schema.json")
    target.write_bytes(msgspec.json.format(msgspec.json.encode(msgspec.json.schema(Config)), indent=2) + b"\n")
    print(f"wrote {target.name}")


if __name__ == "__main__":
    main()
