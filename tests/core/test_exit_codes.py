"""Each error class names the exit code a command ends with (config.errors: WorkerSyncError.exit_code), and
one helper reports it (actors/cli/failures.py): the codes SPEC §5 and the commands' tests pin."""

from __future__ import annotations

import pytest

from actors.cli.failures import CliError, guarded, report
from actors.core.errors import (
    AuditMismatch,
    ConfigError,
    DatabaseError,
    DatabaseUnreachable,
    EncodingError,
    NodeUnreachable,
    ObjectMissing,
    OffsetLost,
    PrivilegeMissing,
    RowRefused,
    SinkError,
    SourceMisconfigured,
    SourceUnavailable,
    WorkerSyncError,
)
from config.exit_codes import Exit


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (WorkerSyncError("x"), Exit.FINDINGS),
        (ConfigError("config", "bad"), Exit.USAGE),
        (SourceMisconfigured("grants"), Exit.USAGE),  # a refused login, grant or table: a human must act
        (SinkError("table"), Exit.USAGE),
        (RowRefused("row", "ns", {}), Exit.USAGE),
        (SourceUnavailable("down"), Exit.UNAVAILABLE),
        (NodeUnreachable("node `a`: cannot connect: refused", "refused"), Exit.UNAVAILABLE),
        (OffsetLost("gone"), Exit.FINDINGS),
        (EncodingError("nan"), Exit.FINDINGS),
        (AuditMismatch("tampered"), Exit.FINDINGS),
        (DatabaseError("failed"), Exit.FINDINGS),
        (PrivilegeMissing("denied"), Exit.FINDINGS),
        (ObjectMissing("no table"), Exit.USAGE),
        (DatabaseUnreachable("lost"), Exit.UNAVAILABLE),
        (CliError("said", Exit.UNAVAILABLE), Exit.UNAVAILABLE),
        (CliError("said"), Exit.FINDINGS),
    ],
)
def test_each_error_names_its_exit_code(error: WorkerSyncError, code: int) -> None:
    assert error.exit_code == code


def test_errors_stay_picklable_with_their_codes() -> None:
    import pickle

    for error in (NodeUnreachable("m", "r"), CliError("m", Exit.USAGE)):
        copy = pickle.loads(pickle.dumps(error))
        assert (str(copy), copy.exit_code) == (str(error), error.exit_code)


def test_report_prints_one_line_worded_by_the_most_specific_class(capsys: pytest.CaptureFixture[str]) -> None:
    wording = {WorkerSyncError: "FAILED: {message}", DatabaseUnreachable: "database error: {message}"}
    assert report("backup", DatabaseUnreachable("connection failed\n\tIs the server running?"), wording) == 3
    assert capsys.readouterr().err == "worker-sync backup: database error: connection failed; Is the server running?\n"
    assert report("backup", DatabaseError("duplicate key"), wording) == 1
    assert capsys.readouterr().err == "worker-sync backup: FAILED: duplicate key\n"
    assert report("audit logs", ObjectMissing("no\nmore"), {ObjectMissing: "missing ({first_line})"}) == 2
    assert capsys.readouterr().err == "worker-sync audit logs: missing (no)\n"


def test_guarded_ends_on_our_errors_and_oserrors_but_not_on_bugs(capsys: pytest.CaptureFixture[str]) -> None:
    assert guarded("x", lambda: 0) == 0

    def refuse() -> int:
        raise ConfigError("config", "bad")

    def missing() -> int:
        raise FileNotFoundError(2, "No such file or directory")

    def bug() -> int:
        raise KeyError("bug")

    assert guarded("x", refuse) == Exit.USAGE
    assert guarded("x", missing) == Exit.FINDINGS
    assert "Traceback" not in capsys.readouterr().err
    with pytest.raises(KeyError):
        guarded("x", bug)


GROUP = """
audit: {enabled: false}
nodes:
  - {name: east, engine: postgresql, host: h, database: shop, username: u}
  - {name: hub, engine: mysql, host: h, database: shop, username: u}
links:
  - {name: east-hub, source: east, target: hub, bidirectional: true,
     tables: [{source: public.orders, target: shop.orders}]}
"""


@pytest.mark.parametrize(
    ("refusal", "code", "line"),
    [
        (
            NodeUnreachable("node `east` (h:5432/shop): cannot connect: refused", "refused"),
            Exit.UNAVAILABLE,
            "preparing bidirectional sync: node `east` (h:5432/shop): cannot connect: refused",
        ),
        (
            DatabaseError("node `east`: preparing bidirectional sync failed: denied; run init as an administrator"),
            Exit.FINDINGS,
            "node `east`: preparing bidirectional sync failed: denied; run init as an administrator",
        ),
        (
            SourceUnavailable("mongodb node `east`: preparing bidirectional sync: timeout; run init as ..."),
            Exit.UNAVAILABLE,
            "mongodb node `east`: preparing bidirectional sync: timeout; run init as ...",
        ),
    ],
)
def test_init_says_why_a_group_member_was_not_prepared_as_the_engine_put_it(
    refusal: WorkerSyncError, code: int, line: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse

    from actors.cli import _groups_init
    from config import parse_config

    class Refusing:
        admin_flags = ""

        def prepare_group(self, *args: object, **kwargs: object) -> list[str]:
            raise refusal

    monkeypatch.setattr(_groups_init, "engine_for", lambda node: Refusing())
    wording = {DatabaseError: "creating schema `s` failed: {message}"}  # what `init` words driver errors with
    assert (
        guarded("init", lambda: len(_groups_init.init_group_nodes(parse_config(GROUP), argparse.Namespace())), wording)
        == code
    )
    assert capsys.readouterr().err == f"worker-sync init: {line}\n"
