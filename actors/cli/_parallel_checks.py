"""`run`'s start-up checks in a forked child, while the parent starts or joins Ray.

Both are CPU work in Python (the checks import the database drivers, ~0.15 s; importing and joining Ray
~0.2 s), so a thread would only take turns with them on the GIL. A child forked before Ray is imported
runs them on another core; the parent then creates the actors as soon as the child's answer (the nodes
with a probe table, which the routes need) is in. Where ``os.fork`` does not exist they run inline.
"""

from __future__ import annotations

import logging
import os
import pickle
import sys

from actors.cli.failures import CliError
from actors.core.errors import WorkerSyncError
from config.exit_codes import Exit
from config.model import Config

log = logging.getLogger("worker_sync.run")


class ParallelChecks:
    """:func:`actors.preflight.startup_checks` of ``config``: in a child begun at once (``aside``), or inline
    when :meth:`result` asks for them."""

    def __init__(self, config: Config, *, aside: bool = True) -> None:
        self._config = config
        self._pid: int | None = None
        self._read_fd: int | None = None
        if aside and hasattr(os, "fork"):
            self._fork()

    def _fork(self) -> None:
        read_fd, write_fd = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child: answer through the pipe, then leave without the parent's exit handlers
            os.close(read_fd)
            code = 0
            try:
                answer = _answer(self._config)
                with os.fdopen(write_fd, "wb") as out:
                    out.write(answer)
            except BaseException:  # the parent reports a missing answer; the child must never return
                code = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        os.close(write_fd)
        self._pid, self._read_fd = pid, read_fd

    def result(self) -> dict[str, str]:
        """The nodes with a probe table (node -> namespace); raises what the checks raised (a WorkerSyncError)."""
        if self._pid is None or self._read_fd is None:
            from actors.preflight import startup_checks

            return startup_checks(self._config)
        with os.fdopen(self._read_fd, "rb") as answer_in:
            data = answer_in.read()
        _, status = os.waitpid(self._pid, 0)
        self._pid = self._read_fd = None
        if not data:
            how = f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else f"code {os.WEXITSTATUS(status)}"
            raise CliError(f"the start-up checks stopped without an answer ({how})", Exit.FINDINGS)
        kind, value = pickle.loads(data)
        if kind == "error":
            raise value
        return dict(value)


def _answer(config: Config) -> bytes:
    """The pickled ("ok", probe nodes) or ("error", a WorkerSyncError) of the checks."""
    from actors.preflight import startup_checks

    try:
        return pickle.dumps(("ok", startup_checks(config)))
    except WorkerSyncError as exc:
        try:
            return pickle.dumps(("error", exc))
        except Exception:  # an error whose class cannot travel: its text and code do
            return pickle.dumps(("error", CliError(str(exc), exc.exit_code)))
    except Exception as exc:  # a bug: one line for the parent to print (the traceback goes to the debug log)
        log.debug("start-up checks: unexpected error", exc_info=True)
        first_line = str(exc).splitlines()[0] if str(exc) else ""
        message = f"the start-up checks failed on an unexpected error: {type(exc).__name__}: {first_line}"
        return pickle.dumps(("error", CliError(message, Exit.FINDINGS)))
