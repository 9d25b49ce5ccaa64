"""The retention watch's own logic, without servers: headroom in bytes becomes seconds at the source's write
rate, the gauges follow each measurement (a headroom with no limit has no series, so no alert), a failed
measurement keeps the last figure, and `worker-sync status` prints the figure and exits 1 when at risk."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from actors.cli import status as status_cli
from actors.control import retention as watch_module
from actors.control.retention import RetentionWatch
from actors.core.retention import AT_RISK, Retention
from actors.metrics import REGISTRY


class FakeEngine:
    def __init__(self) -> None:
        self.figures: list[Retention | Exception] = []

    def retention(self, name, node, position):
        figure = self.figures.pop(0)
        if isinstance(figure, Exception):
            raise figure
        return figure


@pytest.fixture
def engine(monkeypatch) -> FakeEngine:
    fake = FakeEngine()
    monkeypatch.setattr(watch_module, "engine_for", lambda node: fake)
    return fake


def stream(name: str) -> SimpleNamespace:
    spec = SimpleNamespace(stream=name, node_name="src", node=object())
    return SimpleNamespace(spec=spec, progress=SimpleNamespace(committed=None))


def gauge(metric: str, stream_name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(metric, {"stream": stream_name, **labels})


def test_headroom_bytes_become_seconds_at_the_write_rate(engine: FakeEngine, monkeypatch) -> None:
    clock = iter([100.0, 110.0])
    monkeypatch.setattr(watch_module.time, "monotonic", lambda: next(clock))
    state = stream("rate")
    watch = RetentionWatch(SimpleNamespace(states={"rate": state}))
    engine.figures = [
        Retention(retained_bytes=1_000, headroom_bytes=50_000, written_bytes=10_000),
        Retention(retained_bytes=6_000, headroom_bytes=45_000, written_bytes=15_000),  # 500 bytes/s
    ]
    first = watch.check(state)
    assert first.headroom_seconds is None  # one measurement gives no rate
    assert gauge("worker_sync_source_retention_headroom_seconds", "rate") is None
    second = watch.check(state)
    assert second.headroom_seconds == 90.0
    assert gauge("worker_sync_source_retained_bytes", "rate") == 6_000
    assert gauge("worker_sync_source_retention_headroom_seconds", "rate") == 90.0
    assert gauge("worker_sync_source_retention_state", "rate", state="ok") == 1


def test_a_failed_measurement_keeps_the_last_figure_and_no_limit_drops_the_series(engine: FakeEngine) -> None:
    state = stream("keep")
    watch = RetentionWatch(SimpleNamespace(states={"keep": state}))
    engine.figures = [
        Retention(retained_bytes=10, headroom_seconds=30.0, state=AT_RISK, detail="d"),
        ConnectionError("refused"),
        Retention(retained_bytes=20),
    ]
    watch.check(state)
    assert gauge("worker_sync_source_retention_state", "keep", state="at_risk") == 1
    assert watch.check(state) is None
    assert watch.latest("keep").retained_bytes == 10
    assert gauge("worker_sync_source_retention_headroom_seconds", "keep") == 30.0
    watch.check(state)
    assert gauge("worker_sync_source_retention_headroom_seconds", "keep") is None
    assert gauge("worker_sync_source_retention_state", "keep", state="at_risk") == 0


def test_status_prints_the_source_log_and_fails_when_at_risk(monkeypatch, capsys) -> None:
    figure = {"retained_bytes": 123_456, "headroom_seconds": 42.4, "state": "at_risk", "detail": "slot s"}
    row = {
        "stream": "pg",
        "captured_events": 1,
        "applied_events": 1,
        "batches_in_flight": 0,
        "lag_ms": 0.0,
        "end_to_end_lag_ms": {"p50": 0, "p99": 0, "max": 0},
        "committed": "0/1",
        "error": None,
        "source_log": figure,
    }
    document = {"run_id": "r", "uptime_s": 1, "ready": True, "streams": [row], "shards": []}

    class Response:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def read(self):
            return json.dumps(document).encode()

    monkeypatch.setattr(status_cli.urllib.request, "urlopen", lambda url, timeout: Response())
    args = SimpleNamespace(url="http://x", config=None, json=False)
    assert status_cli.run(args) == 1
    assert "source log: AT_RISK: 123,456 bytes retained, 42 s headroom (slot s)" in capsys.readouterr().out
    figure["state"] = "ok"
    assert status_cli.run(args) == 0
