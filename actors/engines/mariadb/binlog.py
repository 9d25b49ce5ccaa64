"""The streaming reader: a server's binlog from a transaction boundary, as ChangeEvents and TxnEnds.

Reading mode. ``blocking=True`` with a server heartbeat every ``heartbeat_s``: the server pushes events as
they are committed, and when idle sends a heartbeat, so the loop sees ``stop`` at least that often.
(``blocking=False`` with MariaDB GTIDs loops forever on "Lost connection" after a transaction of 5,000+
rows with mysql-replication 1.0.17: see FACTS.md. Blocking reads are fine here: the pump iterates us in
its own thread.)

Events. With ``lean_rows`` (and ``fast_events``, both the default) a ``fast_events.FastReader`` reads the
events every transaction is made of (rows, XID, MariaDB GTID; table maps of known table ids or of tables
filtered out, which it drops as the library does) straight from their packets and hands ``_translate`` small
objects (RowsSlice, Xid, MariadbGtid) in place of the library's; everything else (connecting, the dump
command, rotations, format descriptions, heartbeats, queries, new table maps, rows of tables the library
decodes) is mysql-replication's, as with ``lean_rows=False``.

Reconnects. On a lost connection (2013/2006) mysql-replication silently reconnects, and in GTID mode it
re-sends the GTID it *started* from, replaying everything since. We refuse that: our connection factory
raises SourceUnavailable on any second stream connection, and the caller restarts from its committed
position, where the pump drops what was already delivered.

Transactions. MariaDB: a GTID event opens a transaction (it stands for BEGIN, unless flagged standalone,
as for DDL); an XID event (InnoDB) or a "COMMIT" query (non-transactional engines) closes it. MySQL: a
GTID event, then "BEGIN", rows, XID; DDL is a GTID event plus one query. Every transaction, also one
touching no captured table, ends in a TxnEnd, so the resume point keeps up with the binlog even when
the captured tables are quiet (and the server may purge old files).

Idle. After a transaction end, when no more bytes wait on the socket, and on every heartbeat, we yield
None ("nothing more for now"): the pump then hands on the partial chunk it holds, so a lone change
reaches downstream in milliseconds rather than at the next heartbeat.

Commit time. Binlog event timestamps are whole seconds: ``commit_time_us`` is the timestamp of the
transaction's first event (GTID, or BEGIN without GTIDs) times 1e6, the same for every event of the
transaction.
"""

from __future__ import annotations

import contextlib
import logging
import select
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pymysql
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.event import (
    GtidEvent,
    HeartbeatLogEvent,
    MariadbGtidEvent,
    QueryEvent,
    RotateEvent,
    XidEvent,
)
from pymysqlreplication.row_event import DeleteRowsEvent, TableMapEvent, UpdateRowsEvent, WriteRowsEvent

from actors.core.batches import TxnEnd
from actors.core.errors import OffsetLost, SourceMisconfigured, SourceUnavailable
from actors.core.events import AddedColumn, ChangeEvent, Op, Position, Row, added_column_row
from actors.core.schema_changes import ColumnWatch
from actors.engines.base import Change
from actors.engines.mariadb.connection import ConnectParams, connect_kwargs, translate
from actors.engines.mariadb.fast_events import FastReader, MariadbGtid, RowsSlice, Xid
from actors.engines.mariadb.positions import (
    END_OF_TRANSACTION,
    BinlogPoint,
    file_sequence,
    gtid_state,
    order,
    order_prefix,
)
from actors.engines.mariadb.rows_decoder import LeanRows
from actors.engines.mariadb.schema import TableInfo, split_namespace
from actors.engines.mariadb.statements import truncated_table
from actors.engines.mariadb.values import RowPlan, binlog_plan

log = logging.getLogger(__name__)

_EVENTS = [
    MariadbGtidEvent,
    GtidEvent,
    QueryEvent,
    XidEvent,
    RotateEvent,
    HeartbeatLogEvent,
    TableMapEvent,
    WriteRowsEvent,
    UpdateRowsEvent,
    DeleteRowsEvent,
]
_MARIADB_STANDALONE = 0x01  # MariaDB GTID flag FL_STANDALONE: no BEGIN/COMMIT around it (DDL)
_BINLOG_GONE = 1236  # ER_MASTER_FATAL_ERROR_READING_BINLOG: purged file, unknown GTID, ...
#: A blocking read that sees nothing, not even a heartbeat, for this long means the connection is dead.
_READ_TIMEOUT_S = 30.0
#: How long downstream may hold the stream still before the server gives up on us (seconds).
_BACKPRESSURE_TOLERANCE_S = 3600


def _nothing_waiting(reader: BinLogStreamReader) -> bool:
    """Whether no more binlog bytes wait in the socket: the stream has caught up with the server.

    A guess on the safe side: data already pulled into pymysql's read buffer is not seen, which costs
    the consumer one early hand-on, never latency.
    """
    sock = getattr(getattr(reader, "_stream_connection", None), "_sock", None)
    if sock is None:
        return True
    try:
        return not select.select([sock], [], [], 0)[0]
    except (OSError, ValueError):  # closed under us
        return True


class _Closed(Exception):
    """close() was called: end the stream quietly."""


@dataclass(frozen=True)
class _TablePlan:
    namespace: str
    primary_key: tuple[str, ...]
    rows: RowPlan
    #: Rows decoded from the event's bytes (actors/engines/mariadb/rows_decoder.py); None: by the library.
    lean: LeanRows | None = None
    #: Columns of the table map the table no longer has (a replay after they were dropped): left out.
    gone: frozenset[str] = frozenset()

    def images(self, event: Any, kind: type) -> Iterator[tuple[Op, Row | None, Row | None, Row]]:
        """(op, before, after, the row the key is read from) of each row of a rows event."""
        if self.lean is not None:
            update = kind is UpdateRowsEvent
            for image, after in self.lean.images(event, update=update):
                if after is not None:
                    yield Op.UPDATE, image, after, after
                elif kind is WriteRowsEvent:
                    yield Op.INSERT, None, image, image
                else:
                    yield Op.DELETE, image, None, image
            return
        rows = self.rows
        for row in event.rows:
            if kind is UpdateRowsEvent:
                before = rows.apply(row["before_values"], row["before_none_sources"])
                after = rows.apply(row["after_values"], row["after_none_sources"])
                yield Op.UPDATE, before, after, after
            elif kind is WriteRowsEvent:
                after = rows.apply(row["values"], row["none_sources"])
                yield Op.INSERT, None, after, after
            else:
                before = rows.apply(row["values"], row["none_sources"])
                yield Op.DELETE, before, None, before


#: ``origin`` of changes Worker-Sync itself wrote (the transaction carried the echo marker).
ECHO_ORIGIN = "worker-sync"
_ECHO_PLAN = _TablePlan("", (), None)  # type: ignore[arg-type]  # marks the echo table: never decoded


class BinlogStream:
    """One pass over the binlog from a point; build a new one to restart."""

    def __init__(
        self,
        params: ConnectParams,
        *,
        subject: str,
        node: str,
        flavor: str,
        server_id: int,
        tables: dict[str, TableInfo],
        reload_tables: Callable[[], dict[str, TableInfo]],
        heartbeat_s: float = 0.5,
        echo_table: str | None = None,
        lean_rows: bool = True,
        describe: Callable[[str], Mapping[str, AddedColumn]] | None = None,
        fast_events: bool = True,
    ) -> None:
        """``echo_table`` ("database.table"): Worker-Sync's echo marker table (actors/engines/mariadb/
        versions.py); the changes of a transaction that writes it are echoes (``origin`` set). ``lean_rows``:
        decode rows of supported tables ourselves (False: always through mysql-replication). ``fast_events``
        (with ``lean_rows``): read the common events from their packets (actors/engines/mariadb/fast_events.py)
        rather than through mysql-replication's event objects.

        ``describe`` reads a table's columns now, as AddedColumns: called when a table map's columns differ
        from those seen so far (actors.core.schema_changes); columns added then go out as Op.SCHEMA events."""
        self._describe = describe
        self._watch = ColumnWatch(subject, {ns: [c.name for c in info.columns] for ns, info in tables.items()})
        #: (namespace, column) added, seen in the last table map: handed out before its rows.
        self._added: list[tuple[str, AddedColumn]] = []
        self._params = params
        self._subject = subject
        self._node = node
        self._flavor = flavor
        self._server_id = server_id
        self._tables = tables
        self._reload_tables = reload_tables
        self._heartbeat_s = heartbeat_s
        self._echo_table = echo_table
        self._lean_rows = lean_rows
        self._fast_events = lean_rows and fast_events
        self._closed = threading.Event()
        self._reader: BinLogStreamReader | None = None
        self._stream_connections = 0
        self._lock = threading.Lock()
        # A DDL went by: keys or JSON columns may have changed; read information_schema again once.
        self._stale = False

    # --- connection --------------------------------------------------------------------------------------

    def _connect(self, **settings: Any) -> pymysql.Connection:
        """mysql-replication's connection factory: refuses its silent reconnect (see module doc)."""
        if self._closed.is_set():
            raise _Closed
        if "db" in settings:  # its control connection, with pymysql's deprecated name for `database`
            settings["database"] = settings.pop("db")
        stream = settings.get("database") != "information_schema"
        if stream:
            self._stream_connections += 1
            if self._stream_connections > 1:
                raise SourceUnavailable(
                    f"{self._subject}: lost the binlog connection (server restart or "
                    "network failure); restart from the committed position"
                )
        try:
            conn = pymysql.connect(**settings)
            if stream:
                # Back-pressure: while downstream is full we stop reading, and the server's dump thread
                # blocks writing to us; its default net_write_timeout (60 s) would then drop us.
                with conn.cursor() as cur:
                    cur.execute(f"SET SESSION net_write_timeout = {_BACKPRESSURE_TOLERANCE_S}")
            return conn
        except (pymysql.err.MySQLError, OSError) as exc:
            raise translate(exc, self._subject, "connecting to stream the binlog") from exc

    def _open(self, start: BinlogPoint, via_gtid: bool) -> BinLogStreamReader:
        settings = connect_kwargs(self._params, database="", read_timeout_s=_READ_TIMEOUT_S)
        settings.pop("autocommit", None)
        namespaces = [*self._tables, *([self._echo_table] if self._echo_table else [])]
        schemas = sorted({split_namespace(n)[0] for n in namespaces})
        names = sorted({split_namespace(n)[1] for n in namespaces})
        if via_gtid:
            position: dict[str, Any] = {"auto_position": start.gtid, "is_mariadb": self._flavor == "mariadb"}
        else:
            # is_mariadb must stay False here: with it, mysql-replication ignores log_file/log_pos.
            position = {"log_file": start.file, "log_pos": start.pos, "resume_stream": True}
        reader_class = FastReader if self._fast_events else BinLogStreamReader
        return reader_class(
            connection_settings=settings,
            server_id=self._server_id,
            blocking=True,
            slave_heartbeat=self._heartbeat_s,
            only_events=_EVENTS,
            # Pre-filters (by name only; the exact db.table match is ours): rows of other tables are
            # skipped before decoding, which is where the time goes.
            only_schemas=schemas,
            only_tables=names,
            pymysql_wrapper=self._connect,
            enable_logging=False,
            # Parse a table map only the first time its table id is seen. MariaDB and MySQL give a table
            # a new id whenever its definition is (re)loaded, DDL included, and never reuse one while the
            # server runs (mysql-replication forgets all ids at each binlog rotation, which a restart
            # implies). With one table map per statement, this halves the decoding time of small
            # transactions.
            freeze_schema=True,
            **position,
        )

    def close(self) -> None:
        """Safe from another thread: the reading thread notices within one heartbeat."""
        self._closed.set()
        with self._lock:
            reader, self._reader = self._reader, None
        if reader is not None:
            with contextlib.suppress(pymysql.err.MySQLError, OSError):  # already broken: nothing to release
                reader.close()

    # --- events ------------------------------------------------------------------------------------------

    def events(self, start: BinlogPoint, *, via_gtid: bool, server: str, stop: threading.Event) -> Iterator[Change]:
        """Changes after ``start`` until ``stop`` is set or close() is called. ``server`` identifies the
        server we stream from (file:pos in the resume points we hand out belong to it)."""
        reader = self._open(start, via_gtid)
        with self._lock:
            if self._closed.is_set():
                reader.close()
                return
            self._reader = reader
        log.info(
            "%s: streaming the binlog from %s (by %s)",
            self._subject,
            start.encode(),
            "GTID" if via_gtid else "file:pos",
        )
        try:
            yield from self._translate(reader, start, server, stop)
        except _Closed:
            return
        except pymysql.err.MySQLError as exc:
            if self._closed.is_set():
                return
            if exc.args and exc.args[0] == _BINLOG_GONE:
                raise OffsetLost(
                    f"{self._subject}: the server cannot stream from {start.encode()}: {exc.args[1]}; the changes "
                    "since then are lost to capture: re-snapshot (`worker-sync sync --manual --stream NAME`, or "
                    "forget the stream's offset)"
                ) from exc
            raise translate(exc, self._subject, "reading the binlog") from exc
        except OSError as exc:
            if self._closed.is_set():
                return
            raise SourceUnavailable(f"{self._subject}: reading the binlog failed: {exc}") from exc
        except Exception:
            if self._closed.is_set():  # close() pulled the connection from under a blocking read
                return
            raise
        finally:
            self.close()

    def _plan_for(self, event: TableMapEvent) -> _TablePlan | None:
        namespace = f"{event.schema}.{event.table}"
        if namespace == self._echo_table:
            return _ECHO_PLAN
        info = self._tables.get(namespace)
        if info is None:
            return None
        names = {c.name for c in event.columns}
        if None in names or any(str(n).startswith("UNKNOWN_COL") for n in names):
            raise SourceMisconfigured(
                f"{self._subject}: the binlog has no column names for `{namespace}`; set "
                "`binlog_row_metadata=FULL` (`SET GLOBAL binlog_row_metadata=FULL`) so column names reach "
                "the binlog"
            )
        if self._stale or not set(info.primary_key) <= names:  # it may have changed since we read it
            self._tables.update(self._reload_tables())
            self._stale = False
            info = self._tables.get(namespace)
            if info is None or not info.primary_key or not set(info.primary_key) <= names:
                raise SourceMisconfigured(
                    f"{self._subject}: table `{namespace}` no longer has the primary key capture relies on; "
                    "restore it, then re-snapshot the table"
                )
        gone = self._columns_seen(namespace, [c.name for c in event.columns])
        lean = LeanRows.for_table(event.columns, info) if self._lean_rows else None
        rows = binlog_plan(event.columns, info, self._flavor)
        return _TablePlan(namespace, info.primary_key, rows, lean, gone)

    def _columns_seen(self, namespace: str, names: list[str]) -> frozenset[str]:
        """Compare a table map's columns with those seen (actors.core.schema_changes): added ones queue up as
        events; a dropped or renamed one is TableChanged. Returns the names to leave out of rows."""
        describe = self._describe
        if describe is None or self._watch.knows(namespace, names, complete=True):
            return frozenset()
        seen = self._watch.check(
            namespace,
            names,
            complete=True,
            catalog=lambda: describe(namespace),
            resync_hint="`worker-sync sync --manual --stream NAME`",
        )
        self._added.extend((namespace, added) for added in seen.added)
        return seen.gone

    def _table_event(
        self, namespace: str, op: Op, added: AddedColumn | None, *, commit_time_us: int, txid: str, position: Position
    ) -> ChangeEvent:
        """A TRUNCATE or an added column (actors.core.events.Op) at its place in the binlog."""
        return ChangeEvent(
            node=self._node,
            engine=self._flavor,
            namespace=namespace,
            op=op,
            key={},
            before=None,
            after=None if added is None else added_column_row(added),
            commit_time_us=commit_time_us,
            txid=txid,
            position=position,
        )

    def _translate(
        self, reader: BinLogStreamReader, start: BinlogPoint, server: str, stop: threading.Event
    ) -> Iterator[Change]:
        node, engine, subject = self._node, self._flavor, self._subject
        closed = self._closed
        file, seq = start.file, start.seq
        gtids = gtid_state(self._flavor, start.gtid)
        resume = start.encode()  # the restart point of the last completed transaction
        plans: dict[int, _TablePlan | None] = {}
        fast_tables: set[int] | None = reader.fast_tables if isinstance(reader, FastReader) else None
        # The open transaction.
        in_txn = explicit = False
        txid, commit_time_us, index, pending_gtid = "", 0, 0, ""
        origin: str | None = None  # ECHO_ORIGIN once the transaction wrote the echo marker

        def begin(new_txid: str, timestamp: int, is_explicit: bool, gtid: str) -> None:
            nonlocal in_txn, explicit, txid, commit_time_us, index, pending_gtid, origin
            in_txn, explicit, txid, commit_time_us, index = True, is_explicit, new_txid, timestamp * 1_000_000, 0
            origin = None
            pending_gtid = gtid

        def end(end_pos: int) -> TxnEnd:
            nonlocal in_txn, resume, pending_gtid
            if pending_gtid:
                gtids.advance(pending_gtid)
            resume = BinlogPoint(file, end_pos, str(gtids), server).encode()
            in_txn, pending_gtid = False, ""
            return TxnEnd(Position(order(seq, end_pos, END_OF_TRANSACTION), resume), txid, commit_time_us)

        while True:
            if stop.is_set() or closed.is_set():
                return
            event = reader.fetchone()
            if event is None:  # the server ended the dump (shutdown)
                if closed.is_set() or stop.is_set():
                    return
                raise SourceUnavailable(f"{subject}: the server ended the binlog stream (shutting down?)")
            kind = type(event)
            if kind is RowsSlice:  # read by FastReader
                rows_kind, log_pos = event.kind, event.log_pos
            elif kind is WriteRowsEvent or kind is UpdateRowsEvent or kind is DeleteRowsEvent:
                rows_kind, log_pos = kind, event.packet.log_pos
            else:
                rows_kind = None
            if rows_kind is not None:
                plan = plans.get(event.table_id)
                if plan is None:
                    continue
                if not in_txn:  # rows without a GTID/BEGIN before them (mid-transaction start): keep going
                    begin(f"{file}:{log_pos}", event.timestamp, True, "")
                if plan is _ECHO_PLAN:
                    origin = ECHO_ORIGIN
                    continue
                prefix = order_prefix(seq, log_pos)
                namespace, key_columns = plan.namespace, plan.primary_key
                for op, before, after, keyed in plan.images(event, rows_kind):
                    if plan.gone:
                        before, after = _without(before, plan.gone), _without(after, plan.gone)
                    yield ChangeEvent(
                        node=node,
                        engine=engine,
                        namespace=namespace,
                        op=op,
                        key={c: keyed[c] for c in key_columns},
                        before=before,
                        after=after,
                        commit_time_us=commit_time_us,
                        txid=txid,
                        position=Position(prefix + index.to_bytes(8, "big"), resume),
                        origin=origin,
                    )
                    index += 1
            elif kind is Xid:  # read by FastReader
                if in_txn:
                    yield end(event.log_pos)
                    if _nothing_waiting(reader):
                        yield None  # caught up: the consumer hands on what it holds (latency, not 0.5 s)
            elif kind is MariadbGtid:  # read by FastReader
                begin(event.gtid, event.timestamp, not event.flags & _MARIADB_STANDALONE, event.gtid)
            elif kind is TableMapEvent:
                plan = plans[event.table_id] = self._plan_for(event)
                if fast_tables is not None:  # rows FastReader may hand out as RowsSlice: all but the library's
                    if plan is None or plan is _ECHO_PLAN or plan.lean is not None:
                        fast_tables.add(event.table_id)
                    else:
                        fast_tables.discard(event.table_id)
                if self._added:  # columns added: before the rows of this table map
                    if not in_txn:
                        begin(f"{file}:{event.packet.log_pos}", event.timestamp, True, "")
                    prefix = order_prefix(seq, event.packet.log_pos)
                    for namespace, added in self._added:
                        position = Position(prefix + index.to_bytes(8, "big"), resume)
                        yield self._table_event(
                            namespace, Op.SCHEMA, added, commit_time_us=commit_time_us, txid=txid, position=position
                        )
                        index += 1
                    self._added = []
            elif kind is XidEvent:
                if in_txn:
                    yield end(event.packet.log_pos)
                    if _nothing_waiting(reader):
                        yield None  # caught up: the consumer hands on what it holds (latency, not 0.5 s)
            elif kind is MariadbGtidEvent:
                begin(event.gtid, event.timestamp, not event.flags & _MARIADB_STANDALONE, event.gtid)
            elif kind is GtidEvent:
                begin(event.gtid, event.timestamp, False, event.gtid)
            elif kind is QueryEvent:
                statement = event.query.strip().upper()
                if statement == "BEGIN":
                    if in_txn:
                        explicit = True
                    else:
                        begin(f"{file}:{event.packet.log_pos}", event.timestamp, True, "")
                elif statement in ("COMMIT", "ROLLBACK"):
                    # ROLLBACK is logged only when non-transactional changes in it stayed: they count.
                    if in_txn:
                        yield end(event.packet.log_pos)
                        if _nothing_waiting(reader):
                            yield None
                elif not (in_txn and explicit):  # DDL (or any statement on its own): its own transaction
                    if not in_txn:
                        begin(f"{file}:{event.packet.log_pos}", event.timestamp, False, "")
                    # A DDL may change a key or a JSON column: re-read tables before the next new plan
                    # (the altered table comes back with a new table id, hence a new plan).
                    self._stale = True
                    schema = event.schema.decode() if isinstance(event.schema, bytes) else str(event.schema or "")
                    truncated = truncated_table(event.query, schema)
                    if truncated is not None and truncated in self._tables:
                        position = Position(order_prefix(seq, event.packet.log_pos) + index.to_bytes(8, "big"), resume)
                        yield self._table_event(
                            truncated, Op.TRUNCATE, None, commit_time_us=commit_time_us, txid=txid, position=position
                        )
                        index += 1
                    yield end(event.packet.log_pos)
                # else: SAVEPOINT and the like inside a transaction
            elif kind is RotateEvent and event.next_binlog != file:
                file, seq = event.next_binlog, file_sequence(event.next_binlog)
            elif kind is HeartbeatLogEvent:
                yield None  # idle: the consumer hands on what it holds and looks at its stop flag


def _without(row: dict[str, Any] | None, gone: frozenset[str]) -> dict[str, Any] | None:
    """A decoded row without the ``gone`` columns (dropped since this part of the binlog was written)."""
    return None if row is None else {name: value for name, value in row.items() if name not in gone}
