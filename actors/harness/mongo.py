"""A MongoDB endpoint for tests and demos: a real deployment when one is available, else the stand-in.

In order of preference:

1. ``WORKER_SYNC_MONGO_URI`` (a real replica set, e.g. ``mongodb://user:pw@host:27017/?replicaSet=rs0``);
2. a ``mongod`` on PATH, started as a single-node replica set in a temp dir on a free port;
3. ``nx-27017`` (PyPI: a pure-Python server of the MongoDB wire protocol on SQLite), started on a free port.

``LocalMongo.endpoint.real`` says which: the stand-in lacks what real MongoDB semantics need
(``updateDescription``, pre-images, transactions, cluster times, a bounded oplog), so tests of those skip
on it with :data:`NEEDS_REAL`.

The stand-in also keeps only the last 1,000 change-log rows behind a stream's *read* point, and resumes after
a token it pruned at the oldest row left, without an error: a silent gap where real MongoDB answers 286
(ChangeStreamHistoryLost). ``history_rows`` starts it with more history kept (a test-only patch of its
retention constant), so that resume tests exercise our code rather than that limit.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import pymongo
from pymongo import uri_parser

from actors.harness.errors import HarnessError
from actors.harness.ports import LOOPBACK, free_port
from actors.harness.process import log_tail, spawn, stop_process

URI_ENV = "WORKER_SYNC_MONGO_URI"
NEEDS_REAL = f"needs a real mongod (set {URI_ENV})"
Kind = Literal["uri", "mongod", "nx-27017"]


@dataclass(frozen=True)
class MongoEndpoint:
    """Where a MongoDB deployment is; the password stays out of repr()."""

    kind: Kind
    host: str
    port: int
    replica_set: str | None = None
    username: str = ""
    password: str = field(default="", repr=False)
    auth_source: str = "admin"

    @property
    def real(self) -> bool:
        """A real MongoDB (replica set): change streams with full semantics, transactions."""
        return self.kind != "nx-27017"

    def client(self, **options: object) -> pymongo.MongoClient:
        # Options of every type: pymongo takes them as `**kwargs: Any`.
        kwargs: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "tz_aware": True,
            "uuidRepresentation": "standard",
            "serverSelectionTimeoutMS": 10_000,
        }
        if self.replica_set:
            kwargs["replicaSet"] = self.replica_set
        else:
            kwargs["directConnection"] = True
        if self.username:
            kwargs.update(username=self.username, password=self.password, authSource=self.auth_source)
        kwargs.update(options)
        return pymongo.MongoClient(**kwargs)

    @classmethod
    def from_uri(cls, uri: str) -> MongoEndpoint:
        parsed = uri_parser.parse_uri(uri)
        if len(parsed["nodelist"]) != 1:
            raise HarnessError(f"{URI_ENV}: give one host (the driver discovers the rest of the replica set)")
        host, port = parsed["nodelist"][0]
        options = parsed["options"]
        return cls(
            kind="uri",
            host=host,
            port=port,
            replica_set=options.get("replicaset"),
            username=parsed.get("username") or "",
            password=parsed.get("password") or "",
            auth_source=options.get("authsource", "admin"),
        )


#: Runs nx-27017 with ``_RESUME_RETENTION_ROWS`` set to argv[1]; exits at once if that constant is gone.
_STANDIN_WITH_HISTORY = """
import sys
import nx_27017.changestream as changestream
if not hasattr(changestream, "_RESUME_RETENTION_ROWS"):
    sys.exit("nx-27017 has no _RESUME_RETENTION_ROWS any more: its history retention cannot be raised")
changestream._RESUME_RETENTION_ROWS = int(sys.argv[1])
from nx_27017 import main
sys.argv = ["nx-27017", *sys.argv[2:]]
main()
"""


def _wait_ready(endpoint: MongoEndpoint, proc: subprocess.Popen[bytes] | None, log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if proc is not None and proc.poll() is not None:
            raise HarnessError(f"the {endpoint.kind} server exited ({proc.returncode}):\n{log_tail(log)}")
        try:
            with endpoint.client(serverSelectionTimeoutMS=500) as client:
                client.admin.command("ping")
                return
        except pymongo.errors.PyMongoError:
            if time.monotonic() > deadline:
                raise HarnessError(
                    f"the {endpoint.kind} server did not answer in {timeout_s}s:\n{log_tail(log)}"
                ) from None
            time.sleep(0.2)


class LocalMongo:
    """The endpoint as a context manager: starts (and stops) a local server unless the URI is set."""

    def __init__(self, base: Path, *, prefer: Kind | None = None, history_rows: int | None = None) -> None:
        self.base = base
        self.prefer = prefer
        self.history_rows = history_rows
        self.proc: subprocess.Popen[bytes] | None = None
        self.endpoint: MongoEndpoint | None = None

    def __enter__(self) -> MongoEndpoint:
        uri = os.environ.get(URI_ENV)
        if uri and self.prefer in (None, "uri"):
            self.endpoint = MongoEndpoint.from_uri(uri)
            _wait_ready(self.endpoint, None, self.base / "none.log", 30)
            return self.endpoint
        mongod = shutil.which("mongod")
        if mongod and self.prefer in (None, "mongod"):
            self.endpoint = self._start_mongod(mongod)
        else:
            self.endpoint = self._start_standin()
        return self.endpoint

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        if self.proc is not None:
            stop_process(self.proc, [(signal.SIGTERM, 15), (signal.SIGKILL, 5)])
            self.proc = None

    def _start_mongod(self, binary: str) -> MongoEndpoint:
        data = self.base / "mongod-data"
        data.mkdir(parents=True, exist_ok=True)
        log = self.base / "mongod.log"
        port = free_port()
        cmd = [binary, "--replSet", "rs0", "--dbpath", str(data), "--port", str(port), "--bind_ip", LOOPBACK]
        self.proc = spawn(cmd, log_path=log, run_as=None, cwd=self.base, death_signal=signal.SIGKILL)
        endpoint = MongoEndpoint(kind="mongod", host=LOOPBACK, port=port)
        _wait_ready(endpoint, self.proc, log, 60)
        with endpoint.client() as client:
            client.admin.command(
                "replSetInitiate", {"_id": "rs0", "members": [{"_id": 0, "host": f"{LOOPBACK}:{port}"}]}
            )
            deadline = time.monotonic() + 60
            while not client.admin.command("hello").get("isWritablePrimary"):
                if time.monotonic() > deadline:
                    raise HarnessError(f"mongod did not become primary:\n{log_tail(log)}")
                time.sleep(0.2)
        return MongoEndpoint(kind="mongod", host=LOOPBACK, port=port, replica_set="rs0")

    def _start_standin(self) -> MongoEndpoint:
        binary = Path(sys.executable).with_name("nx-27017")
        if not binary.exists():
            found = shutil.which("nx-27017")
            if found is None:
                raise HarnessError(
                    "no MongoDB: set WORKER_SYNC_MONGO_URI, put mongod on PATH, or `pip install nx-27017`"
                )
            binary = Path(found)
        data = self.base / "nx-data"
        data.mkdir(parents=True, exist_ok=True)
        log = self.base / "nx-27017.log"
        port = free_port()
        args = ["--data-dir", str(data), "--host", LOOPBACK, "-p", str(port)]
        args += ["--log-file", str(log), "--pid-file", str(self.base / "nx-27017.pid")]
        if self.history_rows is None:
            cmd = [str(binary), *args]
        else:  # the same server, its history retention raised (see the module docstring)
            cmd = [sys.executable, "-c", _STANDIN_WITH_HISTORY, str(self.history_rows), *args]
        self.proc = spawn(
            cmd, log_path=self.base / "nx-27017.out", run_as=None, cwd=self.base, death_signal=signal.SIGKILL
        )
        endpoint = MongoEndpoint(kind="nx-27017", host=LOOPBACK, port=port)
        _wait_ready(endpoint, self.proc, self.base / "nx-27017.out", 30)
        return endpoint
