"""The last `worker-sync verify` result of each link, as the supervisor keeps and exports it.

`verify` runs in a pod (or shell) of its own, the chart's CronJob; with `--report` it posts its result to the
supervisor's HTTP port (POST /verify/results), which keeps the last one per link in ``supervisor.state_dir``
(so a restarted supervisor still exports it) and sets ``worker_sync_verify_mismatches{link}`` and
``worker_sync_verify_last_run_timestamp_seconds{link}``: Prometheus alerts on a mismatch and on a verify
that stopped running. Only counts are kept, never rows: the file and the gauges hold no data.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgspec

log = logging.getLogger(__name__)

#: The file in ``supervisor.state_dir``.
FILE_NAME = "verify-results.json"


class VerifyResult(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    """One verify run of one link, as `verify --report` sends it."""

    link: str
    #: Keys that differed (after the in-flight re-checks), over every table of the link.
    mismatches: int
    #: When the run finished (Unix seconds, the verifying host's clock).
    finished_at: float
    tables: int = 0
    source_rows: int = 0
    target_rows: int = 0
    seconds: float = 0.0
    #: Keys `--repair` wrote or deleted at the target in that run (the mismatches stay as found).
    repaired: int = 0


class VerifyResults:
    """The last result per configured link; thread-safe (the HTTP threads record, /metrics reads)."""

    def __init__(self, state_dir: str | os.PathLike[str], links: Iterable[str]) -> None:
        self._path = Path(state_dir) / FILE_NAME
        self._links = frozenset(links)
        self._lock = threading.Lock()
        self._latest: dict[str, VerifyResult] = {}
        for result in self._load():
            if result.link in self._links:  # a link removed from the config exports nothing
                self._latest[result.link] = result
                _export(result)

    def record(self, document: Any) -> dict[str, Any]:
        """Keep ``document`` (a decoded JSON object) as its link's last result; ValueError when it is not
        one, KeyError for a link the config does not have."""
        try:
            result = msgspec.convert(document, VerifyResult)
        except msgspec.ValidationError as exc:
            raise ValueError(f"not a verify result: {exc}") from None
        if result.mismatches < 0 or not math.isfinite(result.finished_at):
            raise ValueError("not a verify result: `mismatches` must be >= 0 and `finished_at` a time")
        if result.link not in self._links:
            raise KeyError(result.link)
        with self._lock:
            self._latest[result.link] = result
            self._save(list(self._latest.values()))
        _export(result)
        log.info("verify: link %s: %d keys differ (reported)", result.link, result.mismatches)
        return msgspec.to_builtins(result)

    def views(self) -> list[dict[str, Any]]:
        with self._lock:
            return [msgspec.to_builtins(r) for _, r in sorted(self._latest.items())]

    def _load(self) -> list[VerifyResult]:
        try:
            return msgspec.json.decode(self._path.read_bytes(), type=list[VerifyResult])
        except FileNotFoundError:
            return []
        except (OSError, msgspec.DecodeError) as exc:  # unreadable, torn or foreign: start afresh, say so
            log.warning("verify: %s cannot be read (%s); the last results are forgotten", self._path, exc)
            return []

    def _save(self, results: list[VerifyResult]) -> None:
        """Temp file, fsync, rename: a crash leaves the old or the new results, never a torn file."""
        self._path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._path.with_suffix(".tmp")
        with open(tmp, "wb") as handle:
            handle.write(msgspec.json.encode(results))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self._path)


def _export(result: VerifyResult) -> None:
    from actors.metrics import VERIFY_LAST_RUN, VERIFY_MISMATCHES

    VERIFY_MISMATCHES.labels(result.link).set(result.mismatches)
    VERIFY_LAST_RUN.labels(result.link).set(result.finished_at)
