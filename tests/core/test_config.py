"""Config loading: good files load; every kind of mistake names its key path and the file."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from actors.core.errors import ConfigError
from config import load_config, nodes_by_name, parse_config
from config.schema import SCHEMA_PATH, current_schema, normalized
from config.secrets import read_secret

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"

MINIMAL = """
databases:
  postgresql: {host: db, database: shop, username: ws}
  mysql: {host: my, database: shop, username: ws}
links:
  - name: orders
    source: postgresql
    target: mysql
    tables: [{source: public.orders}]
"""


@pytest.mark.parametrize("name", ["example.yaml", "demo.yaml", "shaping.yaml"])
def test_shipped_configs_are_valid(name: str) -> None:
    config = load_config(CONFIG_DIR / name)
    assert set(nodes_by_name(config)) == {"postgresql", "mysql"}
    assert config.links


def test_defaults_fill_what_is_left_out() -> None:
    config = parse_config(MINIMAL)
    assert config.databases.postgresql.port == 5432
    assert config.databases.mysql.port == 3306
    assert config.databases.postgresql.tls.mode == "prefer"
    assert config.links[0].conflict_policy == "last_writer_wins"
    assert config.supervisor.applier_shards == 4


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            MINIMAL.replace("username: ws}", "username: ws, prot: 1}", 1),
            "unknown field `prot` - at `$.databases.postgresql`",
        ),
        (MINIMAL.replace("host: db", "host: db, port: 70000"), "<= 65535 - at `$.databases.postgresql.port`"),
        (
            MINIMAL.replace("host: db", "host: db, port: five"),
            "Expected `int`, got `str` - at `$.databases.postgresql.port`",
        ),
        (MINIMAL.replace("host: db, ", ""), "missing required field `host` - at `$.databases.postgresql`"),
        (MINIMAL.replace("target: mysql", "target: mongo"), "node `mongo`, which is not defined or not enabled"),
        (MINIMAL.replace("target: mysql", "target: postgresql"), "same node `postgresql` as source and target"),
        (MINIMAL + "supervisor: {applier_shards: 0}\n", ">= 1 - at `$.supervisor.applier_shards`"),
        (
            MINIMAL + "nodes: [{name: pg2, engine: oracle, host: h, database: d, username: u}]\n",
            "Invalid value 'oracle' - at `$.nodes[0].engine`",
        ),
        (
            MINIMAL + "nodes: [{name: mysql, engine: mysql, host: h, database: d, username: u}]\n",
            "node name `mysql` is used twice - at `$.nodes[0].name`",
        ),
        (MINIMAL.replace("host: db", "host: db, tls: {mode: verify-full}"), "needs `ca_file`"),
        (MINIMAL.replace("host: db", "host: db, password: hunter22"), "secrets never go in the config file"),
        ("links: [\n", "not valid YAML"),
        ("   \n", "the file is empty"),
    ],
)
def test_mistakes_name_the_key_path(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, source="site.yaml")
    message = str(caught.value)
    assert message.startswith("site.yaml: ")
    assert expected in message


def test_a_disabled_node_cannot_be_linked() -> None:
    text = MINIMAL.replace("username: ws}", "username: ws, enabled: false}", 1)
    with pytest.raises(ConfigError, match=r"node `postgresql`.*not defined or not enabled.*\$\.links\[0\]\.source"):
        parse_config(text)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the file"):
        load_config(tmp_path / "nope.yaml")


def test_extra_named_nodes_join_the_topology() -> None:
    text = MINIMAL + "nodes: [{name: pg-eu, engine: postgresql, host: h, database: d, username: u}]\n"
    assert list(nodes_by_name(parse_config(text))) == ["postgresql", "mysql", "pg-eu"]


def test_committed_schema_is_current() -> None:
    """config/schema.json is generated from the structs (for editors and the Helm chart)."""
    committed = msgspec.json.decode(SCHEMA_PATH.read_bytes())
    assert normalized(committed) == current_schema(), "regenerate with: python -m config.schema"


def test_schema_check_ignores_docstring_layout_but_not_content() -> None:
    """Whitespace inside a description is layout (msgspec releases differ); anything else is a change."""
    schema = current_schema()
    reindented = msgspec.json.decode(msgspec.json.encode(schema).replace(b". ", b".\\n    "))
    assert reindented != schema and normalized(reindented) == schema
    changed = msgspec.json.decode(msgspec.json.encode(schema).replace(b'"integer"', b'"string"', 1))
    assert normalized(changed) != schema


def test_secrets_come_from_env_or_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WS_TEST_SECRET", "s3cret")
    assert read_secret(env="WS_TEST_SECRET", file=None, what="pg password") == "s3cret"
    secret_file = tmp_path / "pw"
    secret_file.write_text("from-file\n")
    assert read_secret(env=None, file=str(secret_file), what="pg password") == "from-file"
    assert read_secret(env=None, file=None, what="pg password") is None
    monkeypatch.delenv("WS_TEST_SECRET")
    with pytest.raises(ConfigError, match="`WS_TEST_SECRET` is not set") as caught:
        read_secret(env="WS_TEST_SECRET", file=None, what="pg password")
    assert "s3cret" not in str(caught.value)
