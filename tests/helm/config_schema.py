"""values.schema.json validates `config:` with the config file's own JSON Schema (config/schema.json, generated
from config/model.py): its definitions are copied under the values schema's `$defs`, and `config` refers to
them. `python -m tests.helm.config_schema --write` copies them again after the model changes; the tests fail
while the copy is stale.

Copied, not referenced by URL: Helm resolves no file references, and a chart must carry its own schema.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from tests.helm.chart_support import CHART_DIR, ROOT

VALUES_SCHEMA = CHART_DIR / "values.schema.json"
CONFIG_SCHEMA = ROOT / "config" / "schema.json"
DESCRIPTION = (
    "Worker-Sync config (config/schema.json): nodes, links, audit, supervisor; unknown keys, such as a "
    "`password` anywhere, are refused (passwords come from Secrets as files)"
)


def embedded(values_schema: dict[str, Any]) -> dict[str, Any]:
    """The values schema with config/schema.json's definitions under `$defs` and `config` pointing at them."""
    config = json.loads(CONFIG_SCHEMA.read_text())
    out = dict(values_schema)
    out["$defs"] = config["$defs"]
    out["properties"] = {**out["properties"], "config": {"$ref": config["$ref"], "description": DESCRIPTION}}
    return out


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2) + "\n"


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python -m tests.helm.config_schema --write")
    VALUES_SCHEMA.write_text(render(embedded(json.loads(VALUES_SCHEMA.read_text()))))
