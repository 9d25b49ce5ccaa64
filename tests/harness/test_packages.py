"""Missing Debian packages are detected and named with the command that installs them."""

from __future__ import annotations

from pathlib import Path

import pytest

from actors.harness import HarnessError, LocalMariaDB, LocalPostgres
from actors.harness.packages import Requirement, ensure_installed


def test_missing_packages_are_named_with_the_install_command() -> None:
    never = Requirement("a tool nobody has", "ws-no-such-package", lambda: False)
    always = Requirement("a tool everybody has", "ws-present-package", lambda: True)
    ensure_installed([always], install=False)
    with pytest.raises(HarnessError) as missing:
        ensure_installed([always, never], install=False)
    message = str(missing.value)
    assert "a tool nobody has (Debian package ws-no-such-package)" in message
    assert "apt-get install -y ws-no-such-package" in message
    assert "ws-present-package" not in message


def test_this_machine_has_what_the_servers_need(tmp_path: Path) -> None:
    """Detection by the real files: wal2json.so in the pkglibdir, mariadbd and mariadb-install-db."""
    for server in (LocalPostgres(tmp_path / "pg"), LocalMariaDB(tmp_path / "mariadb")):
        missing = [r.package for r in server.requirements() if not r.present()]
        assert missing == [], f"install with: apt-get install -y {' '.join(missing)}"
