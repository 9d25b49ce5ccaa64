"""The supervisor's HTTP port (actors/http.py) when a client goes away early: one log line, no traceback,
and the port keeps serving."""

from __future__ import annotations

import logging
import socket
import struct
import threading
import urllib.request
from collections.abc import Iterator

import pytest

from actors.http import StatusServer
from tests.waiting import wait_until

#: Far more than the socket buffers hold, so writing it to a reset connection must fail.
BIG = {"padding": "x" * 8_000_000}


def reset(sock: socket.socket) -> None:
    """Close with a TCP reset (SO_LINGER 0), as a client that gives up does."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class SlowStatus:
    """A /status that waits until the test has closed its socket, then answers with a big document."""

    def __init__(self) -> None:
        self.asked = threading.Event()
        self.client_gone = threading.Event()

    def __call__(self) -> object:
        self.asked.set()
        self.client_gone.wait(timeout=30)
        return BIG


@pytest.fixture
def status() -> SlowStatus:
    return SlowStatus()


@pytest.fixture
def port(status: SlowStatus) -> Iterator[int]:
    server = StatusServer("127.0.0.1", 0, status=status, healthy=lambda: True, ready=lambda: True, token=None)
    server.start()
    try:
        yield server.port
    finally:
        status.client_gone.set()
        server.stop()


def went_away(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "actors.http" and "went away" in r.getMessage()]


def still_serving(port: int) -> None:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as answer:
        assert answer.read() == b"ok\n"


def test_a_client_gone_before_its_answer_costs_one_line_and_no_traceback(port, status, caplog, capfd) -> None:
    caplog.set_level(logging.DEBUG, logger="actors.http")
    client = socket.create_connection(("127.0.0.1", port), timeout=10)
    client.sendall(b"GET /status HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert status.asked.wait(timeout=10)
    reset(client)
    status.client_gone.set()
    wait_until(lambda: bool(went_away(caplog)), timeout_s=30, what="the log line about the client gone")
    still_serving(port)
    [record] = went_away(caplog)
    assert "before the answer to GET /status" in record.getMessage()
    assert record.levelno <= logging.INFO
    assert record.exc_info is None
    assert not [r for r in caplog.records if r.exc_info], "no record may carry a traceback"
    err = capfd.readouterr().err
    assert "Traceback" not in err
    assert "BrokenPipeError" not in err and "ConnectionResetError" not in err


def test_a_client_reset_while_its_request_is_read_costs_no_traceback(port, caplog, capfd) -> None:
    caplog.set_level(logging.DEBUG, logger="actors.http")
    for _ in range(5):
        client = socket.create_connection(("127.0.0.1", port), timeout=10)
        client.sendall(b"GET /healthz HTTP/1.1\r\nHost: loc")  # half a request, then a reset
        reset(client)
    still_serving(port)
    assert not [r for r in caplog.records if r.exc_info], "no record may carry a traceback"
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Exception occurred during processing" not in err
