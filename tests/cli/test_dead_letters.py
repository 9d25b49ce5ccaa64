"""`worker-sync dead-letters list|show|retry|discard` against the real HTTP port (actors/http.py).

The supervisor's side is a small in-memory stand-in for the `Control` methods: this proves the HTTP routes,
the bearer token and the command's output and exit codes, not the dead-letter path of the pipeline.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from actors.cli import main
from actors.harness.secret_files import write_secret_file
from actors.http import StatusServer
from config.exit_codes import Exit

TOKEN = "dead-letter-token"
FIRST = "3f2a9c0b1d4e"
HELD = "77aa00bb11cc"
LONG_REASON = "value too long for type character varying(8): " + "x" * 200


def letter(ident: str, **fields: Any) -> dict[str, Any]:
    view = {
        "id": ident,
        "state": "dead",
        "link": "orders",
        "source_node": "postgresql",
        "target_node": "mysql",
        "namespace": "shop.orders",
        "key": {"id": 7},
        "op": "upsert",
        "row": {"id": "7", "customer": "a-customer-name-too-long"},
        "reason": LONG_REASON,
        "first_at": "2026-01-01T00:00:00+00:00",
        "last_at": "2026-01-01T00:00:05+00:00",
        "attempts": 1,
        "held_behind": None,
    }
    view.update(fields)
    return view


class Letters:
    """The `Control` methods of the HTTP port, over a dict; a retry settles on the second poll after it."""

    def __init__(self, outcome: str = "resolved") -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self.outcome = outcome
        self.polls: dict[str, int] = {}
        self.lock = threading.Lock()

    # Conflicts and re-sync are not this test's concern.
    def conflict_list(self) -> list[dict[str, Any]]:
        return []

    def conflict_get(self, ident: str) -> dict[str, Any] | None:
        return None

    def resolve_conflict(self, ident: str, take: str) -> dict[str, Any]:
        raise KeyError(ident)

    def request_resync(self, stream: str) -> dict[str, Any]:
        raise KeyError(stream)

    def dead_letter_list(self) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(item) for item in self.items.values()]

    def dead_letter_get(self, ident: str) -> dict[str, Any] | None:
        with self.lock:
            item = self.items.get(ident)
            if item is None:
                return None
            view = dict(item)
            if item["state"] == "retrying":
                self.polls[ident] = self.polls.get(ident, 0) + 1
                if self.polls[ident] == 1:  # the first poll still sees it retrying, the next the outcome
                    item["state"] = self.outcome
                    item["attempts"] += 1
                    if self.outcome == "dead":
                        item["reason"] = "still too long for character varying(8)"
            return view

    def retry_dead_letter(self, ident: str) -> dict[str, Any]:
        with self.lock:
            self.items[ident]["state"] = "retrying"  # KeyError for an unknown id, as the supervisor's
            return dict(self.items[ident])

    def discard_dead_letter(self, ident: str) -> dict[str, Any]:
        with self.lock:
            self.items[ident]["state"] = "discarded"
            return dict(self.items[ident])


@pytest.fixture
def letters() -> Letters:
    return Letters()


@pytest.fixture
def url(letters: Letters) -> Iterator[str]:
    server = StatusServer(
        "127.0.0.1", 0, status=dict, healthy=lambda: True, ready=lambda: True, token=TOKEN, control=letters
    )
    server.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.stop()


@pytest.fixture
def token(tmp_path) -> str:
    return write_secret_file(tmp_path, "token", TOKEN)


def test_list_when_there_are_none(url, token, capsys) -> None:
    assert main(["dead-letters", "list", "--url", url, "--token-file", token]) == Exit.OK
    assert capsys.readouterr().out == "no dead letters\n"
    assert main(["dead-letters", "list", "--url", url, "--token-file", token, "--json"]) == Exit.OK
    assert json.loads(capsys.readouterr().out) == []


def test_list_prints_one_line_per_letter_with_the_reason_shortened(url, token, letters, capsys) -> None:
    letters.items[FIRST] = letter(FIRST)
    letters.items[HELD] = letter(HELD, op="delete", row=None, reason="held behind 3f2a9c0b1d4e", held_behind=FIRST)
    assert main(["dead-letters", "list", "--url", url, "--token-file", token]) == Exit.OK
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    first, held = lines
    assert first.startswith(f"{FIRST}  dead ")
    assert 'orders  shop.orders key {"id": 7}: value too long' in first
    reason = first.split("}: ", 1)[1]
    assert len(reason) == 100 and reason.endswith("...")
    assert held.startswith(HELD) and held.endswith(f"[held behind {FIRST}]")
    assert main(["dead-letters", "list", "--url", url, "--token-file", token, "--json"]) == Exit.OK
    assert [item["id"] for item in json.loads(capsys.readouterr().out)] == [FIRST, HELD]


def test_show_prints_every_field(url, token, letters, capsys) -> None:
    letters.items[FIRST] = letter(FIRST)
    assert main(["dead-letters", "show", FIRST, "--url", url, "--token-file", token]) == Exit.OK
    out = capsys.readouterr().out
    assert out.startswith(f"dead letter {FIRST} (dead)\n")
    for text in (
        "orders (postgresql -> mysql)",
        "shop.orders",
        '{"id": 7}',
        "upsert",
        '"customer": "a-customer-name-too-long"',
        LONG_REASON,  # whole, not shortened
        "2026-01-01T00:00:00+00:00",
        "2026-01-01T00:00:05+00:00",
        "attempts:    1",
        "held behind: -",
    ):
        assert text in out, text
    assert main(["dead-letters", "show", FIRST, "--url", url, "--token-file", token, "--json"]) == Exit.OK
    assert json.loads(capsys.readouterr().out) == letter(FIRST)


def test_show_an_unknown_id_exits_1(url, token, capsys) -> None:
    assert main(["dead-letters", "show", "000000000000", "--url", url, "--token-file", token]) == Exit.FINDINGS
    assert "404 no such dead letter" in capsys.readouterr().err


def test_retry_and_discard_need_the_token(url, letters, tmp_path, capsys) -> None:
    letters.items[FIRST] = letter(FIRST)
    for action in ("retry", "discard"):
        assert main(["dead-letters", action, FIRST, "--url", url]) == Exit.USAGE
        assert "needs the bearer token" in capsys.readouterr().err
        wrong = write_secret_file(tmp_path, "wrong", "not-the-token")
        assert main(["dead-letters", action, FIRST, "--url", url, "--token-file", wrong]) == Exit.USAGE
        assert "401 a valid bearer token is required" in capsys.readouterr().err
    assert letters.items[FIRST]["state"] == "dead"
    # The port refuses an unauthenticated POST by itself, not only the command.
    request = urllib.request.Request(f"{url}/dead-letters/{FIRST}/retry", data=b"{}")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 401


def test_retry_waits_until_resolved(url, letters, token, capsys) -> None:
    letters.items[FIRST] = letter(FIRST)
    assert main(["dead-letters", "retry", FIRST, "--url", url, "--token-file", token, "--wait", "10"]) == Exit.OK
    assert capsys.readouterr().out.splitlines() == [
        f"dead letter {FIRST}: retrying",
        f"dead letter {FIRST}: resolved (applied at mysql)",
    ]
    assert letters.polls[FIRST] == 1
    assert letters.items[FIRST]["state"] == "resolved"


def test_retry_refused_again_exits_1_with_the_reason(url, letters, token, capsys) -> None:
    letters.outcome = "dead"
    letters.items[FIRST] = letter(FIRST)
    assert main(["dead-letters", "retry", FIRST, "--url", url, "--token-file", token]) == Exit.FINDINGS
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"dead letter {FIRST}: retrying",
        f"dead letter {FIRST}: dead: still too long for character varying(8)",
    ]


def test_retry_json_prints_the_settled_view(url, letters, token, capsys) -> None:
    letters.items[FIRST] = letter(FIRST)
    assert main(["dead-letters", "retry", FIRST, "--url", url, "--token-file", token, "--json"]) == Exit.OK
    view = json.loads(capsys.readouterr().out)
    assert view["state"] == "resolved" and view["attempts"] == 2


def test_retry_without_waiting_only_asks(url, letters, token, capsys) -> None:
    letters.items[FIRST] = letter(FIRST)
    assert main(["dead-letters", "retry", FIRST, "--url", url, "--token-file", token, "--wait", "0"]) == Exit.OK
    assert capsys.readouterr().out == f"dead letter {FIRST}: retrying\n"
    assert FIRST not in letters.polls


def test_retry_or_discard_of_an_unknown_id_exits_1(url, token, capsys) -> None:
    for action in ("retry", "discard"):
        assert main(["dead-letters", action, "000000000000", "--url", url, "--token-file", token]) == Exit.FINDINGS
        assert "404 no such dead letter" in capsys.readouterr().err


def test_discard(url, letters, token, capsys) -> None:
    letters.items[FIRST] = letter(FIRST)
    assert main(["dead-letters", "discard", FIRST, "--url", url, "--token-file", token]) == Exit.OK
    assert capsys.readouterr().out == f"dead letter {FIRST}: discarded\n"
    assert letters.items[FIRST]["state"] == "discarded"
    assert main(["dead-letters", "show", FIRST, "--url", url, "--token-file", token, "--json"]) == Exit.OK
    assert json.loads(capsys.readouterr().out)["state"] == "discarded"


def test_an_unreachable_instance_exits_3(token, capsys) -> None:
    assert main(["dead-letters", "list", "--url", "http://127.0.0.1:1", "--token-file", token]) == Exit.UNAVAILABLE
    assert "cannot reach" in capsys.readouterr().err


def test_help_says_what_a_dead_letter_is(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["dead-letters", "--help"])
    out = capsys.readouterr().out
    for text in ("refused for good", "Nothing is lost", "retry ID", "discard ID", "list", "show"):
        assert text in out, text


def test_rows_are_behind_the_token(url, letters, tmp_path, capsys) -> None:
    """Dead letters hold rows: listing or showing them without the token is refused by the command, and by
    the server (401) for a request that comes without it."""
    letters.items[FIRST] = letter(FIRST)
    assert main(["dead-letters", "list", "--url", url]) == Exit.USAGE
    assert "needs the bearer token" in capsys.readouterr().err
    for path in ("/dead-letters", f"/dead-letters/{FIRST}", "/conflicts"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url + path, timeout=5)
        assert refused.value.code == 401, path
