"""The supervisor's side of dead letters: record what shards set aside, block those rows, run retries.

The supervisor loop calls :meth:`DeadLetterManager.record` with each shard reply's dead letters *before*
it marks that reply's parts done, so a source position commits only once its refused changes are on disk.
The HTTP thread asks for retries and discards; the loop sends a retry to the shard that set the letters
aside (:meth:`take_retries`, then :meth:`retried` with the outcome). Every recorded and every resolved
letter also becomes an audit detail (:meth:`take_audit`).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import deque
from pathlib import Path
from typing import Any

from actors.core.dead_letters import DeadLetter
from actors.dead_letter_store import OPEN, DeadLetterStore, Entry

log = logging.getLogger(__name__)


class DeadLetterManager:
    def __init__(self, state_dir: str | Path, stop_on_error: frozenset[str] = frozenset()) -> None:
        self.store = DeadLetterStore(state_dir)
        #: Links configured with ``on_error: stop``: a dead letter of theirs stops their source stream.
        self.stop_on_error = stop_on_error
        self._blocked = self.store.blocked()
        self._lock = threading.Lock()
        self._retries: deque[str] = deque()
        #: (kind, request id, detail) waiting to be recorded in the audit log.
        self._audit: list[tuple[str, str, dict[str, object]]] = []
        self._publish()

    def expect(self, tables: set[tuple[str, str]]) -> None:
        """Start the counter of every (link, target table) at 0, so the first dead letter is an increase
        Prometheus sees (a series that appears at 1 is not one)."""
        from actors.metrics import DEAD_LETTERS

        for link, table in tables:
            DEAD_LETTERS.labels(link, table)

    @property
    def blocked(self) -> frozenset[str]:
        """Rows with an open dead letter (sent with every apply call)."""
        return self._blocked

    def record(self, letters: list[DeadLetter]) -> list[Entry]:
        """Store what a shard set aside (durably); returns the new entries. Call before the positions of the
        parts they came from commit."""
        from actors.metrics import DEAD_LETTERS

        if not letters:
            return []
        entries = self.store.add(letters)
        for entry in entries:
            DEAD_LETTERS.labels(entry.link, entry.namespace).inc()
            if not entry.held:
                log.error(
                    "dead letter %s: link %s, %s on %s: %s (the rest flows on; `worker-sync dead-letters show %s`)",
                    entry.id,
                    entry.link,
                    entry.namespace,
                    entry.target_node,
                    entry.reason,
                    entry.id,
                )
            self._audit.append(("dead-letter", f"dead-letter:{entry.id}", _detail(entry, "set-aside")))
        self._changed()
        return entries

    def stopping(self, entries: list[Entry]) -> dict[str, str]:
        """Source streams to stop (``on_error: stop``), with the error to show for each."""
        return {
            entry.source_node: f"dead letter {entry.id} on link {entry.link}: {entry.reason}"
            for entry in entries
            if entry.link in self.stop_on_error and not entry.held
        }

    # -- the HTTP thread ----------------------------------------------------------------------------

    def views(self) -> list[dict[str, Any]]:
        return [entry.view(self.store.held_behind(entry.id)) for entry in self.store.all()]

    def view(self, ident: str) -> dict[str, Any] | None:
        entry = self.store.get(ident)
        return None if entry is None else entry.view(self.store.held_behind(ident))

    def request_retry(self, ident: str) -> dict[str, Any]:
        """Queue a retry of the row ``ident`` belongs to (all its open letters, oldest first). KeyError
        for an unknown id; an entry already applied or discarded is returned as it is."""
        entry = self.store.get(ident)
        if entry is None:
            raise KeyError(ident)
        if entry.state in OPEN:
            for item in self.store.row_entries(ident):
                self.store.set_state(item.id, "retrying")
            with self._lock:
                self._retries.append(ident)
        view = self.view(ident)
        assert view is not None
        return view

    def discard(self, ident: str) -> dict[str, Any]:
        """Drop one dead letter for good (its row unblocks once none of its letters is open)."""
        entry = self.store.get(ident)
        if entry is None:
            raise KeyError(ident)
        if entry.state in OPEN:
            entry = self.store.set_state(ident, "discarded")
            log.warning(
                "dead letter %s discarded: %s on %s will not get that change", ident, entry.namespace, entry.target_node
            )
            self._audit.append(("dead-letter-resolved", f"dead-letter-resolved:{ident}", _detail(entry, "discarded")))
            self._changed()
        view = self.view(ident)
        assert view is not None
        return view

    # -- the loop -----------------------------------------------------------------------------------

    def take_retries(self) -> list[tuple[int, list[Entry]]]:
        """The retries asked for since the last call: per request, the shard to send them to and the
        row's open letters in order."""
        with self._lock:
            asked, self._retries = list(self._retries), deque()
        batches = []
        for ident in asked:
            entries = self.store.row_entries(ident)
            if entries:
                batches.append((entries[0].shard, entries))
        return batches

    def retried(self, entries: list[Entry], outcomes: list[str | None] | None, error: str | None = None) -> None:
        """A shard's answer to a retry: per entry None (applied) or why it is still refused; ``outcomes``
        None when the call itself failed (``error``): the letters stay dead with that reason."""
        for index, entry in enumerate(entries):
            outcome = error if outcomes is None else outcomes[index]
            if outcome is None:
                done = self.store.set_state(entry.id, "resolved")
                log.info("dead letter %s applied on retry", entry.id)
                self._audit.append(
                    ("dead-letter-resolved", f"dead-letter-resolved:{entry.id}", _detail(done, "retried"))
                )
            else:
                self.store.set_state(entry.id, "dead", reason=outcome)
        self._changed()

    def take_audit(self) -> list[tuple[str, str, dict[str, object]]]:
        taken, self._audit = self._audit, []
        return taken

    def _changed(self) -> None:
        self._blocked = self.store.blocked()
        self._publish()

    def _publish(self) -> None:
        from actors.metrics import DEAD_LETTERS_PENDING

        DEAD_LETTERS_PENDING.set(self.store.pending())


def _detail(entry: Entry, what: str) -> dict[str, object]:
    """An audit detail: where, which row, why, and the change's digest (not the row itself, which may be
    large or personal)."""
    letter = entry.letter()
    return {
        "id": entry.id,
        "what": what,
        "link": entry.link,
        "source_node": entry.source_node,
        "target_node": entry.target_node,
        "namespace": entry.namespace,
        "key": {name: str(value) for name, value in letter.key.items()},
        "reason": entry.reason,
        "held": entry.held,
        "change_sha256": hashlib.sha256(letter.change).hexdigest(),
    }
