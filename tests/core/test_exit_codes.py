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
