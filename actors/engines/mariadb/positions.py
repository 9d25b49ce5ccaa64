"""Binlog positions: the bytes that order MariaDB/MySQL events and the string that resumes a stream.

``Position.order`` is 24 bytes that compare bytewise in binlog order::

    8 bytes  binlog file sequence number, big-endian (the 42 of ``binlog.000042``)
    8 bytes  binlog offset: end of the rows event (or of the commit event, for a TxnEnd)
    8 bytes  row index within the transaction; ``0xFF..FF`` for the TxnEnd that closes it

A transaction never spans binlog files, the next transaction's rows end after this one's commit event,
and the TxnEnd's all-ones index sorts after every row of its transaction. A snapshot uses the prefix of
the binlog point it is consistent with and numbers its rows from 0, so every snapshot row sorts before
every streamed event (streamed rows events all end after that point). Offsets are the 32-bit event
header offsets: binlog files above 4 GiB are not supported (MariaDB caps ``max_binlog_size`` at 1 GiB).

``Position.resume`` is a :class:`BinlogPoint` in text, e.g.
``file=binlog.000003;pos=1234;gtid=0-1-42;server=1``: the point right after the last *completed*
transaction, so a restart re-reads a partial transaction (the pump drops what was already delivered,
by order). An empty resume means "not resumable": a crash during a snapshot redoes the snapshot.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from pymysqlreplication.gtid import Gtid, GtidSet

#: Row index of the TxnEnd closing a transaction: sorts after every row of it.
END_OF_TRANSACTION = 0xFFFF_FFFF_FFFF_FFFF

_ORDER = struct.Struct(">QQQ")
_PREFIX = struct.Struct(">QQ")


def file_sequence(file: str) -> int:
    """The numeric suffix of a binlog file name: ``binlog.000042`` -> 42."""
    _, dot, suffix = file.rpartition(".")
    if not dot or not suffix.isdigit():
        raise ValueError(f"not a binlog file name: {file!r}")
    return int(suffix)


def order(seq: int, offset: int, index: int) -> bytes:
    return _ORDER.pack(seq, offset, index)


def order_prefix(seq: int, offset: int) -> bytes:
    """The first 16 bytes of :func:`order`; append ``index.to_bytes(8, "big")`` per row (cheaper)."""
    return _PREFIX.pack(seq, offset)


def split_order(value: bytes) -> tuple[int, int, int]:
    """Inverse of :func:`order` (for logs and tests)."""
    seq, offset, index = _ORDER.unpack(value)
    return seq, offset, index


@dataclass(frozen=True)
class BinlogPoint:
    """A transaction boundary in a server's binlog.

    ``file``/``pos`` locate it on the server named by ``server`` (MariaDB ``@@server_id``, MySQL
    ``@@server_uuid``); ``gtid`` locates it on any server of the replication topology (MariaDB: the GTID
    position, one ``domain-server-seq`` per domain, comma-separated; MySQL: the executed GTID set).
    Either may be empty when unknown.
    """

    file: str
    pos: int
    gtid: str = ""
    server: str = ""

    def encode(self) -> str:
        parts = [f"file={self.file}", f"pos={self.pos}"]
        if self.gtid:
            parts.append(f"gtid={self.gtid}")
        if self.server:
            parts.append(f"server={self.server}")
        return ";".join(parts)

    @classmethod
    def decode(cls, text: str) -> BinlogPoint:
        """Parse :meth:`encode`'s output; ValueError when it is not one."""
        fields: dict[str, str] = {}
        for part in text.split(";"):
            key, eq, value = part.partition("=")
            if not eq or key in fields:
                raise ValueError(f"not a binlog resume point: {text!r}")
            fields[key] = value
        try:
            point = cls(fields.pop("file"), int(fields.pop("pos")), fields.pop("gtid", ""), fields.pop("server", ""))
        except (KeyError, ValueError):
            raise ValueError(f"not a binlog resume point: {text!r}") from None
        if fields:
            raise ValueError(f"not a binlog resume point (unknown {sorted(fields)}): {text!r}")
        file_sequence(point.file)
        return point

    @property
    def seq(self) -> int:
        return file_sequence(self.file)


class MariaDbGtidPosition:
    """MariaDB's GTID position: the last GTID per replication domain (what ``@slave_connect_state`` wants)."""

    def __init__(self, text: str = "") -> None:
        self._by_domain: dict[int, str] = {}
        for gtid in filter(None, (part.strip() for part in text.split(","))):
            self.advance(gtid)

    def advance(self, gtid: str) -> None:
        """Record that transaction ``gtid`` (``domain-server-seq``) completed."""
        domain, _, rest = gtid.partition("-")
        if not domain.isdigit() or rest.count("-") != 1 or not all(p.isdigit() for p in rest.split("-")):
            raise ValueError(f"not a MariaDB GTID: {gtid!r}")
        self._by_domain[int(domain)] = gtid

    def __str__(self) -> str:
        return ",".join(self._by_domain[d] for d in sorted(self._by_domain))


class MySqlGtidSet:
    """MySQL's executed GTID set (``uuid:1-42,uuid2:1-7``), what ``COM_BINLOG_DUMP_GTID`` wants."""

    def __init__(self, text: str = "") -> None:
        self._set = GtidSet(text.replace("\n", "") or None)

    def advance(self, gtid: str) -> None:
        """Record that transaction ``gtid`` (``uuid:n``) completed."""
        self._set.merge_gtid(Gtid(gtid))

    def __str__(self) -> str:
        return str(self._set)


GtidState = MariaDbGtidPosition | MySqlGtidSet


def gtid_state(flavor: str, text: str) -> GtidState:
    return MariaDbGtidPosition(text) if flavor == "mariadb" else MySqlGtidSet(text)
