"""MongoDB capture and apply: change streams with resume tokens, documents <-> rows.

Modules, one job each: connection (client options, TLS, errors), schema (declared fields as a TableSchema),
values (BSON <-> row values), positions (ordering and resume text), events (change documents ->
ChangeEvents), snapshot (the consistent initial read), source (the ChangeSource), writer (the BatchWriter).
"""

from actors.engines.mongodb.source import MongoSource, source_for_node
from actors.engines.mongodb.writer import MongoWriter

__all__ = ["MongoSource", "MongoWriter", "source_for_node"]
