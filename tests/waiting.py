"""The one way tests wait for something to become true (no bare time.sleep in tests).

``what`` names the awaited condition in the failure message; it may be a callable, called only on failure,
so the message can show the state at that moment.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")
POLL_S = 0.05

Described = str | Callable[[], str]


def _text(what: Described) -> str:
    return what if isinstance(what, str) else what()


def wait_until(check: Callable[[], bool], *, timeout_s: float, what: Described) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s}s waiting for {_text(what)}")
        time.sleep(POLL_S)


def stays_true(check: Callable[[], bool], *, for_s: float, what: Described) -> None:
    """Assert ``check`` holds throughout the next ``for_s`` seconds (for "nothing extra arrives"): it is
    checked repeatedly, the last time after ``for_s`` has passed, and the test fails the first time it is false."""
    started = time.monotonic()
    while True:
        elapsed = time.monotonic() - started
        if not check():
            pytest.fail(f"{_text(what)}: no longer so {elapsed:.2f}s into the {for_s}s it must hold")
        if elapsed >= for_s:
            return
        time.sleep(POLL_S)


def wait_until_stable(
    read: Callable[[], T],
    *,
    ok: Callable[[T], bool],
    for_s: float,
    timeout_s: float,
    what: str,
    describe: Callable[[T], str] | None = None,
) -> T:
    """Wait until ``read()`` returns a value that satisfies ``ok`` and then keeps returning an equal value that
    still satisfies it for at least ``for_s`` seconds (every read in between included); returns that value.
    On timeout, ``describe`` (if given) tells about the last value read."""
    deadline = time.monotonic() + timeout_s
    stable: tuple[T, float] | None = None  # the value and when it was first read
    while True:
        read_at = time.monotonic()
        value = read()
        if not ok(value):
            stable = None
        elif stable is not None and value == stable[0]:
            if read_at - stable[1] >= for_s:
                return value
        else:
            stable = (value, time.monotonic())
        if time.monotonic() > deadline:
            detail = f": {describe(value)}" if describe is not None else ""
            pytest.fail(f"timed out after {timeout_s}s waiting for {what}{detail}")
        time.sleep(POLL_S)
