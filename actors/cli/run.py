"""`worker-sync run --config FILE`: the sync pipeline in the foreground until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from actors.cli.failures import report
from actors.core.errors import ConfigError, WorkerSyncError
from config import load_config
from config.exit_codes import Exit
from config.secrets import read_secret

log = logging.getLogger("worker_sync.run")

#: Where Ray unpacks a submitted job's `--working-dir`: the driver's current directory under `ray job submit`.
RAY_JOB_PACKAGES = f"{os.sep}runtime_resources{os.sep}working_dir_files{os.sep}"


def check_state_dir(state_dir: str, cwd: str) -> None:
    """Refuse a relative `state_dir` in a Ray job's working directory. That directory is the job's package:
    Ray deletes and unpacks it again as the driver joins (the driver's current directory is then gone) and
    removes it when the job ends, so the committed positions kept there would be lost."""
    if not os.path.isabs(state_dir) and RAY_JOB_PACKAGES in cwd + os.sep:
        raise ConfigError(
            "supervisor.state_dir",
            f"`{state_dir}` is relative, and this driver runs in a Ray job's working directory, which Ray replaces "
            "as the driver joins and removes when the job ends: set an absolute path on storage that outlives the "
            "job (and that the next job's driver sees)",
        )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="the YAML config file")
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="overrides `log_level`")
    parser.add_argument("--http-port", type=int, help="overrides `http.port` (0 picks a free port)")
    parser.add_argument(
        "--detached",
        action="store_true",
        help="make sure the Ray cluster's detached supervisor actor runs this config, then exit (Ray restarts it; "
        "it waits for unreachable databases): what the Helm chart's RayJob runs",
    )


def run(args: argparse.Namespace) -> int:
    if getattr(args, "detached", False):
        from actors.cli.run_detached import run_detached

        return run_detached(args)
    try:
        config = load_config(args.config)
        check_state_dir(config.supervisor.state_dir, os.getcwd())
    except ConfigError as exc:
        return report("run", exc)
    from actors.cli import logs

    logs.configure(args.log_level or config.log_level)
    from actors.cli._parallel_checks import ParallelChecks

    # The start-up checks (a refused login, grant or table is exit 2, an unreachable node exit 3). Joining a
    # cluster takes ~0.2 s: they run in a child process meanwhile, and the actors are created as soon as both
    # are done. A local Ray (no `ray_address`) takes seconds to start: only once they passed.
    address = config.supervisor.ray_address
    checks = ParallelChecks(config, aside=address is not None)
    from supervisor import RayUnreachable, Supervisor, install_signal_handlers, join_ray

    joined_ray_s: float | None = None
    ray_error: ConnectionError | None = None
    try:
        if address is None:
            probe_nodes = checks.result()
        try:
            joined_ray_s = join_ray(address)
        except ConnectionError as exc:  # reported once the checks have answered: their findings come first
            ray_error = exc
        if address is not None:
            probe_nodes = checks.result()
        supervisor = Supervisor(config, probe_nodes=probe_nodes)
        token = read_secret(env=None, file=config.http.token_file, what="http token")
        if token is None and config.http.token_env:
            token = os.environ.get(config.http.token_env)
    except WorkerSyncError as exc:
        return report("run", exc)
    if ray_error is not None:
        print(f"worker-sync run: cannot reach Ray: {ray_error}", file=sys.stderr)
        return Exit.UNAVAILABLE
    from actors.http import StatusServer

    port = config.http.port if args.http_port is None else args.http_port
    try:
        server = StatusServer(
            config.http.host,
            port,
            status=supervisor.status,
            healthy=supervisor.healthy,
            ready=supervisor.ready,
            token=token,
            control=supervisor,
            cert_file=config.http.tls_cert_file,
            key_file=config.http.tls_key_file,
        )
    except WorkerSyncError as exc:  # the TLS certificate or key cannot be loaded
        return report("run", exc)
    except OSError as exc:
        print(f"worker-sync run: cannot listen on {config.http.host}:{port}: {exc.strerror}", file=sys.stderr)
        return Exit.UNAVAILABLE
    supervisor.start(joined_ray_s)
    server.start()
    log.info(
        "http: serving /healthz /readyz /status /metrics on %s://%s:%d", server.scheme, config.http.host, server.port
    )
    install_signal_handlers(supervisor)
    try:
        supervisor.run()
    except WorkerSyncError as exc:  # one a human must act on (e.g. foreign entries in the audit log)
        log.error("supervisor stopped: %s", exc)
        return exc.exit_code
    except RayUnreachable as exc:  # the Ray node or cluster went away: a restart (the chart's) brings it back
        log.error("supervisor stopped: %s", exc)
        return Exit.UNAVAILABLE
    except Exception as exc:  # a bug: one clear line (the traceback goes to the debug log), never only a traceback
        log.debug("supervisor stopped on an unexpected error", exc_info=True)
        first_line = str(exc).splitlines()[0] if str(exc) else ""
        log.error("supervisor stopped on an unexpected error: %s: %s", type(exc).__name__, first_line)
        return Exit.FINDINGS
    finally:
        server.stop()
    return Exit.OK
