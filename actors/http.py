"""The supervisor's one HTTP port: /healthz, /readyz, /status, /metrics and POST /sync/manual.

Runs in a thread of the supervisor process and only reads a status snapshot the supervisor
publishes each loop, so a slow client never slows the pipeline.
"""

from __future__ import annotations

import hmac
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import msgspec
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from actors.metrics import REGISTRY

log = logging.getLogger(__name__)


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
                else:
                    outer._plain(self, 404, "not found")

            def do_POST(self) -> None:
                if self.path != "/sync/manual":
                    outer._plain(self, 404, "not found")
                    return
                given = self.headers.get("Authorization", "")
                if token is None or not hmac.compare_digest(given, f"Bearer {token}"):
                    outer._plain(self, 401, "a valid bearer token is required")
                    return
                outer._plain(self, 501, "manual sync is not built yet in this version")

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

    def _plain(self, handler: BaseHTTPRequestHandler, code: int, text: str) -> None:
        self._send(handler, code, "text/plain; charset=utf-8", (text + "\n").encode())

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
