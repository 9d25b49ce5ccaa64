"""Positions of a MongoDB change stream: where an event sorts, and how to resume after it.

``resume`` is canonical Extended JSON of ``{"token": <the event's _id>, "seq": n}`` (resume after the
token) or, for the end of an initial snapshot, ``{"at": Timestamp, "seq": n}`` (start at that cluster time).
``order`` is ``(clusterTime.t, clusterTime.i, seq)`` packed big-endian, so positions sort like the
cluster time of the change and, inside one cluster time (a transaction's events share it), by ``seq``:
a counter the source carries on from the position it resumes after, one step per event. Resume tokens
themselves are opaque (their layout is the server's business), so nothing here looks inside them.
"""

from __future__ import annotations

import struct
from typing import Any

import msgspec
from bson import json_util
from bson.timestamp import Timestamp

_ORDER = struct.Struct(">IIQ")
_JSON = json_util.CANONICAL_JSON_OPTIONS


class Resume(msgspec.Struct, frozen=True, kw_only=True):
    """Where to pick the stream up: after ``token``, or at cluster time ``at``; ``seq`` of the last event."""

    token: dict[str, Any] | None = None
    at: Timestamp | None = None
    seq: int = 0

    def encode(self) -> str:
        body: dict[str, Any] = {"seq": self.seq}
        if self.token is not None:
            body["token"] = self.token
        if self.at is not None:
            body["at"] = self.at
        return json_util.dumps(body, json_options=_JSON, sort_keys=True)

    @classmethod
    def decode(cls, text: str) -> Resume:
        """ValueError when ``text`` is not a position this module wrote."""
        try:
            body = json_util.loads(text, json_options=_JSON)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"not a MongoDB stream position: {exc}") from None
        token, at, seq = body.get("token"), body.get("at"), body.get("seq")
        if not isinstance(seq, int) or (token is None) == (at is None):
            raise ValueError("not a MongoDB stream position: needs `seq` and one of `token` or `at`")
        if token is not None and not isinstance(token, dict):
            raise ValueError("not a MongoDB stream position: `token` is not a document")
        if at is not None and not isinstance(at, Timestamp):
            raise ValueError("not a MongoDB stream position: `at` is not a Timestamp")
        return cls(token=token, at=at, seq=seq)


def cluster_parts(cluster_time: Any) -> tuple[int, int]:
    """(seconds, increment) of a BSON Timestamp; (0, 0) for anything else (then ``seq`` alone orders)."""
    if isinstance(cluster_time, Timestamp):
        return cluster_time.time, cluster_time.inc
    return 0, 0


def order_of(cluster_time: Any, seq: int) -> bytes:
    t, i = cluster_parts(cluster_time)
    return _ORDER.pack(t, i, seq)


def after(ts: Timestamp) -> Timestamp:
    """The next cluster time after ``ts``: ``startAtOperationTime`` includes its own time."""
    return Timestamp(ts.time, ts.inc + 1) if ts.inc < 2**32 - 1 else Timestamp(ts.time + 1, 0)
