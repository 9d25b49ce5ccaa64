"""`worker-sync init`'s administrator options: one pair per engine, named by ``Engine.admin_flags``
(``--admin-user`` / ``--mysql-admin-user`` / ``--mongo-admin-user`` and their ``-password-env``)."""

from __future__ import annotations

import argparse
import os
from typing import Any

from actors.engines.base import Engine


def admin_login(args: argparse.Namespace, engine: Engine[Any]) -> tuple[str | None, str | None]:
    """(user, password) of the administrator given for ``engine``; (None, None): the node's own account."""
    user = getattr(args, f"{engine.admin_flags}admin_user", None)
    env = getattr(args, f"{engine.admin_flags}admin_password_env", None)
    return user, (os.environ.get(env) if user and env else None)
