"""Run server processes as our direct children that die with us, and stop them with escalating signals.

Servers are not daemonized (no pg_ctl / mysqld_safe): a direct child can be waited for, and
PR_SET_PDEATHSIG makes the kernel signal it when we die, even by SIGKILL. PR_SET_PDEATHSIG is tied to the
*thread* that forked and is cleared when the child changes its user id, so: launch servers from a thread
that lives as long as they do (the main thread), and switch user before setting it (Popen's `user=` runs
before `preexec_fn`), never let the server switch user itself.
"""

from __future__ import annotations

import ctypes
import os
import pwd
import signal
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

from actors.harness.errors import HarnessError

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


@dataclass(frozen=True)
class RunAs:
    """The OS account a server runs as (root may not run PostgreSQL; MariaDB should not run as root)."""

    name: str
    uid: int
    gid: int

    @classmethod
    def for_server(cls, account: str) -> RunAs | None:
        """`account` when we are root, else None: then the server simply runs as us."""
        if os.geteuid() != 0:
            return None
        try:
            entry = pwd.getpwnam(account)
        except KeyError:
            raise HarnessError(f"OS account {account!r} does not exist (its Debian package creates it)") from None
        return cls(account, entry.pw_uid, entry.pw_gid)

    def chown(self, path: Path) -> None:
        os.chown(path, self.uid, self.gid)


def _die_with_parent(death_signal: int, parent_pid: int) -> Callable[[], None]:
    def preexec() -> None:
        if _libc.prctl(_PR_SET_PDEATHSIG, death_signal, 0, 0, 0) != 0:
            os._exit(111)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(112)

    return preexec


class _UserKwargs(TypedDict, total=False):
    """The account switch that Popen's `user=`, `group=` and `extra_groups=` make before `preexec_fn`."""

    user: int
    group: int
    extra_groups: list[int]


def _user_kwargs(run_as: RunAs | None) -> _UserKwargs:
    if run_as is None:
        return {}
    return {"user": run_as.uid, "group": run_as.gid, "extra_groups": []}


def run_checked(cmd: Sequence[str], *, log_path: Path, run_as: RunAs | None, cwd: Path, timeout_s: float) -> None:
    """Run a setup command (initdb, install-db) to completion, appending its output to the server log."""
    with open(log_path, "ab") as log:
        log.write(f"\n$ {' '.join(cmd)}\n".encode())
        log.flush()
        try:
            proc = subprocess.run(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=cwd,
                timeout=timeout_s,
                check=False,
                preexec_fn=_die_with_parent(signal.SIGKILL, os.getpid()),
                **_user_kwargs(run_as),
            )
        except subprocess.TimeoutExpired as exc:
            raise HarnessError(
                f"`{cmd[0]}` took more than {timeout_s}s; last lines of {log_path}:\n{log_tail(log_path)}"
            ) from exc
    if proc.returncode != 0:
        raise HarnessError(
            f"`{cmd[0]}` failed with exit {proc.returncode}; last lines of {log_path}:\n{log_tail(log_path)}"
        )


def spawn(
    cmd: Sequence[str], *, log_path: Path, run_as: RunAs | None, cwd: Path, death_signal: int
) -> subprocess.Popen[bytes]:
    """Start a long-running server as a direct child, in its own process group (a terminal's Ctrl-C goes
    to us; we stop the server in order), killed by `death_signal` if we die first."""
    with open(log_path, "ab") as log:
        log.write(f"\n$ {' '.join(cmd)}\n".encode())
        log.flush()
        return subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            process_group=0,
            preexec_fn=_die_with_parent(death_signal, os.getpid()),
            **_user_kwargs(run_as),
        )


def stop_process(proc: subprocess.Popen[bytes], steps: Sequence[tuple[int, float]]) -> None:
    """Send each (signal, grace seconds) in turn until the process is gone; SIGKILL as the last resort.

    Always waits with a timeout: that never blocks on Popen's internal lock, so this is safe to call from
    a signal handler that interrupted another wait.
    """
    for sig, grace_s in [*steps, (signal.SIGKILL, 10.0)]:
        if proc.poll() is not None:
            return
        try:
            proc.send_signal(sig)
            proc.wait(timeout=grace_s)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def log_tail(path: Path, lines: int = 40) -> str:
    """The last lines of a server log, for error messages (the first thing anyone asks for)."""
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(no log: {exc})"
    return "\n".join(text.splitlines()[-lines:])


def log_since(path: Path, offset: int) -> str:
    try:
        with open(path, "rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")
    except OSError:
        return ""
