"""Exponential backoff between retries of one thing (a stream, a shard, the audit actor)."""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass
class Backoff:
    initial_s: float
    max_s: float
    failures: int = 0
    not_before: float = 0.0
    #: When the current run of failures began (None: the last try succeeded).
    failing_since: float | None = None

    def failed(self) -> float:
        """Count a failure; the delay before the next try."""
        self.failures += 1
        if self.failing_since is None:
            self.failing_since = time.monotonic()
        delay = min(self.max_s, self.initial_s * 2 ** (self.failures - 1))
        self.not_before = time.monotonic() + delay
        return delay

    def succeeded(self) -> None:
        self.failures = 0
        self.not_before = 0.0
        self.failing_since = None

    def failing_for(self, now: float) -> float:
        """Seconds since the current run of failures began (0 when not failing)."""
        return 0.0 if self.failing_since is None else now - self.failing_since

    @property
    def ready(self) -> bool:
        return time.monotonic() >= self.not_before
