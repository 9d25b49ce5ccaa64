"""How a command ends on an error: one line on stderr, and the exit code the error's class names
(``WorkerSyncError.exit_code``), so no command keeps its own list of errors and codes."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping

from actors.core.errors import WorkerSyncError
from config.exit_codes import Exit

#: Error class -> how a command words it; ``{message}`` is the error's text, ``{first_line}`` its first line.
Wording = Mapping[type[BaseException], str]


class CliError(WorkerSyncError):
    """A message for stderr, complete as it is, and the exit code chosen where it is raised."""

    def __init__(self, message: str, code: int = Exit.FINDINGS) -> None:
        super().__init__(message, code)
        self.message = message
        self.exit_code = code

    def __str__(self) -> str:
        return self.message


def one_line(text: str) -> str:
    """A message that spans lines (libpq's do) as one."""
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


def report(command: str, exc: BaseException, wording: Wording | None = None) -> int:
    """Print why ``command`` stops, worded by the most specific class ``wording`` names; return its exit code."""
    wording = wording or {}
    template = next((wording[kind] for kind in type(exc).__mro__ if kind in wording), "{message}")
    message = str(exc).strip() or type(exc).__name__
    text = template.format(message=message, first_line=message.splitlines()[0])
    print(f"worker-sync {command}: {one_line(text)}", file=sys.stderr)
    return getattr(exc, "exit_code", Exit.FINDINGS)


def guarded(command: str, work: Callable[[], int], wording: Wording | None = None) -> int:
    """``work()``'s exit code; a WorkerSyncError (a database driver's error too, as its engine translates it)
    or an OSError ends the command with one line instead of a traceback."""
    from actors.engines.registry import driver_errors

    try:
        with driver_errors():
            return work()
    except (WorkerSyncError, OSError) as exc:
        return report(command, exc, wording)
