"""Offers to a member of a bidirectional group (BatchWriter.apply_offers) on the real servers: the version
table decides, the row follows, replays change nothing, and writes are marked as Worker-Sync's own."""

from __future__ import annotations

import pytest
from psycopg.conninfo import make_conninfo

from actors.core.conflicts import Offer, Outcome, Version
from actors.core.errors import SinkError
from actors.engines.mariadb.connection import ConnectParams
from actors.engines.mariadb.writer import MariaDbWriter
from actors.engines.postgresql.writer import PostgresWriter
from actors.harness import Endpoint
from actors.harness.bidirectional import prepare_bidirectional
from actors.harness.compare import table_rows as keyed_rows
from config.model import Tls


def writer_for(db: Endpoint, echo_writer: str = "test_0"):
    if db.engine == "postgresql":
        conninfo = make_conninfo(
            host=db.host,
            port=db.port,
            user=db.apply.user,
            password=db.apply.password,
            dbname=db.database,
            sslmode="disable",
        )
        return PostgresWriter(conninfo, node="here", echo_writer=echo_writer)
    params = ConnectParams(
        host=db.host,
        port=db.port,
        user=db.apply.user,
        password=db.apply.password,
        database=db.database,
        tls=Tls(mode="disable"),
    )
    return MariaDbWriter(params, node="here", database=db.database, echo_writer=echo_writer)


@pytest.fixture(params=["postgresql", "mariadb"])
def target(request: pytest.FixtureRequest) -> tuple[Endpoint, str]:
    db: Endpoint = request.getfixturevalue("fresh_pg_db" if request.param == "postgresql" else "fresh_mariadb_db")
    namespace = "public.kv" if db.engine == "postgresql" else f"{db.database}.kv"
    with db.connect("admin") as conn:
        conn.cursor().execute(f"CREATE TABLE {namespace} (id integer PRIMARY KEY, v varchar(20))")
    return db, namespace


def table_rows(db: Endpoint, namespace: str) -> list[dict]:
    return list(keyed_rows(db, namespace).values())


def offer(namespace: str, node: str, time_us: int, value: str | None, *, local: bool = False) -> Offer:
    row = None if value is None else {"id": 1, "v": value}
    return Offer(namespace, {"id": 1}, row, Version(time_us, 0, node, time_us.to_bytes(8, "big")), local=local)


def test_versions_decide_and_the_row_follows(target: tuple[Endpoint, str]) -> None:
    db, ns = target
    prepare_bidirectional(db)
    with writer_for(db) as writer:
        first = writer.apply_offers([offer(ns, "there", 10, "ten")])
        assert [d.outcome for d in first] == [Outcome.WIN]
        assert table_rows(db, ns) == [{"id": 1, "v": "ten"}]
        # A replayed slice meets its own version; an older remote change is discarded.
        again = writer.apply_offers([offer(ns, "there", 10, "ten"), offer(ns, "elsewhere", 5, "five")])
        assert [d.outcome for d in again] == [Outcome.REPLAY, Outcome.DISCARD]
        assert table_rows(db, ns) == [{"id": 1, "v": "ten"}]
        # A user of this node writes after 'ten' arrived: causally later, so its own offer wins, whatever its
        # commit clock says (7), and the row keeps the user's value.
        with db.connect("admin") as conn:
            conn.cursor().execute(f"UPDATE {ns} SET v = 'mine' WHERE id = 1")
        later = writer.apply_offers([offer(ns, "here", 7, "mine", local=True)])
        assert [d.outcome for d in later] == [Outcome.WIN]
        assert later[0].offer.version.rank("last_writer_wins") > offer(ns, "there", 10, "ten").version.rank(
            "last_writer_wins"
        )
        assert table_rows(db, ns) == [{"id": 1, "v": "mine"}]
        # Now a user's write races a newer remote change: the remote one arrives first and is stored but not
        # written over the user's pending value; the user's own offer then loses and repairs the row.
        with db.connect("admin") as conn:
            conn.cursor().execute(f"UPDATE {ns} SET v = 'racing' WHERE id = 1")
        newer = writer.apply_offers([offer(ns, "there", 30, "thirty")])
        assert [d.outcome for d in newer] == [Outcome.WIN]
        assert table_rows(db, ns) == [{"id": 1, "v": "racing"}]
        repaired = writer.apply_offers([offer(ns, "here", 12, "racing", local=True)])
        assert [d.outcome for d in repaired] == [Outcome.REPAIR]
        assert table_rows(db, ns) == [{"id": 1, "v": "thirty"}]
        # A newer delete wins; an older update after it is discarded (update-after-delete).
        gone = writer.apply_offers([offer(ns, "there", 40, None), offer(ns, "elsewhere", 35, "late")])
        assert [d.outcome for d in gone] == [Outcome.WIN, Outcome.DISCARD]
        assert table_rows(db, ns) == []


def test_without_the_version_table_the_error_says_run_init(target: tuple[Endpoint, str]) -> None:
    db, ns = target
    if db.engine == "postgresql":
        prepare_bidirectional(db)  # grants the origin functions; then drop the table
        with db.connect("admin") as conn:
            conn.execute("DROP TABLE worker_sync_meta.versions")
    with writer_for(db) as writer, pytest.raises(SinkError, match="worker-sync init"):
        writer.apply_offers([offer(ns, "there", 10, "ten")])
    assert table_rows(db, ns) == []


def test_a_row_that_already_holds_the_winner_is_not_written_again(fresh_pg_db: Endpoint) -> None:
    """A node's own change offered back to it usually finds the row as its user left it: writing it again
    would only make one more echo. (PostgreSQL shows a rewrite as a new row version: a new xmin.)"""
    db, ns = fresh_pg_db, "public.kv"
    with db.connect("admin") as conn:
        conn.execute(f"CREATE TABLE {ns} (id integer PRIMARY KEY, v varchar(20))")
        conn.execute(f"INSERT INTO {ns} VALUES (1, 'mine')")
    prepare_bidirectional(db)

    def xmin() -> str:
        with db.connect("admin") as conn:
            return conn.execute(f"SELECT xmin::text FROM {ns} WHERE id = 1").fetchone()[0]

    before = xmin()
    with writer_for(db) as writer:
        (own,) = writer.apply_offers([offer(ns, "here", 10, "mine", local=True)])
        assert own.outcome is Outcome.WIN
        assert xmin() == before  # the version is stored, the row left alone
        (newer,) = writer.apply_offers([offer(ns, "there", 20, "theirs")])
        assert newer.outcome is Outcome.WIN and xmin() != before
        assert table_rows(db, ns) == [{"id": 1, "v": "theirs"}]
        # A replay of the first offer now meets a newer version: discarded, the row stays.
        (old,) = writer.apply_offers([offer(ns, "elsewhere", 5, "old")])
        assert old.outcome is Outcome.DISCARD and table_rows(db, ns) == [{"id": 1, "v": "theirs"}]
