"""`check-config --deep`: the start-up rules of `run` that need no connection, found before deploying."""

from __future__ import annotations

import json
from pathlib import Path

from actors.deep_check import deep_problems
from config import parse_config
from tests.cli.test_cli import cli

NODES = """
databases:
  postgresql: {host: pg, database: d, username: u, password_env: P}
  mysql: {host: my, database: d, username: u, password_env: P, flavor: mysql, snapshot: SNAPSHOT}
  mongodb: {host: mo, database: d, username: u, password_env: P, replica_set: rs0, collections: COLLECTIONS}
audit: {enabled: false}
"""


def config(links: str, *, snapshot: str = "true", collections: str = "{}") -> str:
    return NODES.replace("SNAPSHOT", snapshot).replace("COLLECTIONS", collections) + f"links: {links}\n"


MYSQL_SOURCE = "[{name: l, source: mysql, target: postgresql, tables: [{source: d.t, target: public.t}]}]"
TO_MONGO = "[{name: m, source: postgresql, target: mongodb, tables: [{source: public.t, target: d.t}]}]"


def test_a_mysql_source_must_not_snapshot():
    [problem] = deep_problems(parse_config(config(MYSQL_SOURCE)))
    assert "mysql node `mysql`" in problem and "`snapshot: false`" in problem
    assert deep_problems(parse_config(config(MYSQL_SOURCE, snapshot="false"))) == []


def test_a_mysql_target_may_keep_the_default():
    back = "[{name: l, source: postgresql, target: mysql, tables: [{source: public.t, target: d.t}]}]"
    assert deep_problems(parse_config(config(back))) == []


def test_every_mongodb_collection_a_link_touches_is_declared():
    [problem] = deep_problems(parse_config(config(TO_MONGO)))
    assert "collection `d.t` has no declared fields" in problem
    assert deep_problems(parse_config(config(TO_MONGO, collections="{d.t: {_id: long, x: int}}"))) == []


def test_the_audit_node_must_be_postgresql():
    text = config(TO_MONGO, collections="{d.t: {_id: long}}").replace(
        "audit: {enabled: false}", "audit: {enabled: true, node: mysql, signing_key_env: K}"
    )
    assert deep_problems(parse_config(text)) == ["`audit.node` `mysql` must name an enabled postgresql node"]


def test_the_command_exits_2_naming_each_problem_and_0_when_clean(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(config(MYSQL_SOURCE))
    plain = cli("check-config", str(bad))
    assert plain.returncode == 0, plain.stderr  # the schema and topology alone find nothing
    deep = cli("check-config", "--deep", str(bad))
    assert deep.returncode == 2
    assert "`snapshot: false`" in deep.stderr and str(bad) in deep.stderr
    as_json = cli("check-config", "--deep", "--json", str(bad))
    assert json.loads(as_json.stdout)["ok"] is False
    good = tmp_path / "good.yaml"
    good.write_text(config(MYSQL_SOURCE, snapshot="false"))
    clean = cli("check-config", "--deep", "--json", str(good))
    assert clean.returncode == 0 and json.loads(clean.stdout)["deep"] is True
