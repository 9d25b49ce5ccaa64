"""MariaDB / MySQL capture: the binlog (ROW format, full images, column names) via mysql-replication.

Modules, one job each: connection (pymysql arguments, TLS), checks (start-up refusals), schema (keys and
JSON columns from information_schema), values (binlog and snapshot values alike), positions (ordering and
resume strings), snapshot (the consistent initial read), binlog (the streaming reader), source (the
ChangeSource that ties them together).
"""

from actors.engines.mariadb.connection import ConnectParams
from actors.engines.mariadb.source import MariaDbSource, source_for_node

__all__ = ["ConnectParams", "MariaDbSource", "source_for_node"]
