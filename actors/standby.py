"""Start the supervisor when its databases let it, and say meanwhile why it waits.

`worker-sync run` in the foreground stops at start-up when a node cannot be reached (exit 3) or refuses
what the config asks (exit 2: a missing audit schema, a failed login): a human, or the process manager,
starts it again. The detached supervisor (actors/supervisor_actor.py) has nobody to do that — on
Kubernetes the init Job may still be creating the audit schema, a database may still be starting — so
it runs the same start-up checks again with exponential backoff until they pass, serving /healthz
(alive: a liveness probe must not kill a process that only waits) and /readyz (503, with the reason on
/status and in the log) meanwhile.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import TYPE_CHECKING, Any

from actors.cli.failures import one_line
from actors.control.backoff import Backoff
from actors.core.errors import WorkerSyncError
from actors.status import Status
from config.exit_codes import Exit
from config.model import Config
from config.secrets import read_secret

if TYPE_CHECKING:
    from actors.conflict_store import Take
    from supervisor import Supervisor

log = logging.getLogger("worker_sync.standby")


class Standby:
    """What the HTTP port serves: the running supervisor, or, before it runs, why it does not yet.

    Implements the HTTP port's ``Control`` (actors/http.py) by handing each call to the supervisor once it
    runs; before that there is nothing to list and no stream to re-sync."""

    def __init__(self) -> None:
        self.current: Supervisor | None = None
        #: Why the supervisor is not running yet (None once it runs).
        self.waiting: str | None = "starting"
        self.started_at = time.time()

    def status(self) -> Status | None:
        if self.current is not None:
            return self.current.status()
        return Status(
            run_id="",
            started_at=self.started_at,
            uptime_s=round(time.time() - self.started_at, 1),
            ready=False,
            streams=[],
            shards=[],
            not_ready=[self.waiting or "starting"],
        )

    def healthy(self) -> bool:
        """A waiting process is alive and well: only a running supervisor can be unhealthy."""
        return True if self.current is None else self.current.healthy()

    def ready(self) -> bool:
        return self.current is not None and self.current.ready()

    # -- the HTTP port's Control -----------------------------------------------------------------------

    def conflict_list(self) -> list[dict[str, Any]]:
        return [] if self.current is None else self.current.conflict_list()

    def conflict_get(self, ident: str) -> dict[str, Any] | None:
        return None if self.current is None else self.current.conflict_get(ident)

    def resolve_conflict(self, ident: str, take: Take) -> dict[str, Any]:
        return self._running(ident).resolve_conflict(ident, take)

    def request_resync(self, stream: str) -> dict[str, Any]:
        return self._running(stream).request_resync(stream)

    def dead_letter_list(self) -> list[dict[str, Any]]:
        return [] if self.current is None else self.current.dead_letter_list()

    def dead_letter_get(self, ident: str) -> dict[str, Any] | None:
        return None if self.current is None else self.current.dead_letter_get(ident)

    def retry_dead_letter(self, ident: str) -> dict[str, Any]:
        return self._running(ident).retry_dead_letter(ident)

    def discard_dead_letter(self, ident: str) -> dict[str, Any]:
        return self._running(ident).discard_dead_letter(ident)

    def record_verify(self, document: Any) -> dict[str, Any]:
        if self.current is None:  # nothing keeps it yet: `verify --report` fails, and its next run reports
            raise LookupError("the supervisor is not running yet")
        return self.current.record_verify(document)

    def verify_list(self) -> list[dict[str, Any]]:
        return [] if self.current is None else self.current.verify_list()

    def _running(self, what: str) -> Supervisor:
        if self.current is None:  # the HTTP port answers 404 for an unknown name: nothing is known yet
            raise KeyError(what)
        return self.current


def http_token(config: Config) -> str | None:
    """The bearer token of the HTTP port (`http.token_file`, else `http.token_env`), None without one."""
    token = read_secret(env=None, file=config.http.token_file, what="http token")
    if token is None and config.http.token_env:
        token = os.environ.get(config.http.token_env)
    return token


def start_when_ready(config: Config, standby: Standby, stop: threading.Event, backoff: Backoff) -> Supervisor | None:
    """The supervisor, started once `run`'s start-up checks pass; they are tried again after each refusal,
    waiting ``backoff``'s delay. None when ``stop`` is set while waiting."""
    from actors.preflight import startup_checks
    from supervisor import Supervisor

    while not stop.is_set():
        try:
            supervisor = Supervisor(config, probe_nodes=startup_checks(config))
        except WorkerSyncError as exc:
            delay = backoff.failed()
            reason = one_line(str(exc)) or type(exc).__name__
            standby.waiting = f"waiting to start (attempt {backoff.failures}, next in {delay:.0f}s): {reason}"
            # Unreachable: it may come up by itself (WARNING). Refused: a human must act (ERROR), e.g. run init.
            level = logging.WARNING if exc.exit_code == Exit.UNAVAILABLE else logging.ERROR
            log.log(
                level, "supervisor: cannot start yet (attempt %d, next in %.0fs): %s", backoff.failures, delay, reason
            )
            stop.wait(delay)
            continue
        backoff.succeeded()
        supervisor.start()
        standby.current, standby.waiting = supervisor, None
        return supervisor
    return None
