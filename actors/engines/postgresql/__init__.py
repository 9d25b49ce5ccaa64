"""PostgreSQL engine: capture through logical decoding (wal2json, streaming protocol)."""

from actors.engines.postgresql.source import PostgresSource

__all__ = ["PostgresSource"]
