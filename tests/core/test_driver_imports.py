"""Only the engines talk to database drivers (issue 15, "one engine object per database").

Every product source file outside actors/engines/ and actors/harness/ (the throwaway-server harness) must
not import psycopg, pymysql, pymongo, pymysqlreplication or bson, nor branch on the node's engine type:
engine-neutral code asks ``actors.engines.registry.engine_for(node)``. The import-linter contract "only the
engines import database drivers" says the same for packages; this test also covers supervisor.py and imports
under ``if TYPE_CHECKING:`` or inside functions.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DRIVERS = frozenset({"psycopg", "pymysql", "pymongo", "pymysqlreplication", "bson"})
ENGINE_NODES = frozenset({"PostgresNode", "MySqlNode", "MongoNode"})
#: Where drivers and engine types belong.
ALLOWED = ("actors/engines/", "actors/harness/")


def product_files() -> list[Path]:
    files = [ROOT / "supervisor.py", *(ROOT / "actors").rglob("*.py"), *(ROOT / "config").rglob("*.py")]
    return sorted(p for p in files if not p.relative_to(ROOT).as_posix().startswith(ALLOWED))


def driver_imports(source: str) -> list[tuple[int, str]]:
    """(line, module) of every import of a driver: plain, from-, nested, or ``importlib.import_module("x")``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Call) and _called(node) in ("import_module", "__import__") and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                names = [first.value]
        found += [(node.lineno, name) for name in names if name.split(".")[0] in DRIVERS]
    return found


def engine_type_checks(source: str) -> list[tuple[int, str]]:
    """(line, type) of every ``isinstance(x, PostgresNode | ...)`` / ``isinstance(x, (MySqlNode, ...))``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and _called(node) == "isinstance" and len(node.args) == 2:
            found += [
                (node.lineno, sub.id)
                for sub in ast.walk(node.args[1])
                if isinstance(sub, ast.Name) and sub.id in ENGINE_NODES
            ]
    return found


def _called(call: ast.Call) -> str | None:
    func = call.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None


def _violations(check) -> list[str]:
    problems = []
    for path in product_files():
        rel = path.relative_to(ROOT).as_posix()
        problems += [f"{rel}:{line}: {what}" for line, what in check(path.read_text())]
    return problems


def test_the_checkers_see_every_form() -> None:
    source = """
import os
import psycopg
import pymysql.err as err
from bson import ObjectId
from typing import TYPE_CHECKING
if TYPE_CHECKING:
    from pymongo import MongoClient
def f(node):
    import pymysqlreplication
    importlib.import_module("psycopg.errors")
    from .psycopg import x  # relative: ours, not the driver
    import psycopgx
    return isinstance(node, PostgresNode) or isinstance(node, (MySqlNode, str)) or isinstance(node, MongoNode | int)
"""
    assert driver_imports(source) == [
        (3, "psycopg"),
        (4, "pymysql.err"),
        (5, "bson"),
        (8, "pymongo"),
        (10, "pymysqlreplication"),
        (11, "psycopg.errors"),
    ]
    assert sorted(engine_type_checks(source)) == [(14, "MongoNode"), (14, "MySqlNode"), (14, "PostgresNode")]
    assert driver_imports("import os\nfrom config.model import Node\n") == []


def test_the_walk_covers_the_product_but_not_the_engines() -> None:
    rel = {p.relative_to(ROOT).as_posix() for p in product_files()}
    assert {"supervisor.py", "actors/cli/run.py", "actors/preflight.py", "config/model.py"} <= rel
    assert not any(r.startswith(ALLOWED) for r in rel)


def test_no_driver_import_outside_the_engines() -> None:
    problems = _violations(driver_imports)
    if problems:
        pytest.fail("drivers imported outside actors/engines/ (ask the engine object):\n" + "\n".join(problems))


def test_no_branching_on_the_engine_type_outside_the_engines() -> None:
    problems = _violations(engine_type_checks)
    if problems:
        pytest.fail("engine types checked outside actors/engines/ (use engine_for(node)):\n" + "\n".join(problems))
