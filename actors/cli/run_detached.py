"""`worker-sync run --config FILE --detached`: make sure the cluster's detached supervisor actor runs this
config, then exit 0 (the chart's RayJob entrypoint; see actors/supervisor_actor.py for why).

Idempotent, so it can run as often as anyone likes: a supervisor already running the same config (and
options) is left alone; one running another is asked to finish what is in flight and commit, then
replaced. It waits until the supervisor's process answers, not until its databases do: a supervisor that
cannot start yet waits by itself, with backoff, and says why on /readyz and in its log.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

from actors.cli.failures import CliError, report
from actors.core.errors import ConfigError, WorkerSyncError
from config import parse_config
from config.exit_codes import Exit

log = logging.getLogger("worker_sync.run")

#: How long the supervisor actor may take to be placed and answer (a head pod may still be starting).
PLACED_TIMEOUT_S = 300.0
#: How long a replaced supervisor may take to finish what is in flight.
DRAIN_TIMEOUT_S = 30.0


def run_detached(args: argparse.Namespace) -> int:
    path = Path(args.config)
    try:
        text = path.read_bytes()
    except OSError as exc:
        return report("run", ConfigError(str(path), f"cannot read the file: {exc.strerror}"))
    try:
        config = parse_config(text, source=str(path))
        from actors.cli import logs

        logs.configure(args.log_level or config.log_level)
        state = ensure(text, str(path), config.supervisor.ray_address, args.http_port, args.log_level)
    except WorkerSyncError as exc:
        return report("run", exc)
    print(json.dumps({"supervisor": "running" if state["running"] else "waiting", **state}))
    return Exit.OK


def ensure(
    text: bytes, source: str, ray_address: str | None, http_port: int | None, log_level: str | None
) -> dict[str, Any]:
    """The supervisor actor's state once it answers (SupervisorActor.state); CliError when Ray cannot be
    reached (exit 3), no node offers the supervisor's resource (exit 2) or the actor fails to start."""
    import ray
    from ray.exceptions import GetTimeoutError, RayActorError

    from actors.supervisor_actor import NAMESPACE, SUPERVISOR_NAME, SUPERVISOR_RESOURCE, SupervisorActor, identity

    try:
        ray.init(address=ray_address, namespace=NAMESPACE, log_to_driver=False, configure_logging=False)
    except ConnectionError as exc:
        raise CliError(f"cannot reach Ray: {exc}", Exit.UNAVAILABLE) from None
    if not ray.cluster_resources().get(SUPERVISOR_RESOURCE):
        raise CliError(
            f"no Ray node offers the resource `{SUPERVISOR_RESOURCE}` that places the detached supervisor: start "
            f"the head with --resources='{{\"{SUPERVISOR_RESOURCE}\": 1}}' (the chart does)",
            Exit.USAGE,
        )
    wanted = identity(text, http_port, log_level)
    existing = _find(SUPERVISOR_NAME)
    if existing is not None:
        if ray.get(existing.identity.remote(), timeout=PLACED_TIMEOUT_S) == wanted:
            log.info("supervisor: already running this configuration; nothing to do")
            return ray.get(existing.state.remote(), timeout=PLACED_TIMEOUT_S)
        log.info("supervisor: running another configuration: draining it, then replacing it")
        try:
            ray.get(existing.stop.remote(DRAIN_TIMEOUT_S), timeout=DRAIN_TIMEOUT_S + 30)
        except (RayActorError, GetTimeoutError) as exc:
            log.warning("supervisor: the one replaced did not drain (%s); stopping it anyway", type(exc).__name__)
        ray.kill(existing, no_restart=True)
        _wait_gone(SUPERVISOR_NAME)
    actor: Any = (
        ray.remote(SupervisorActor)
        .options(
            name=SUPERVISOR_NAME,
            namespace=NAMESPACE,
            lifetime="detached",
            get_if_exists=True,  # two submissions at once still make one
            max_restarts=-1,
            max_concurrency=4,  # state() answers while stop() waits for the loop
            num_cpus=0,
            resources={SUPERVISOR_RESOURCE: 1},
        )
        .remote(text, source, http_port, log_level)
    )
    try:
        state: dict[str, Any] = ray.get(actor.state.remote(), timeout=PLACED_TIMEOUT_S)
    except GetTimeoutError:
        raise CliError(f"the supervisor actor did not start within {PLACED_TIMEOUT_S:.0f}s", Exit.UNAVAILABLE) from None
    except RayActorError as exc:  # its __init__ failed: the HTTP port is taken, the token file is missing...
        raise CliError(f"the supervisor actor could not start: {_first_line(exc)}", Exit.FINDINGS) from None
    log.info("supervisor: started on node %s (pid %s)", state["node_id"][:8], state["pid"])
    return state


def _find(name: str) -> Any:
    import ray

    try:
        return ray.get_actor(name)
    except ValueError:
        return None


def _wait_gone(name: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while _find(name) is not None:
        if time.monotonic() > deadline:
            raise CliError(f"the replaced supervisor `{name}` was still registered after {timeout_s:.0f}s")
        time.sleep(0.2)


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__
