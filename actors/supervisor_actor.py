"""The supervisor as a detached, named Ray actor that Ray itself keeps running.

Why an actor and not a driver: a Ray job's driver that dies (kill -9, OOM) takes its actors with it and
nothing starts it again; KubeRay stops managing a RayJob once its job ends. An actor created with
``lifetime="detached"`` and ``max_restarts=-1`` outlives the job that created it, and Ray starts a new
process for it — running ``__init__`` again, with the same arguments — whenever its process dies. The
capture, applier and audit actors it creates are owned by it, so they die with it (Ray's ownership) and
the new supervisor creates fresh ones that resume from the committed positions in ``state_dir``.

It asks for the custom resource ``worker-sync-supervisor``, which only the head node offers (the chart's
head `rayStartParams.resources`): Ray places it, and every restart, on the head, where ``state_dir``,
the checkpoint export volume and the Service's port are. With GCS fault tolerance (the chart's Redis),
a restarted head pod recovers the actor table and Ray starts the actor again on the new head.

`worker-sync run --detached` (actors/cli/run_detached.py; the chart's RayJob entrypoint) creates it
idempotently: a supervisor of the same configuration is left alone, one of another is drained and
replaced.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from typing import Any

from actors.control.backoff import Backoff
from actors.standby import Standby, http_token, start_when_ready
from config import parse_config
from config.exit_codes import Exit

log = logging.getLogger("worker_sync.supervisor_actor")

#: The actor's name and Ray namespace: there is one supervisor per Ray cluster.
SUPERVISOR_NAME = "worker-sync-supervisor"
NAMESPACE = "worker-sync"
#: The custom resource only the head offers (one unit): the supervisor runs there, and only once.
SUPERVISOR_RESOURCE = "worker-sync-supervisor"


def identity(config_text: bytes, http_port: int | None, log_level: str | None) -> str:
    """What makes two supervisors the same: the config file's bytes and the `run` options."""
    digest = hashlib.sha256(config_text)
    digest.update(f"\0{http_port}\0{log_level}".encode())
    return digest.hexdigest()


class SupervisorActor:
    """Serves the HTTP port at once, then starts the supervisor when its databases let it (actors/standby.py)
    and runs its loop in a thread. A supervisor that stops on an error ends the process: Ray starts a new
    one, and the actors this one created die with it."""

    def __init__(self, config_text: bytes, source: str, http_port: int | None, log_level: str | None) -> None:
        from actors.cli import logs
        from actors.http import StatusServer

        config = parse_config(config_text, source=source)
        logs.configure(log_level or config.log_level)
        self._identity = identity(config_text, http_port, log_level)
        self._config = config
        self._stop = threading.Event()
        self._standby = Standby()
        port = config.http.port if http_port is None else http_port
        self._server = StatusServer(
            config.http.host,
            port,
            status=self._standby.status,
            healthy=self._standby.healthy,
            ready=self._standby.ready,
            token=http_token(config),
            control=self._standby,
            cert_file=config.http.tls_cert_file,
            key_file=config.http.tls_key_file,
        )
        self._server.start()
        log.info(
            "http: serving /healthz /readyz /status /metrics on %s://%s:%d",
            self._server.scheme,
            config.http.host,
            self._server.port,
        )
        self._thread = threading.Thread(target=self._keep, name="supervisor", daemon=True)
        self._thread.start()

    def identity(self) -> str:
        return self._identity

    def state(self) -> dict[str, Any]:
        """Where it runs and whether the pipeline runs yet (``waiting`` says why not)."""
        import ray

        return {
            "pid": os.getpid(),
            "node_id": ray.get_runtime_context().get_node_id(),
            "http_port": self._server.port,
            "running": self._standby.current is not None,
            "waiting": self._standby.waiting,
            "ready": self._standby.ready(),
        }

    def stop(self, timeout_s: float = 30.0) -> bool:
        """Finish what is in flight and commit it (as SIGTERM does to `run`); True when the loop ended."""
        self._stop.set()
        if self._standby.current is not None:
            self._standby.current.stop_requested.set()
        self._thread.join(timeout_s)
        self._server.stop()
        return not self._thread.is_alive()

    def _keep(self) -> None:
        settings = self._config.supervisor
        backoff = Backoff(settings.restart_backoff_initial_s, min(settings.restart_backoff_max_s, 30.0))
        try:
            supervisor = start_when_ready(self._config, self._standby, self._stop, backoff)
            if supervisor is not None:
                supervisor.run()
                return
        except BaseException as exc:  # any cause: the process ends and Ray starts it again (see _restart)
            self._restart(exc)
        if not self._stop.is_set():  # pragma: no cover - start_when_ready returns None only when stopping
            self._restart(RuntimeError("the supervisor loop ended"))

    def _restart(self, exc: BaseException) -> None:
        """End the process so that Ray starts a fresh one (and the actors this one owns die with it), after
        a pause: Ray itself restarts at once, and a cause that persists would otherwise spin."""
        delay = self._config.supervisor.restart_backoff_initial_s
        log.debug("supervisor stopped", exc_info=exc)
        first_line = str(exc).splitlines()[0] if str(exc) else ""
        log.error(
            "supervisor stopped: %s: %s; the process ends and Ray starts it again in %.0fs",
            type(exc).__name__,
            first_line,
            delay,
        )
        time.sleep(delay)
        logging.shutdown()
        os._exit(Exit.FINDINGS)
