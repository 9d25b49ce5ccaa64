"""What every throwaway local server shares: directories, start with port retries, readiness, stop.

Layout: `base_dir` (the caller's) holds server.log; data, sockets and config live in a private home under
/tmp (see homes.py for why).

Start is split in phases so local_servers() can run the slow, run-to-completion set-up (initdb,
mariadb-install-db) of two servers in parallel threads, yet launch the long-running processes from the
calling thread (see process.py for why that matters).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Self

from actors.harness import homes, live
from actors.harness.endpoint import Credentials, Endpoint
from actors.harness.errors import HarnessError
from actors.harness.packages import Requirement, ensure_installed
from actors.harness.ports import LOOPBACK, free_port
from actors.harness.process import RunAs, log_since, log_tail, spawn, stop_process
from actors.harness.provision import least_privilege_credentials, new_password, provision

_PORT_ATTEMPTS = 3


class LocalServer(ABC):
    """A server of one engine; `base_dir` is its own directory (for server.log)."""

    engine: ClassVar[str]
    os_account: ClassVar[str]  # the account it runs as when we are root
    admin_user: ClassVar[str]
    death_signal: ClassVar[int]  # what the kernel sends it when we die
    stop_steps: ClassVar[Sequence[tuple[int, float]]]  # (signal, grace seconds) for a clean stop
    maintenance_database: ClassVar[str]  # exists right after initialization; the admin connects there

    def __init__(
        self,
        base_dir: str | os.PathLike[str],
        *,
        settings: Mapping[str, str] | None = None,
        start_timeout_s: float = 60.0,
        keep_data: bool = False,
    ) -> None:
        """`settings` override or add server settings; `keep_data` keeps the home (data, config) after
        stop(); the log in `base_dir` is always kept."""
        self.base_dir = Path(base_dir).resolve()
        self.settings = dict(settings or {})
        self.start_timeout_s = start_timeout_s
        self.keep_data = keep_data
        self.admin = Credentials(self.admin_user, new_password())
        self.capture, self.apply = least_privilege_credentials()
        self.run_as: RunAs | None = None  # known after prepare(): the account may come with the package
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._endpoint: Endpoint | None = None
        self._home: Path | None = None
        self._log_offset = 0

    # --- public -------------------------------------------------------------------------------------------

    @property
    def home(self) -> Path:
        """The private directory under /tmp with data/ and run/ (sockets, pid file); exists once prepared."""
        if self._home is None:
            raise HarnessError(f"{self.engine} in {self.base_dir} is not prepared")
        return self._home

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def log_path(self) -> Path:
        return self.base_dir / "server.log"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def endpoint(self) -> Endpoint:
        if self._endpoint is None:
            raise HarnessError(f"{self.engine} in {self.base_dir} is not started")
        return self._endpoint

    def start(self) -> Endpoint:
        """Install what is missing, initialize, launch, wait until it accepts connections, create users."""
        if self._endpoint is not None:
            return self._endpoint
        try:
            self.prepare()
            self.launch()
            self.wait_ready()
            return self.provision()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the server (clean shutdown, escalating to SIGKILL) and remove its data unless keep_data.
        Idempotent; the log stays for post-mortems."""
        proc, self._proc = self._proc, None
        self._endpoint = None
        if proc is not None:
            stop_process(proc, self.stop_steps)
        live.unregister(self)
        home, self._home = self._home, None
        if home is None:
            return
        shutil.rmtree(home / "run", ignore_errors=True)  # stale sockets, pid file, a secret left by a failed start
        if self.keep_data:
            homes.keep(home)
        else:
            shutil.rmtree(home, ignore_errors=True)

    def shutdown(self, sig: int, timeout_s: float = 60.0) -> float:
        """Send ``sig`` to the running server (PostgreSQL: SIGINT is ``pg_ctl stop -m fast``) and wait for it
        to exit, keeping its data and port for :meth:`relaunch`; returns the seconds it took. HarnessError
        when it is still running after ``timeout_s`` (it is then left running)."""
        proc = self._proc
        if proc is None:
            raise HarnessError(f"{self.engine} in {self.base_dir} is not running")
        started = time.monotonic()
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise HarnessError(
                f"{self.engine} did not stop within {timeout_s}s of signal {sig}; last lines of "
                f"{self.log_path}:\n{log_tail(self.log_path)}"
            ) from None
        self._proc = None
        return time.monotonic() - started

    def relaunch(self) -> Endpoint:
        """Start the server again on the same data and port after :meth:`shutdown`."""
        if self._proc is not None:
            raise HarnessError(f"{self.engine} in {self.base_dir} is still running")
        self.launch(port=self.port)
        self.wait_ready()
        return self.endpoint

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.base_dir)!r}, port={self.port}, pid={self.pid})"

    # --- phases (local_servers() drives them for two servers at once) -------------------------------------

    def prepare(self) -> None:
        """Packages, directories and the initial data directory; may run in a worker thread."""
        if self._home is not None:
            return
        ensure_installed(self.requirements())
        self.run_as = RunAs.for_server(self.os_account)
        self.base_dir.mkdir(parents=True, exist_ok=True)
        homes.sweep_stale_homes()
        self._home = homes.make_home(self.engine)
        self.data_dir.mkdir(mode=0o700)
        self.run_dir.mkdir(mode=0o700)
        if self.run_as is not None:
            for path in (self.home, self.data_dir, self.run_dir):
                self.run_as.chown(path)
        with open(self.log_path, "a") as log:
            log.write(f"\n# {type(self).__name__}: data and sockets in {self.home}\n")
        self.initialize()

    def launch(self, port: int | None = None) -> None:
        """Start the server process on ``port`` (default: a fresh one); call from a thread that outlives the
        server."""
        self.port = free_port() if port is None else port
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self._proc = spawn(
            self.command(),
            log_path=self.log_path,
            run_as=self.run_as,
            cwd=self.home,
            death_signal=self.death_signal,
        )
        live.register(self)

    def wait_ready(self) -> None:
        """Wait until the admin can log in; relaunch on another port if this one was taken meanwhile."""
        attempts = 1
        deadline = time.monotonic() + self.start_timeout_s
        while True:
            proc = self._proc
            if proc is None:
                raise HarnessError(f"{self.engine} in {self.base_dir} was not launched")
            if proc.poll() is not None:
                if "Address already in use" in log_since(self.log_path, self._log_offset) and (
                    attempts < _PORT_ATTEMPTS
                ):
                    attempts += 1
                    self.launch()
                    continue
                raise HarnessError(
                    f"{self.engine} exited with code {proc.returncode} while starting on {LOOPBACK}:{self.port};"
                    f" last lines of {self.log_path}:\n{log_tail(self.log_path)}"
                )
            if self.accepts_connections():
                return
            if time.monotonic() > deadline:
                raise HarnessError(
                    f"{self.engine} did not accept connections on {LOOPBACK}:{self.port} within "
                    f"{self.start_timeout_s}s; last lines of {self.log_path}:\n{log_tail(self.log_path)}"
                )
            time.sleep(0.1)

    def provision(self) -> Endpoint:
        """Create the least-privilege users and the first database; then the endpoint is usable."""
        endpoint = Endpoint(
            engine=self.engine,
            host=LOOPBACK,
            port=self.port,
            database=self.maintenance_database,
            admin=self.admin,
            capture=self.capture,
            apply=self.apply,
        )
        self._endpoint = provision(endpoint)
        return self._endpoint

    # --- engine specifics ---------------------------------------------------------------------------------

    @abstractmethod
    def requirements(self) -> list[Requirement]: ...

    @abstractmethod
    def initialize(self) -> None:
        """Create the data directory's initial contents (initdb / mariadb-install-db)."""

    @abstractmethod
    def command(self) -> list[str]:
        """The server command line for self.port; may write config files first."""

    @abstractmethod
    def accepts_connections(self) -> bool: ...

    # --- helpers ------------------------------------------------------------------------------------------

    @property
    def run_dir(self) -> Path:
        """Server-owned scratch: sockets, pid file, one-shot secrets files."""
        return self.home / "run"

    @property
    def socket_dir(self) -> Path:
        """Short by construction (/tmp/ws-harness-<engine>-XXXXXXXX/run): Unix socket paths max ~107 bytes."""
        return self.run_dir

    def write_private(self, path: Path, text: str) -> None:
        """A file only the server account can read (passwords for initdb / init-file)."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(text)
        if self.run_as is not None:
            self.run_as.chown(path)
