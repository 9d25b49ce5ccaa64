"""The configuration schema: one YAML document, validated by msgspec.

The ``databases:`` block mirrors the seed Helm chart's values (one node per engine, named after
its key); ``nodes:`` adds further named nodes (a second PostgreSQL, say). Secrets never live in
this file: each node names an environment variable or a file holding its password.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]
NodeName = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_-]{0,62}$")]
Positive = Annotated[int, msgspec.Meta(ge=1)]
PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]
TlsMode = Literal["disable", "prefer", "require", "verify-ca", "verify-full"]
LogLevel = Literal["debug", "info", "warning", "error"]
ConflictPolicy = Literal["last_writer_wins", "source_priority", "manual"]
LossPolicy = Literal["refuse", "warn"]
OnError = Literal["dead_letter", "stop"]
#: How a column is masked in flight (README, "Shaping what flows"); ``null`` may also be written unquoted.
MaskKind = Literal["hash", "redact", "null"]
#: What a captured TRUNCATE does (README, "TRUNCATE and schema changes"): empty the target table in order with
#: the changes around it, skip it (the target keeps its rows), or stop the stream with a message naming the table.
TruncatePolicy = Literal["apply", "ignore", "stop"]
#: What a column added to a captured table does: add the mapped column at the target, or stop the stream.
SchemaChangePolicy = Literal["apply", "stop"]
#: A value a row filter lists: text, an integer, a boolean, or null (matches NULL).
FilterValue = str | int | bool | None


class Base(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Unknown keys are errors: a typo must not silently fall back to a default."""


class Tls(Base, frozen=True, kw_only=True):
    """TLS to a database. ``prefer`` encrypts when the server offers it; ``verify-full`` also checks
    the certificate chain and host name (use it in production)."""

    mode: TlsMode = "prefer"
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None

    def __post_init__(self) -> None:
        if self.mode in ("verify-ca", "verify-full") and not self.ca_file:
            raise ValueError(f"tls mode `{self.mode}` needs `ca_file`")
        if bool(self.cert_file) != bool(self.key_file):
            raise ValueError("client certificates need both `cert_file` and `key_file`")


class _Node(Base, frozen=True, kw_only=True):
    enabled: bool = True
    host: str
    database: str
    username: str
    #: Name of the environment variable that holds the password.
    password_env: str | None = None
    #: Path of a file whose content (trailing newline stripped) is the password.
    password_file: str | None = None
    tls: Tls = Tls()
    #: Breaks last-writer-wins ties between nodes: the higher priority wins, on every node alike.
    priority: int = 0

    def __post_init__(self) -> None:
        if self.password_env and self.password_file:
            raise ValueError("set `password_env` or `password_file`, not both")


class PostgresNode(_Node, tag_field="engine", tag="postgresql", frozen=True, kw_only=True):
    port: Port = 5432
    #: Logical replication slot of this node's capture stream (created by `worker-sync init`).
    slot_name: str = "worker_sync"
    #: The slot's output plugin. `pgoutput` is built into PostgreSQL (no extension; every value as its text, so
    #: NaN and ±Infinity stay exact in any column) and reads `publication`; `wal2json` needs the extension (2.6+
    #: for NaN/±Infinity in nullable columns). Changing it on a running stream needs a new slot and a re-snapshot.
    decoder: Literal["wal2json", "pgoutput"] = "wal2json"
    #: The publication a `pgoutput` stream reads (default: named like `slot_name`); the stream creates it, or adds
    #: missing tables, when its user owns the tables, and otherwise says which statement the owner must run.
    publication: str | None = None


class MySqlNode(_Node, tag_field="engine", tag="mysql", frozen=True, kw_only=True):
    port: Port = 3306
    flavor: Literal["mariadb", "mysql"] = "mariadb"
    #: Server id the binlog reader announces; unique among the source's replicas.
    server_id: Annotated[int, msgspec.Meta(ge=1, le=4294967295)] = 4201
    #: As a source, read every table once before streaming the binlog (the initial snapshot). MariaDB reports
    #: the binlog point of a lock-free snapshot; MySQL does not, so a `flavor: mysql` source needs `false`: its
    #: stream then starts at the current binlog position, and the target is loaded some other way.
    snapshot: bool = True
    #: As a source, write a heartbeat row (`<database>.worker_sync_heartbeat`, created by `worker-sync init`,
    #: never captured) every this many seconds, so a server with no other writes still commits a transaction
    #: after each binlog rotation and the stream's position leaves the old file before it expires. None: off.
    heartbeat_interval_s: PositiveFloat | None = None


#: A field's BSON type in MongoNode.collections; ``string(N)`` holds at most N characters.
BsonType = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^(objectId|string|string\([1-9][0-9]{0,8}\)|int|long|double|decimal|bool|date|binData|uuid|object|array)$"
    ),
]


class MongoNode(_Node, tag_field="engine", tag="mongodb", frozen=True, kw_only=True):
    port: Port = 27017
    replica_set: str | None = None
    auth_source: str = "admin"
    #: "database.collection" -> field -> BSON type: the columns a collection's documents map to (top-level
    #: fields; nested documents and arrays are `object`/`array`, carried as JSON). Collections are schemaless,
    #: so this is what the start-up type check and the writer's conversions go by. `_id` defaults to objectId.
    collections: dict[str, dict[str, BsonType]] = {}


Node = PostgresNode | MySqlNode | MongoNode


class Databases(Base, frozen=True, kw_only=True):
    """The seed's ``databases:`` block: at most one node per engine, named after its key."""

    postgresql: PostgresNode | None = None
    mysql: MySqlNode | None = None
    mongodb: MongoNode | None = None


class NamedPostgresNode(PostgresNode, tag_field="engine", tag="postgresql", frozen=True, kw_only=True):
    name: NodeName


class NamedMySqlNode(MySqlNode, tag_field="engine", tag="mysql", frozen=True, kw_only=True):
    name: NodeName


class NamedMongoNode(MongoNode, tag_field="engine", tag="mongodb", frozen=True, kw_only=True):
    name: NodeName


NamedNode = NamedPostgresNode | NamedMySqlNode | NamedMongoNode


class TableMap(Base, frozen=True, kw_only=True):
    """One table or collection carried by a link."""

    #: "schema.table" (PostgreSQL), "database.table" (MariaDB/MySQL), "database.collection" (MongoDB).
    source: str
    #: Same form as ``source``; defaults to the source name.
    target: str | None = None
    #: Source column -> target column, for columns whose names differ.
    columns: dict[str, str] = {}
    #: Overrides the link's ``conflict_policy`` for this table (bidirectional links only).
    conflict_policy: ConflictPolicy | None = None
    #: Send only these source columns (the key columns always travel); default: every column.
    columns_include: list[str] | None = None
    #: Send every source column but these (never a key column).
    columns_exclude: list[str] = []
    #: Source column -> how it is masked before it leaves the capture actor: ``hash`` (keyed HMAC-SHA-256 as 64
    #: hex characters, key from ``masking``), ``redact`` (the text REDACTED) or ``null``. NULL stays NULL.
    mask: dict[str, MaskKind | None] = {}
    #: Row filter: source column -> the values it may hold (a row passes when every listed column holds one
    #: of its values; NULL only matches a listed ``null``). Evaluated on the captured row, before masking.
    where: dict[str, list[FilterValue]] = {}
    #: Overrides the link's ``truncate`` for this table.
    truncate: TruncatePolicy | None = None

    def __post_init__(self) -> None:
        if self.columns_include is not None and self.columns_exclude:
            raise ValueError(f"table `{self.source}`: set `columns_include` or `columns_exclude`, not both")
        if self.columns_include is not None and not self.columns_include:
            raise ValueError(f"table `{self.source}`: `columns_include` is empty (the key columns travel anyway)")
        for name in self.mask:
            if name in self.columns_exclude:
                raise ValueError(f"table `{self.source}`: column `{name}` is masked but excluded - drop one of them")
        for name, values in self.where.items():
            if not values:
                raise ValueError(f"table `{self.source}`: `where` lists no value for column `{name}`")

    @property
    def shaped(self) -> bool:
        """Whether this table selects columns, masks or filters rows (each refused on bidirectional links)."""
        return bool(self.columns_include is not None or self.columns_exclude or self.mask or self.where)

    def mask_kind(self, column: str) -> MaskKind | None:
        """The mask of ``column`` (an unquoted YAML ``null`` reads as None: that is the ``null`` mask)."""
        if column not in self.mask:
            return None
        return self.mask[column] or "null"


class Link(Base, frozen=True, kw_only=True):
    """Changes flowing from one node to another (both ways when ``bidirectional``)."""

    name: NodeName
    source: NodeName
    target: NodeName
    bidirectional: bool = False
    tables: Annotated[list[TableMap], msgspec.Meta(min_length=1)]
    conflict_policy: ConflictPolicy = "last_writer_wins"
    #: What to do when a type mapping would lose data: refuse to start, or warn and go on.
    lossy_types: LossPolicy = "refuse"
    #: What to do when a target refuses a row for good (too large, NUL byte into text, out of range, a
    #: constraint): set it (and later changes of the same row) aside as a dead letter while the rest flows
    #: on, or also stop the link's source stream with the error shown. Nothing is skipped silently.
    on_error: OnError = "dead_letter"
    #: A TRUNCATE of a captured table: ``apply`` it at the target in order with the changes around it, ``ignore``
    #: it, or ``stop`` the stream with a message naming the table (tables may override it).
    truncate: TruncatePolicy = "stop"
    #: A column added to a captured table: ``apply`` (add the mapped column at the target first) or ``stop``.
    #: A dropped or renamed column always stops the stream.
    schema_changes: SchemaChangePolicy = "stop"

    def truncate_of(self, table: TableMap) -> TruncatePolicy:
        return table.truncate or self.truncate

    def __post_init__(self) -> None:
        if self.source == self.target:
            raise ValueError(f"link `{self.name}` has the same node `{self.source}` as source and target")
        if self.bidirectional:
            if self.schema_changes == "apply":
                raise ValueError(
                    f"link `{self.name}` is bidirectional but sets `schema_changes: apply`: a column added on one "
                    "member cannot be added on the others without racing their own writes - add it on every "
                    "member yourself (the stream stops until then: `schema_changes: stop`)"
                )
            for table in self.tables:
                if self.truncate_of(table) == "apply":
                    raise ValueError(
                        f"link `{self.name}` is bidirectional but table `{table.source}` has `truncate: apply`: a "
                        "TRUNCATE carries no row versions, so it cannot be ranked against the other members' "
                        "writes - use `ignore` or `stop`"
                    )
                if table.shaped:
                    raise ValueError(
                        f"link `{self.name}` is bidirectional but table `{table.source}` sets `columns_include`, "
                        "`columns_exclude`, `mask` or `where`: shaped rows cannot be kept equal both ways - "
                        "use a one-way link for that table"
                    )


class Audit(Base, frozen=True, kw_only=True):
    enabled: bool = True
    #: Node whose database holds the append-only audit store.
    node: NodeName = "postgresql"
    schema: str = "worker_sync_audit"
    #: Ed25519 signing key (32 raw bytes, or 64 hex characters), from a file or an env variable.
    signing_key_file: str | None = None
    signing_key_env: str | None = None
    checkpoint_every_entries: Positive = 10_000
    checkpoint_every_ms: Positive = 1_000
    #: Directory outside the audit database where signed checkpoints (C2SP notes) and leaf hashes are written.
    checkpoint_export_dir: str | None = None
    #: The log's name in exported checkpoint notes (C2SP origin); default: from the audit node and schema.
    origin: str | None = None
    #: Columns encrypted before hashing, as "namespace.column".
    encrypted_fields: list[str] = []
    encryption_key_file: str | None = None

    def __post_init__(self) -> None:
        if self.encrypted_fields and not self.encryption_key_file:
            raise ValueError("`encrypted_fields` needs `encryption_key_file`")


class Masking(Base, frozen=True, kw_only=True):
    """The key of `mask: hash` (HMAC-SHA-256): at least 32 bytes, from an env variable or a file. Every link
    uses the same key, so equal values hash alike in every direction and joins on hashed columns still work."""

    key_env: str | None = None
    key_file: str | None = None

    def __post_init__(self) -> None:
        if self.key_env and self.key_file:
            raise ValueError("set `masking.key_env` or `masking.key_file`, not both")


class Supervisor(Base, frozen=True, kw_only=True):
    #: Ray cluster to join ("auto" inside `ray job submit`); unset starts a local Ray.
    ray_address: str | None = None
    applier_shards: Annotated[int, msgspec.Meta(ge=1, le=256)] = 4
    batch_max_events: Positive = 500
    batch_max_wait_ms: Positive = 50
    #: Batches a stream may have in flight before its capture actor stops reading (back-pressure).
    queue_max_batches: Positive = 64
    restart_backoff_initial_s: PositiveFloat = 1.0
    restart_backoff_max_s: PositiveFloat = 60.0
    #: Where committed positions are kept (a persistent volume on Kubernetes).
    state_dir: str = "worker-sync-state"
    #: Ray resources each capture and applier actor reserves. 0 reserves none (Ray then places them anywhere
    #: and an autoscaler sees no demand); on Kubernetes the chart sets them, so the workers scale with the actors.
    actor_cpus: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    actor_memory_bytes: Annotated[int, msgspec.Meta(ge=0)] = 0


class Http(Base, frozen=True, kw_only=True):
    host: str = "127.0.0.1"
    port: Port = 8080
    #: Bearer token for POST endpoints, from an env variable or a file.
    token_env: str | None = "WORKER_SYNC_HTTP_TOKEN"
    token_file: str | None = None
    #: PEM certificate (chain) and private key: with both, the port speaks TLS 1.3 only (https://).
    tls_cert_file: str | None = None
    tls_key_file: str | None = None

    def __post_init__(self) -> None:
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            raise ValueError("http: TLS needs both `tls_cert_file` and `tls_key_file` (or neither)")

    @property
    def scheme(self) -> str:
        """How clients reach the port: ``https`` once it has a certificate."""
        return "https" if self.tls_cert_file else "http"


class Config(Base, frozen=True, kw_only=True):
    databases: Databases = Databases()
    nodes: list[NamedNode] = []
    links: list[Link] = []
    audit: Audit = Audit()
    masking: Masking = Masking()
    supervisor: Supervisor = Supervisor()
    http: Http = Http()
    log_level: LogLevel = "info"
