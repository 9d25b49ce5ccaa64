"""PostgreSQL capture: a logical replication slot read over the streaming protocol, decoded by wal2json or by
the built-in pgoutput (``decoder`` in the node's config)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import psycopg

from actors.core.batches import TxnEnd
from actors.core.errors import SourceMisconfigured, SourceUnavailable
from actors.core.events import AddedColumn, Position
from actors.engines.base import Change
from actors.engines.postgresql.catalog import TableInfo, load_table
from actors.engines.postgresql.checks import check_readable, check_server
from actors.engines.postgresql.ddl import describe_columns
from actors.engines.postgresql.decoding import order_of
from actors.engines.postgresql.lsn import format_lsn, parse_lsn
from actors.engines.postgresql.pgoutput import PLUGIN as PGOUTPUT
from actors.engines.postgresql.pgoutput import PgOutputDecoder, plugin_options
from actors.engines.postgresql.publication import ensure_publication
from actors.engines.postgresql.replication import ReplicationStream
from actors.engines.postgresql.snapshot import read_snapshot
from actors.engines.postgresql.versions import ORIGIN_PREFIX
from actors.engines.postgresql.wal2json import NUMBERS_AS_TEXT, PLUGIN_OPTIONS, Wal2JsonDecoder

log = logging.getLogger(__name__)

READ_TIMEOUT_S = 0.2


class PostgresSource:
    """One capture stream: the tables of one PostgreSQL database, through one slot."""

    def __init__(
        self,
        *,
        stream: str,
        node: str,
        conninfo: str,
        slot: str,
        tables: list[str],
        snapshot_chunk_rows: int = 5_000,
        resnapshot: bool = False,
        decoder: str = "wal2json",
        publication: str | None = None,
    ) -> None:
        """``decoder`` is the slot's output plugin, ``wal2json`` or ``pgoutput``; pgoutput reads the tables of
        ``publication`` (default: named like the slot), which the stream creates or extends when allowed."""
        self.stream = stream
        self.node = node
        self.conninfo = conninfo
        self.slot = slot
        self.table_names = list(tables)
        self.snapshot_chunk_rows = snapshot_chunk_rows
        self.resnapshot = resnapshot
        self.plugin = decoder
        self.publication = publication or slot
        self._replication: ReplicationStream | None = None
        self._ack_lsn = 0
        self._lock = threading.Lock()
        self._origin_names: dict[int, str] = {}
        #: Whether wal2json takes ``numeric-data-types-as-string`` (2.6+); learnt at the first start.
        self._numbers_as_text = True

    def _connect(self) -> psycopg.Connection:
        try:
            return psycopg.connect(self.conninfo, autocommit=True)
        except psycopg.OperationalError as exc:
            raise SourceUnavailable(f"postgresql stream `{self.stream}`: cannot connect: {exc}") from None

    def changes(self, resume_after: Position | None, stop: threading.Event) -> Iterator[Change]:
        with self._connect() as conn:
            check_server(conn, stream=self.stream)
            tables = {name: load_table(conn, name, stream=self.stream) for name in self.table_names}
            check_readable(conn, stream=self.stream, tables=self.table_names)
            if self.plugin == PGOUTPUT:
                ensure_publication(conn, self.publication, self.table_names, stream=self.stream)
            if resume_after is None or not resume_after.resume:
                start_lsn = yield from self._snapshot(conn, list(tables.values()), stop)
                if start_lsn is None:
                    return
            else:
                self._check_slot_plugin(conn)
                start_lsn = parse_lsn(resume_after.resume)
                if self.resnapshot:
                    yield from self._resnapshot(list(tables.values()), resume_after, stop)
                    if stop.is_set():
                        return
        yield from self._stream(tables, start_lsn, stop)

    def _open_replication(self) -> ReplicationStream:
        replication = ReplicationStream(self.conninfo, stream=self.stream)
        with self._lock:
            self._replication = replication
        return replication

    def _snapshot(self, conn: psycopg.Connection, tables: list[TableInfo], stop: threading.Event):
        replication = self._open_replication()
        slot_exists = conn.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (self.slot,)).fetchone()
        if slot_exists:
            # No committed position: nothing downstream depends on this slot's history, and a
            # consistent snapshot needs a slot created together with it.
            log.warning("postgresql stream %s: dropping slot %s to take a fresh snapshot", self.stream, self.slot)
            replication.command(f'DROP_REPLICATION_SLOT "{self.slot}" WAIT')
        try:
            rows = replication.command(f'CREATE_REPLICATION_SLOT "{self.slot}" LOGICAL {self.plugin} EXPORT_SNAPSHOT')
        except SourceUnavailable as exc:
            raise self._explain_slot_error(exc) from None
        _, consistent_point, snapshot_name, _ = rows[0]
        assert consistent_point is not None and snapshot_name is not None  # EXPORT_SNAPSHOT returns both
        consistent_lsn = parse_lsn(consistent_point)
        log.info("postgresql stream %s: snapshot %s at %s", self.stream, snapshot_name, consistent_point)
        with psycopg.connect(self.conninfo) as snap_conn:
            yield from read_snapshot(
                snap_conn,
                snapshot_name,
                tables,
                node=self.node,
                consistent_lsn=consistent_lsn,
                chunk_rows=self.snapshot_chunk_rows,
                stop=stop,
            )
        if stop.is_set():
            return None
        end = Position(order_of(consistent_lsn - 1, 2**64 - 1), format_lsn(consistent_lsn))
        yield TxnEnd(end, "snapshot", 0)
        return consistent_lsn

    def _resnapshot(self, tables: list[TableInfo], after: Position, stop: threading.Event):
        """A manual re-sync: every row as of a fresh snapshot, positioned right after ``after``, before the
        stream replays from ``after`` (so changes since then, deletes included, follow the rows in order).
        The snapshot comes from a temporary slot: the stream's own slot keeps its place."""
        exporter = ReplicationStream(self.conninfo, stream=self.stream)
        try:
            rows = exporter.command(
                f'CREATE_REPLICATION_SLOT "{self.slot}_resync" TEMPORARY LOGICAL {self.plugin} EXPORT_SNAPSHOT'
            )
            _, consistent_point, snapshot_name, _ = rows[0]
            assert consistent_point is not None and snapshot_name is not None  # EXPORT_SNAPSHOT returns both
            log.info("postgresql stream %s: re-sync snapshot %s at %s", self.stream, snapshot_name, consistent_point)
            with psycopg.connect(self.conninfo) as snap_conn:
                yield from read_snapshot(
                    snap_conn,
                    snapshot_name,
                    tables,
                    node=self.node,
                    consistent_lsn=parse_lsn(consistent_point),
                    chunk_rows=self.snapshot_chunk_rows,
                    stop=stop,
                    follows=after,
                )
        except SourceUnavailable as exc:
            raise self._explain_slot_error(exc) from None
        finally:
            exporter.close()  # a temporary slot goes with its session
        if not stop.is_set():
            yield TxnEnd(Position(after.order + (2**64 - 1).to_bytes(8, "big"), after.resume), "resync", 0)

    def _check_slot_plugin(self, conn: psycopg.Connection) -> None:
        """A slot decodes with the plugin it was created with: a changed ``decoder`` needs a new slot."""
        row = conn.execute("SELECT plugin FROM pg_replication_slots WHERE slot_name = %s", (self.slot,)).fetchone()
        if row is not None and row[0] != self.plugin:
            raise SourceMisconfigured(
                f"postgresql stream `{self.stream}`: slot `{self.slot}` decodes with `{row[0]}` but the node's "
                f"`decoder` is `{self.plugin}`; set `decoder: {row[0]}` again, or move to `{self.plugin}` with a new "
                "slot (`slot_name`) and a re-snapshot (remove the stream's committed offset)"
            )

    def _explain_slot_error(self, exc: SourceUnavailable) -> Exception:
        text = str(exc)
        if "wal2json" in text and ("could not access file" in text or "No such file" in text):
            return SourceMisconfigured(
                f"postgresql stream `{self.stream}`: the wal2json output plugin is not installed on the server; "
                "install it (Debian: `apt-get install postgresql-15-wal2json`)"
            )
        if "replication slots are in use" in text:
            return SourceMisconfigured(
                f"postgresql stream `{self.stream}`: all replication slots are in use; raise "
                "`max_replication_slots` in postgresql.conf (restart needed) or drop an unused slot"
            )
        return exc

    def _stream(self, tables: dict[str, TableInfo], start_lsn: int, stop: threading.Event) -> Iterator[Change]:
        replication = self._replication or self._open_replication()
        decoder: PgOutputDecoder | Wal2JsonDecoder
        if self.plugin == PGOUTPUT:
            replication.start(self.slot, start_lsn, plugin_options(self.publication))
            decoder = PgOutputDecoder(
                stream=self.stream,
                node=self.node,
                tables=tables,
                start_lsn=start_lsn,
                echo_origin=_echo_origin_name,
                catalog=self._catalog,
            )
        else:
            replication = self._start_wal2json(replication, start_lsn)
            decoder = Wal2JsonDecoder(
                stream=self.stream,
                node=self.node,
                tables=tables,
                start_lsn=start_lsn,
                echo_origin=self._echo_origin,
                numbers_as_text=self._numbers_as_text,
                catalog=self._catalog,
            )
        while not stop.is_set():
            with self._lock:
                if self._ack_lsn:
                    replication.confirm(self._ack_lsn)
            message = replication.read(0)
            if message is None:
                yield None  # nothing more right now: let the pump hand on what it holds
                message = replication.read(READ_TIMEOUT_S)
                if message is None:
                    continue
            item = decoder.decode(message[1])
            yield from decoder.take()  # columns added, before the change that showed them
            if item is not None:
                yield item

    def _start_wal2json(self, replication: ReplicationStream, start_lsn: int) -> ReplicationStream:
        options = dict(PLUGIN_OPTIONS, **{"add-tables": ",".join(self._escaped_tables())})
        if self._numbers_as_text:
            options[NUMBERS_AS_TEXT] = "1"
        try:
            replication.start(self.slot, start_lsn, options)
        except SourceUnavailable as exc:
            if NUMBERS_AS_TEXT not in str(exc):
                raise
            self._numbers_as_text = False  # wal2json before 2.6: NaN and ±Infinity arrive as null
            log.warning(
                "postgresql stream %s: wal2json is older than 2.6, so NaN and ±Infinity in numeric and float "
                "columns arrive as null: in NOT NULL columns they are refused at the target (dead letters), in "
                "nullable ones they cannot be told from NULL; install wal2json 2.6 or later, or use "
                "`decoder: pgoutput`",
                self.stream,
            )
            replication.close()
            replication = self._open_replication()
            del options[NUMBERS_AS_TEXT]
            replication.start(self.slot, start_lsn, options)
        return replication

    def _catalog(self, namespace: str) -> tuple[TableInfo, dict[str, AddedColumn]]:
        """A table's definition now (for the decoder, when a change shows its columns changed)."""
        with self._connect() as conn:
            info = load_table(conn, namespace, stream=self.stream)
            return info, describe_columns(conn, namespace)

    def _echo_origin(self, ident: int) -> str | None:
        """The Worker-Sync writer a replication origin id stands for (None: not one of ours); the catalog
        is read again when an id is new (writers create their origins on first use)."""
        if ident not in self._origin_names:
            with self._connect() as conn:
                rows = conn.execute("SELECT roident, roname FROM pg_replication_origin").fetchall()
            self._origin_names.update({int(i): str(name) for i, name in rows})
            self._origin_names.setdefault(ident, "")  # gone again (dropped): not ours, do not ask twice
        name = self._origin_names.get(ident)
        return name if name is not None and name.startswith(ORIGIN_PREFIX) else None

    def _escaped_tables(self) -> list[str]:
        # wal2json splits on commas and dots; a backslash escapes them inside names.
        escaped = []
        for name in self.table_names:
            schema, _, table = name.partition(".")
            escaped.append(f"{_escape(schema)}.{_escape(table)}")
        return escaped

    def acknowledge(self, upto: Position) -> None:
        if upto.resume:
            with self._lock:
                self._ack_lsn = max(self._ack_lsn, parse_lsn(upto.resume))

    def close(self) -> None:
        with self._lock:
            replication, self._replication = self._replication, None
        if replication is not None:
            replication.close()


def _echo_origin_name(name: str) -> str | None:
    """pgoutput names the origin: one of Worker-Sync's writers, or someone else's (None)."""
    return name if name.startswith(ORIGIN_PREFIX) else None


def _escape(part: str) -> str:
    return part.replace("\\", "\\\\").replace(",", "\\,").replace(".", "\\.").replace(" ", "\\ ")
