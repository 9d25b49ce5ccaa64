"""What every engine provides, whatever its database: the change source and the engine object."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar

from actors.core.batches import TxnEnd
from actors.core.errors import NodeUnreachable, WorkerSyncError
from actors.core.events import AddedColumn, ChangeEvent, Position
from config.model import Node

if TYPE_CHECKING:
    from actors.core.retention import Retention
    from actors.core.streams import StreamSpec
    from actors.core.typemap import TableSchema
    from actors.engines.rows import RowReader
    from actors.engines.sink import BatchWriter

Change = ChangeEvent | TxnEnd | None


class ChangeSource(Protocol):
    """A database's change log as a stream of events in commit order.

    ``changes(resume_after)`` yields events (and a :class:`TxnEnd` after each transaction):
    an initial snapshot first when ``resume_after`` is None or a snapshot position, then the
    log from where ``resume_after.resume`` says. It may repeat events at or before
    ``resume_after`` (the caller drops them by position) but must never skip one. It yields
    None when it has nothing to send for now (at least every second or so): the consumer hands
    on what it holds then, and checks whether it should stop.
    """

    stream: str

    def changes(self, resume_after: Position | None, stop: threading.Event) -> Iterator[Change]: ...

    def acknowledge(self, upto: Position) -> None:
        """Everything up to ``upto`` is applied downstream: the source may release it.

        Called from another thread than the one iterating ``changes``.
        """

    def close(self) -> None: ...


N = TypeVar("N", bound=Node)


class Engine(Generic[N]):
    """Everything engine-specific that code outside actors/engines/ needs, for one kind of node.

    One instance per engine package (its ``engine`` module's ``ENGINE``), looked up by node type with
    :func:`actors.engines.registry.engine_for`; engine-neutral code asks it instead of branching on the
    node's type or importing a driver. Abilities an engine lacks keep the defaults here, which refuse."""

    #: The config's ``engine:`` tag.
    name: ClassVar[str]
    #: Prefix of `worker-sync init`'s administrator options for this engine ("" is ``--admin-user``).
    admin_flags: ClassVar[str]
    #: Whether its capture needs a marker written with each applied transaction to tell Worker-Sync's own
    #: writes (echoes) from its users' in a bidirectional group (PostgreSQL uses replication origins).
    needs_echo_marker: ClassVar[bool] = False
    #: Whether `worker-sync verify` can compare its tables (``row_reader``).
    verifiable: ClassVar[bool] = False

    def build_source(self, spec: StreamSpec) -> ChangeSource:
        raise NotImplementedError(f"capture from `{type(spec.node).__name__}` nodes is not built yet")

    def build_writer(self, node_name: str, node: N, *, echo_writer: str | None = None) -> BatchWriter[Any, Any]:
        raise NotImplementedError(f"writing to `{type(node).__name__}` nodes is not built yet")

    def connect(self, name: str, node: N, password: str | None, *, user: str | None = None, app: str) -> Any:
        """A DB-API connection (autocommit) as the node's user, or as ``user``; NodeUnreachable if refused."""
        raise NodeUnreachable(f"node `{name}`: {type(node).__name__} nodes are not supported by this command yet", "")

    def row_reader(self, name: str, node: N) -> RowReader:
        """A reader of the node's tables by key ranges (`worker-sync verify`), as the node's user."""
        from actors.core.errors import ConfigError

        raise ConfigError(
            "verify",
            f"node `{name}`: comparing {self.name} tables is not built yet (PostgreSQL and MariaDB/MySQL only)",
        )

    def retention(self, name: str, node: N, position: Position | None) -> Retention | None:
        """How much of its change log the source keeps for a stream whose committed position is ``position``
        (None: nothing committed yet), and how long before it may drop what the stream needs; None where the
        engine does not measure it (or has nothing to say yet). Opens and closes its own connection: the
        supervisor calls it from a thread of its own every few seconds."""
        return None

    def heartbeat_namespace(self, node: N) -> str | None:
        """Where the node's heartbeat row lives (``heartbeat_interval_s``); None where the engine needs none."""
        return None

    def heartbeat_statements(self, node: N, grantees: list[str]) -> list[str]:
        """The heartbeat table's DDL and grants (`worker-sync init`; shown for an administrator to run)."""
        return []

    def heartbeat(self, name: str, node: N) -> None:
        """Write one heartbeat at a source node, as its user, on a connection of its own (the supervisor's
        heartbeat thread calls it every ``heartbeat_interval_s``)."""
        raise NotImplementedError(f"{self.name} sources need no heartbeat")

    def source_schema(self, name: str, node: N, namespace: str) -> TableSchema:
        """The columns of a source table, for the start-up mapping check."""
        raise NotImplementedError(f"reading table schemas of `{type(node).__name__}` nodes is not built yet")

    def source_columns(self, name: str, node: N, namespace: str) -> dict[str, AddedColumn]:
        """Each column of a source table as a target must add it (`schema_changes: apply` at start-up)."""
        raise NotImplementedError(f"adding columns from `{type(node).__name__}` nodes is not built yet")

    def before_image_missing(self, name: str, node: N, namespace: str) -> str | None:
        """Why an update or delete captured from ``namespace`` may not carry the whole old row, in words (None:
        it always does). A row filter needs it to tell a row moving out of the filter from one never in it."""
        return f"{self.name} sources do not send whole before-images, which row filters (`where`) need"

    def config_problems(self, name: str, node: N, *, sources: Sequence[str], targets: Sequence[str]) -> list[str]:
        """What `run` would refuse about this node's config that no server needs asking about, in words (empty:
        nothing), given the namespaces it is read from (``sources``) and written to (``targets``): what
        `check-config --deep` reports before anything is deployed."""
        return []

    def group_missing(self, name: str, node: N, namespaces: list[str]) -> list[str]:
        """What the node lacks, in words, to be a member of a bidirectional group (empty: nothing)."""
        return []

    def prepare_group(
        self, name: str, node: N, namespaces: list[str], *, user: str | None, password: str | None
    ) -> list[str]:
        """Give the node what a group member needs (`worker-sync init`), as ``user`` (None: the node's own
        account); returns warnings. NodeUnreachable when it cannot connect, else an error that says why."""
        return []

    def prepare_capture(
        self, name: str, node: N, namespaces: list[str], *, user: str | None, password: str | None
    ) -> list[str]:
        """Give the node what capturing ``namespaces`` needs beyond its account's grants (`worker-sync init`), as
        ``user`` (None: the node's own account); returns warnings. Errors as for :meth:`prepare_group`."""
        return []

    def probe_namespace(self, node: N) -> str | None:
        """Where the probe table lives on the node; None where the probe does not reach (yet)."""
        return None

    def probe_table_present(self, conn: Any, node: N) -> bool:
        return False

    def probe_statements(self, node: N, grantees: list[str]) -> list[str]:
        """The probe table's DDL and grants (also shown for an administrator to run by hand)."""
        return []

    def probe_grantees(self, conn: Any, node: N) -> list[str]:
        """The node's user, as the grants must name it, when an administrator creates the probe table."""
        return [node.username]

    def quote_namespace(self, namespace: str) -> str:
        """``namespace`` quoted for a statement."""
        raise NotImplementedError(f"{self.name} has no SQL namespaces")

    def dump_command(self, node: N, out: Path) -> DumpCommand | None:
        """How the engine's own tool dumps the node into ``out``; None where dumps are not built."""
        return None

    def translate(self, exc: BaseException) -> WorkerSyncError | None:
        """``exc`` as one of Worker-Sync's errors when it is this engine's driver's, else None."""
        return None


@dataclass(frozen=True)
class DumpCommand:
    """A dump tool's invocation. ``programs``: the tool's names, the first found on PATH wins; ``package``:
    what to install for it; ``env``: added to the environment, with the password in ``password_env`` (never
    on a command line that `ps` shows)."""

    programs: tuple[str, ...]
    package: str
    args: list[str]
    env: dict[str, str]
    password_env: str


def unreachable(name: str, node: Node, exc: BaseException) -> NodeUnreachable:
    """A failed connection as NodeUnreachable, naming node, host and port and no secret."""
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return NodeUnreachable(f"node `{name}` ({node.host}:{node.port}/{node.database}): cannot connect: {reason}", reason)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
