"""observe_many (actors/metrics.py) exports exactly what one observe() per value would."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from actors.metrics import observe_many

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


def _exported(fill: Callable[[Histogram], None]) -> dict[str, float]:
    """Each exported sample (bucket counts, count, sum) by its line's name and labels."""
    registry = CollectorRegistry()
    histogram = Histogram("lag_seconds", "lag", ["stream"], buckets=BUCKETS, registry=registry)
    fill(histogram.labels("s"))
    lines = generate_latest(registry).decode().splitlines()
    return {
        name: float(value)
        for name, value in (
            line.rsplit(" ", 1) for line in lines if not line.startswith("#") and "_created" not in line
        )
    }


def test_observe_many_equals_one_observe_per_value() -> None:
    rng = random.Random(7)
    # Values on the bucket bounds themselves (le is inclusive), between them, above the last, and zero.
    amounts = [
        *BUCKETS,
        0.0,
        99.0,
        *(rng.uniform(0, 12) for _ in range(500)),
        *(rng.choice(BUCKETS) for _ in range(50)),
    ]

    def one_by_one(child: Histogram) -> None:
        for amount in amounts:
            child.observe(amount)

    def at_once(child: Histogram) -> None:
        observe_many(child, amounts[:300])
        observe_many(child, [])
        observe_many(child, amounts[300:])

    expected, got = _exported(one_by_one), _exported(at_once)
    assert expected['lag_seconds_bucket{le="0.005",stream="s"}'] >= len(BUCKETS) // 5  # the bounds themselves count
    total = 'lag_seconds_sum{stream="s"}'
    assert got.pop(total) == pytest.approx(expected.pop(total), rel=1e-12)  # summed in another order
    assert got == expected  # every bucket and the count exactly
