"""The supervisor's one HTTP port: /healthz, /readyz, /status, /metrics, the parked conflicts of
`manual` groups (GET /conflicts, GET /conflicts/ID, POST /conflicts/ID/resolve) and POST /sync/manual
(re-read a stream's tables from a fresh snapshot).

Runs in a thread of the supervisor process and only reads a status snapshot the supervisor
publishes each loop, so a slow client never slows the pipeline.
"""

from __future__ import annotations

import hmac
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Protocol

import msgspec
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from actors.metrics import REGISTRY

if TYPE_CHECKING:
    from actors.conflict_store import Take

log = logging.getLogger(__name__)


class Control(Protocol):
    """What the supervisor offers the HTTP port: parked conflicts (actors/conflict_store.py), manual re-sync."""

    def conflict_list(self) -> list[dict[str, Any]]: ...

    def conflict_get(self, ident: str) -> dict[str, Any] | None: ...

    def resolve_conflict(self, ident: str, take: Take) -> dict[str, Any]: ...

    def request_resync(self, stream: str) -> dict[str, Any]: ...


class StatusServer:
    def __init__(
        self,
        host: str,
        port: int,
        *,
        status: Callable[[], object],
        healthy: Callable[[], bool],
        ready: Callable[[], bool],
        token: str | None,
        control: Control | None = None,
    ) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/healthz":
                    outer._plain(self, 200 if healthy() else 503, "ok" if healthy() else "unhealthy")
                elif self.path == "/readyz":
                    outer._plain(self, 200 if ready() else 503, "ready" if ready() else "not ready")
                elif self.path == "/status":
                    outer._send(self, 200, "application/json", msgspec.json.encode(status()))
                elif self.path == "/metrics":
                    outer._send(self, 200, CONTENT_TYPE_LATEST, generate_latest(REGISTRY))
                elif self.path == "/conflicts" and control is not None:
                    outer._json(self, 200, control.conflict_list())
                elif self.path.startswith("/conflicts/") and control is not None:
                    found = control.conflict_get(self.path.removeprefix("/conflicts/"))
                    outer._json(self, 200, found) if found else outer._plain(self, 404, "no such conflict")
                else:
                    outer._plain(self, 404, "not found")

            def do_POST(self) -> None:
                resolving = self.path.startswith("/conflicts/") and self.path.endswith("/resolve")
                if self.path != "/sync/manual" and not resolving:
                    outer._plain(self, 404, "not found")
                    return
                given = self.headers.get("Authorization", "")
                if token is None or not hmac.compare_digest(given, f"Bearer {token}"):
                    outer._plain(self, 401, "a valid bearer token is required")
                    return
                if not resolving:
                    outer._resync(self, control)
                    return
                outer._resolve(self, control, self.path.removeprefix("/conflicts/").removesuffix("/resolve"))

            def log_message(self, format: str, *args: object) -> None:
                log.debug("http %s", format % args)

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="http", daemon=True)

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, code: int, content_type: str, body: bytes) -> None:
        handler.send_response(code)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def _json(self, handler: BaseHTTPRequestHandler, code: int, document: object) -> None:
        self._send(handler, code, "application/json", msgspec.json.encode(document))

    @staticmethod
    def _body(handler: BaseHTTPRequestHandler, field: str) -> object:
        length = int(handler.headers.get("Content-Length") or 0)
        try:
            return msgspec.json.decode(handler.rfile.read(length) or b"{}").get(field)
        except (msgspec.DecodeError, AttributeError):
            return None

    def _resync(self, handler: BaseHTTPRequestHandler, control: Control | None) -> None:
        stream = self._body(handler, "stream")
        if not isinstance(stream, str):
            self._plain(handler, 400, 'send {"stream": "NAME"} (a stream is a source node: see /status)')
        elif control is None:
            self._plain(handler, 404, "no pipeline runs here")
        else:
            try:
                self._json(handler, 202, control.request_resync(stream))
            except KeyError:
                self._plain(handler, 404, f"no stream `{stream}` (see /status for the streams)")

    def _resolve(self, handler: BaseHTTPRequestHandler, conflicts: Control | None, ident: str) -> None:
        take = self._body(handler, "take")
        if take not in ("source", "target"):
            self._plain(handler, 400, 'send {"take": "source"} or {"take": "target"}')
        elif conflicts is None:
            self._plain(handler, 404, "no bidirectional group runs here")
        else:
            try:
                self._json(handler, 202, conflicts.resolve_conflict(ident, take))
            except KeyError:
                self._plain(handler, 404, "no such conflict")

    def _plain(self, handler: BaseHTTPRequestHandler, code: int, text: str) -> None:
        self._send(handler, code, "text/plain; charset=utf-8", (text + "\n").encode())

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
