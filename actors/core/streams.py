"""What a capture actor is built from: one stream = one source node and the tables it captures."""

from __future__ import annotations

import msgspec

from config.model import Node


class StreamSpec(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a capture actor needs, and nothing secret: passwords are read from the
    environment or files the node's config names, inside the actor's own process."""

    stream: str
    node_name: str
    node: Node
    tables: list[str]
    snapshot_chunk_rows: int = 5_000
    #: The node is in a bidirectional group: recognise Worker-Sync's own writes (echoes) where the engine
    #: needs a marker for that (MariaDB/MySQL, MongoDB).
    echo_marker: bool = False
    #: Before streaming on from the committed position, re-read every table from a fresh snapshot (a manual
    #: re-sync): its rows sort right after the committed position, then the stream replays from there.
    resnapshot: bool = False
