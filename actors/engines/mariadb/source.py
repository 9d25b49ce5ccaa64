"""MariaDbSource: a MariaDB/MySQL node's binlog as a ChangeSource (snapshot, then streaming).

Where a stream starts (``changes(resume_after)``):

- ``resume_after`` is None or not resumable (``resume == ""``, i.e. a position inside a snapshot): the
  initial snapshot (snapshot.py), then the binlog from the snapshot's point. With ``snapshot=False``:
  the binlog from the server's current point, no snapshot.
- otherwise the binlog from ``resume_after.resume`` (positions.py: the end of the last completed
  transaction). Route (``resume_via="auto"``): by file:pos when that point belongs to this server (same
  ``@@server_id`` / ``@@server_uuid``) and its file still exists; by GTID when the point comes from
  another server (after a failover) and carries a GTID; otherwise the offset is lost. ``"file"`` and
  ``"gtid"`` force a route.

A binlog file that the server no longer has, or a GTID it cannot find, raises OffsetLost naming the
file and the remedy (a re-snapshot), never a silent gap.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Generator, Iterator, Sequence
from typing import Any, Literal

import pymysql

from actors.core.errors import OffsetLost, SourceMisconfigured
from actors.core.events import AddedColumn, Position
from actors.core.streams import StreamSpec
from actors.engines.base import Change
from actors.engines.mariadb import checks, snapshot, versions
from actors.engines.mariadb.binlog import BinlogStream
from actors.engines.mariadb.checks import ServerFacts
from actors.engines.mariadb.connection import ConnectParams, connect, translate
from actors.engines.mariadb.ddl import describe_columns
from actors.engines.mariadb.positions import BinlogPoint
from actors.engines.mariadb.schema import TableInfo, load_tables, split_namespace
from config.model import MySqlNode

log = logging.getLogger(__name__)

Flavor = Literal["mariadb", "mysql"]
ResumeVia = Literal["auto", "file", "gtid"]


class MariaDbSource:
    """The change stream of one MariaDB/MySQL node, for the tables named ``db.table``.

    ``server_id`` is the replica id the binlog reader announces: it must be unique among everything that
    replicates from this server at the same time (the server drops an older connection with the same id).
    """

    def __init__(
        self,
        node_name: str,
        params: ConnectParams,
        tables: Sequence[str],
        *,
        server_id: int,
        flavor: Flavor = "mariadb",
        stream: str | None = None,
        snapshot: bool = True,
        resume_via: ResumeVia = "auto",
        chunk_rows: int = 5_000,
        heartbeat_s: float = 0.5,
        progress_every_rows: int = 50_000,
        echo_table: str | None = None,
        resnapshot: bool = False,
        lean_rows: bool = True,
        fast_events: bool = True,
    ) -> None:
        for name in tables:
            split_namespace(name)
        if flavor not in ("mariadb", "mysql"):
            raise ValueError(f"flavor must be `mariadb` or `mysql`, not `{flavor}`")
        self.node = node_name
        self.params = params
        self.tables = list(dict.fromkeys(tables))
        self.server_id = server_id
        self.flavor: Flavor = flavor
        self.stream = stream or node_name
        self.snapshot = snapshot
        self.resume_via: ResumeVia = resume_via
        self.chunk_rows = chunk_rows
        self.heartbeat_s = heartbeat_s
        self.progress_every_rows = progress_every_rows
        #: Worker-Sync's echo marker table on this node, when it is in a bidirectional group.
        self.echo_table = echo_table
        #: Decode binlog rows of supported tables ourselves (actors/engines/mariadb/rows_decoder.py).
        self.lean_rows = lean_rows
        #: With lean_rows: read the common binlog events from their packets (actors/engines/mariadb/fast_events.py).
        self.fast_events = fast_events
        #: A manual re-sync: re-read every table before streaming on from the committed position.
        self.resnapshot = resnapshot
        self.subject = f"{flavor} node `{node_name}`"
        #: The last position downstream reported as applied (binlogs need no acknowledgement).
        self.acknowledged: Position | None = None
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._open: list[Any] = []  # connections and binlog streams that close() must close

    # --- ChangeSource --------------------------------------------------------------------------------------

    def check(self) -> tuple[ServerFacts, dict[str, TableInfo]]:
        """Start-up checks (checks.py): SourceMisconfigured saying exactly what to change."""
        conn = self._connect()
        try:
            return checks.run_checks(
                conn, subject=self.subject, flavor=self.flavor, user=self.params.user, tables=self.tables
            )
        except pymysql.err.MySQLError as exc:
            raise translate(exc, self.subject, "checking the server") from exc
        finally:
            self._release(conn)

    def changes(self, resume_after: Position | None, stop: threading.Event) -> Iterator[Change]:
        facts, infos = self.check()
        if resume_after is not None and resume_after.resume:
            try:
                start = BinlogPoint.decode(resume_after.resume)
            except ValueError:
                raise OffsetLost(
                    f"{self.subject}: the committed position `{resume_after.resume}` is not a binlog "
                    "position; re-snapshot (`worker-sync sync --manual --stream NAME`, or forget the stream's "
                    "offset)"
                ) from None
            via_gtid = self._route(start, facts)
            if self.resnapshot:
                if self.flavor == "mysql":
                    raise SourceMisconfigured(
                        f"{self.subject}: a re-sync needs a consistent snapshot with its binlog position, which "
                        "MySQL does not report without locks; not supported for MySQL servers"
                    )
                done = yield from self._snapshot(infos, facts, stop, after=resume_after)
                if done is None:
                    return
        elif self.snapshot:
            if self.flavor == "mysql":
                raise SourceMisconfigured(
                    f"{self.subject}: an initial snapshot of a MySQL server is not supported (MySQL has no "
                    "lock-free binlog_snapshot_* position); load the target another way and start the "
                    "stream at the current binlog position (set `snapshot: false` on the node)"
                )
            point = yield from self._snapshot(infos, facts, stop)
            if point is None:
                return
            yield None  # the snapshot is complete: let the consumer hand it on before we wait for the binlog
            start, via_gtid = point, False
        else:
            start, via_gtid = self._current_point(facts), False
        if stop.is_set() or self._closed.is_set():
            return
        binlog = BinlogStream(
            self.params,
            subject=self.subject,
            node=self.node,
            flavor=self.flavor,
            server_id=self.server_id,
            tables=dict(infos),
            reload_tables=self._load_tables,
            heartbeat_s=self.heartbeat_s,
            echo_table=self.echo_table,
            lean_rows=self.lean_rows,
            describe=self._describe,
            fast_events=self.fast_events,
        )
        self._track(binlog)
        try:
            yield from binlog.events(start, via_gtid=via_gtid, server=facts.server, stop=stop)
        finally:
            self._release(binlog)

    def acknowledge(self, upto: Position) -> None:
        """Nothing to release: the server purges binlogs by its own retention (``binlog_expire_logs_seconds``),
        whatever we have read. Keep that retention longer than the longest outage capture must survive;
        a purged position is reported as OffsetLost. Remembered for status only."""
        self.acknowledged = upto

    def close(self) -> None:
        """Idempotent, and safe from another thread than the one iterating ``changes``."""
        self._closed.set()
        with self._lock:
            resources, self._open = self._open, []
        for resource in resources:
            self._close_quietly(resource)

    # --- internals -----------------------------------------------------------------------------------------

    def _connect(self, **overrides: Any) -> pymysql.Connection:
        if self._closed.is_set():
            raise SourceMisconfigured(f"{self.subject}: the source is closed")
        conn = connect(self.params, self.subject, database="", **overrides)
        self._track(conn)
        return conn

    def _track(self, resource: Any) -> None:
        with self._lock:
            self._open.append(resource)

    def _release(self, resource: Any) -> None:
        with self._lock:
            if resource not in self._open:
                return  # close() got it
            self._open.remove(resource)
        self._close_quietly(resource)

    @staticmethod
    def _close_quietly(resource: Any) -> None:
        with contextlib.suppress(pymysql.err.MySQLError, OSError):  # already closed or broken
            resource.close()

    def _load_tables(self) -> dict[str, TableInfo]:
        conn = self._connect()
        try:
            return load_tables(conn, self.tables, flavor=self.flavor)
        finally:
            self._release(conn)

    def _describe(self, namespace: str) -> dict[str, AddedColumn]:
        """A table's columns now (for the binlog reader, when a table map shows its columns changed)."""
        conn = self._connect()
        try:
            return describe_columns(conn, namespace)
        except pymysql.err.MySQLError as exc:
            raise translate(exc, self.subject, f"reading table `{namespace}`") from exc
        finally:
            self._release(conn)

    def _binary_logs(self) -> list[str]:
        conn = self._connect()
        try:
            with conn.cursor() as cur:
                cur.execute("SHOW BINARY LOGS")
                return [row[0] for row in cur.fetchall()]
        finally:
            self._release(conn)

    def _route(self, start: BinlogPoint, facts: ServerFacts) -> bool:
        """True to resume by GTID, False by file:pos; OffsetLost when neither can work."""
        if self.resume_via == "gtid":
            if not start.gtid:
                raise OffsetLost(
                    f"{self.subject}: the committed position {start.encode()} has no GTID to resume "
                    "by; use `resume_via: auto` or re-snapshot"
                )
            return True
        files = self._binary_logs()
        have_file = start.file in files
        same_server = not start.server or start.server == facts.server
        if have_file and (same_server or self.resume_via == "file"):
            return False
        if self.resume_via == "auto" and start.gtid and facts.gtid_enabled:
            # The server checks that nothing between the GTID and its oldest binlog was purged (else 1236).
            log.warning(
                "%s: resuming by GTID %s: %s",
                self.subject,
                start.gtid,
                f"binlog file `{start.file}` is gone"
                if same_server
                else f"the committed position comes from server {start.server}, this is server {facts.server}",
            )
            return True
        if not have_file:
            raise OffsetLost(
                f"{self.subject}: the committed position {start.encode()} is gone: binlog file `{start.file}` no "
                f"longer exists on the server (purged; oldest is `{files[0] if files else 'none'}`), so the "
                "changes since then are lost to capture: re-snapshot (`worker-sync sync --manual --stream NAME`, "
                "or forget the stream's offset)"
            )
        raise OffsetLost(
            f"{self.subject}: the committed position {start.encode()} belongs to server {start.server}, this is "
            f"server {facts.server}, and it has no GTID to find the same point here: re-snapshot "
            "(`worker-sync sync --manual --stream NAME`, or forget the stream's offset)"
        )

    def _current_point(self, facts: ServerFacts) -> BinlogPoint:
        conn = self._connect()
        try:
            with conn.cursor() as cur:
                try:
                    cur.execute("SHOW MASTER STATUS")
                except pymysql.err.ProgrammingError as exc:  # MySQL 8.4 removed it
                    if exc.args[0] != 1064:
                        raise
                    cur.execute("SHOW BINARY LOG STATUS")
                row = cur.fetchone()
                if row is None:
                    raise SourceMisconfigured(f"{self.subject}: binary logging is off; start the server with `log-bin`")
                file, pos = row[0], int(row[1])
                if self.flavor == "mariadb":
                    cur.execute("SELECT BINLOG_GTID_POS(%s, %s)", (file, pos))
                    gtid_row = cur.fetchone()
                    assert gtid_row is not None  # a SELECT without FROM returns one row
                    gtid = gtid_row[0] or ""
                else:  # the same row holds the executed GTID set, read atomically with file:pos
                    gtid = (row[4] or "").replace("\n", "") if len(row) > 4 else ""
        except pymysql.err.MySQLError as exc:
            raise translate(exc, self.subject, "reading the binlog position") from exc
        finally:
            self._release(conn)
        return BinlogPoint(file, pos, gtid, facts.server)

    def _snapshot(
        self, infos: dict[str, TableInfo], facts: ServerFacts, stop: threading.Event, after: Position | None = None
    ) -> Generator[Change, None, BinlogPoint | None]:
        """The tables as of a consistent snapshot; ``after``: positioned right after it (a manual re-sync,
        see snapshot.read_tables), else at the snapshot's own binlog point (the initial snapshot)."""
        conn = self._connect()
        try:
            point = snapshot.begin(conn, server=facts.server)
            done = yield from snapshot.read_tables(
                conn,
                point,
                [infos[name] for name in self.tables],
                subject=self.subject,
                node=self.node,
                engine=self.flavor,
                stop=stop,
                chunk_rows=self.chunk_rows,
                progress_every_rows=self.progress_every_rows,
                follows=after,
            )
        except pymysql.err.MySQLError as exc:
            if self._closed.is_set():
                return None
            raise translate(exc, self.subject, "reading the initial snapshot") from exc
        finally:
            self._release(conn)
        return point if done else None


def source_for_node(spec: StreamSpec, password: str | None) -> MariaDbSource:
    """The capture source of a stream whose node is a MySqlNode (see actors.engines.registry)."""
    node = spec.node
    if not isinstance(node, MySqlNode):
        raise TypeError(f"stream `{spec.stream}`: node `{spec.node_name}` is not a MariaDB/MySQL node")
    return MariaDbSource(
        spec.node_name,
        ConnectParams.for_node(node, password),
        spec.tables,
        server_id=node.server_id,
        flavor=node.flavor,
        stream=spec.stream,
        snapshot=node.snapshot,
        chunk_rows=spec.snapshot_chunk_rows,
        resnapshot=spec.resnapshot,
        echo_table=f"{node.database}.{versions.ECHO}" if spec.echo_marker else None,
    )
