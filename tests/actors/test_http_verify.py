"""POST /verify/results on the supervisor's port (actors/http.py): the bearer token, junk, a link the config does
not have, and a supervisor still waiting to start each get their own answer; GET lists what is kept."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from actors.http import StatusServer
from actors.standby import Standby
from actors.verify_results import VerifyResults

TOKEN = "http-verify-token-73c1"


class Kept(Standby):
    """The HTTP port's Control as a running supervisor answers verify results: its VerifyResults."""

    def __init__(self, results: VerifyResults) -> None:
        super().__init__()
        self.results = results

    def record_verify(self, document: Any) -> dict[str, Any]:
        return self.results.record(document)

    def verify_list(self) -> list[dict[str, Any]]:
        return self.results.views()


def serve(control: Standby) -> Iterator[str]:
    server = StatusServer(
        "127.0.0.1", 0, status=dict, healthy=lambda: True, ready=lambda: True, token=TOKEN, control=control
    )
    server.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.stop()


@pytest.fixture
def kept(tmp_path: Path) -> Iterator[str]:
    yield from serve(Kept(VerifyResults(tmp_path, ["orders"])))


@pytest.fixture
def waiting() -> Iterator[str]:
    yield from serve(Standby())


def post(url: str, body: bytes, token: str | None = TOKEN) -> tuple[int, str]:
    request = urllib.request.Request(f"{url}/verify/results", data=body, method="POST")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


RESULT = json.dumps({"link": "orders", "mismatches": 2, "finished_at": 1765000000.5}).encode()


def test_each_refusal_has_its_own_answer(kept: str, waiting: str) -> None:
    assert post(kept, RESULT, token=None)[0] == 401
    assert post(kept, RESULT, token="wrong")[0] == 401
    assert post(kept, b"not json")[0] == 400
    assert post(kept, b'{"link": "orders"}')[0] == 400
    code, text = post(kept, RESULT.replace(b"orders", b"stock"))
    assert code == 404 and "no link `stock`" in text
    code, text = post(waiting, RESULT)
    assert code == 503 and "not running yet" in text


def test_a_kept_result_is_listed(kept: str) -> None:
    code, text = post(kept, RESULT)
    assert code == 201 and json.loads(text)["mismatches"] == 2
    with urllib.request.urlopen(f"{kept}/verify/results", timeout=10) as answer:
        [listed] = json.loads(answer.read())
    assert listed["link"] == "orders" and listed["finished_at"] == 1765000000.5


def test_a_result_that_cannot_be_kept_is_refused_with_503(tmp_path: Path) -> None:
    """The state directory is a file (as good as unwritable, whatever the user): 503, never a 201."""
    blocked = tmp_path / "state"
    blocked.write_text("not a directory")
    for url in serve(Kept(VerifyResults(blocked, ["orders"]))):
        code, text = post(url, RESULT)
        assert code == 503 and "could not be kept" in text
