"""Stop every running local server when the interpreter exits or receives SIGTERM.

Context managers and pytest fixture teardown cover normal exits and Ctrl-C (KeyboardInterrupt); atexit
covers a forgotten stop(); the SIGTERM handler covers `kill` and CI cancellation, which by default end
Python without running either. After stopping the servers it re-delivers SIGTERM, so the process still
ends the way its sender expects. A SIGKILL is covered by the kernel (PR_SET_PDEATHSIG, see process.py).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import threading
from types import FrameType
from typing import Protocol


class Stoppable(Protocol):
    def stop(self) -> None: ...


_lock = threading.RLock()
_live: list[Stoppable] = []
_installed = False
_previous_sigterm: signal.Handlers | object = signal.SIG_DFL


def register(server: Stoppable) -> None:
    with _lock:
        _install_once()
        if server not in _live:
            _live.append(server)


def unregister(server: Stoppable) -> None:
    with _lock:
        if server in _live:
            _live.remove(server)


def stop_all() -> None:
    """Stop the live servers, newest first."""
    with _lock:
        servers = list(reversed(_live))
    for server in servers:
        with contextlib.suppress(Exception):  # best effort: one failure must not keep the others running
            server.stop()


def _install_once() -> None:
    global _installed, _previous_sigterm
    if _installed:
        return
    _installed = True
    atexit.register(stop_all)
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers can only be set from the main thread
    current = signal.getsignal(signal.SIGTERM)
    if current is signal.SIG_IGN:
        return
    _previous_sigterm = current
    signal.signal(signal.SIGTERM, _on_sigterm)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    stop_all()
    previous = _previous_sigterm
    if callable(previous):
        previous(signum, frame)
        return
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)
