"""The supervisor's one HTTP port: /healthz, /readyz, /status, /metrics, the parked conflicts of
`manual` groups (GET /conflicts, GET /conflicts/ID, POST /conflicts/ID/resolve), the dead letters (changes
a target refused for good, set aside with every later change of their key: GET /dead-letters,
GET /dead-letters/ID, POST /dead-letters/ID/retry, POST /dead-letters/ID/discard), POST /sync/manual
(re-read a stream's tables from a fresh snapshot) and POST /verify/results (`worker-sync verify --report`
keeps its last result per link; GET /verify/results lists them: counts only, no rows). Every POST, and
every GET that answers with rows (conflicts, dead letters), needs the instance's bearer token. With a
certificate and key (`http.tls_cert_file`, `http.tls_key_file`) the port speaks TLS 1.3 only, so the token
and the rows never cross the network in clear.

Runs in a thread of the supervisor process and only reads a status snapshot the supervisor
publishes each loop, so a slow client never slows the pipeline. A client that goes away before its
answer is written (a closed socket, a reset connection) costs one log line, never a traceback.
"""

from __future__ import annotations

import hmac
import logging
import ssl
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Protocol

import msgspec
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from actors.metrics import REGISTRY
from config.errors import ConfigError

if TYPE_CHECKING:
    from actors.conflict_store import Take

log = logging.getLogger(__name__)


#: What a client that went away raises when its answer (or the rest of its request) meets a closed socket.
GONE = (BrokenPipeError, ConnectionResetError)


class Control(Protocol):
    """What the supervisor offers the HTTP port: parked conflicts (actors/conflict_store.py), dead letters
    (actors/dead_letter_store.py), manual re-sync.

    Views are JSON-able dicts. A dead letter's view: id (12 hex), state (dead, retrying, resolved,
    discarded), link, source_node, target_node, namespace (the target table), key, op (upsert, delete),
    row (or None), reason, first_at, last_at (ISO-8601), attempts, held_behind (the id of the earlier dead
    letter of the same key this change waits behind, or None).
    """

    def conflict_list(self) -> list[dict[str, Any]]: ...

    def conflict_get(self, ident: str) -> dict[str, Any] | None: ...

    def resolve_conflict(self, ident: str, take: Take) -> dict[str, Any]: ...

    def request_resync(self, stream: str) -> dict[str, Any]: ...

    def dead_letter_list(self) -> list[dict[str, Any]]: ...

    def dead_letter_get(self, ident: str) -> dict[str, Any] | None: ...

    def retry_dead_letter(self, ident: str) -> dict[str, Any]:
        """Apply the change again (state "retrying"); KeyError for an unknown id."""
        ...

    def discard_dead_letter(self, ident: str) -> dict[str, Any]:
        """Give the change up for good (state "discarded"); KeyError for an unknown id."""
        ...

    def record_verify(self, document: Any) -> dict[str, Any]:
        """Keep a link's verify result (actors/verify_results.py): KeyError for a link the config does not
        have, ValueError for a document that is not a result, LookupError while nothing runs to keep it."""
        ...

    def verify_list(self) -> list[dict[str, Any]]: ...


def tls_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    """A server context that accepts TLS 1.3 and nothing older: the seed asks TLS 1.3 of every connection,
    and 1.3 alone leaves no cipher suite or renegotiation choice to get wrong."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    try:
        context.load_cert_chain(cert_file, key_file)
    except (OSError, ssl.SSLError) as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError(
            "http", f"cannot load `tls_cert_file` {cert_file} with `tls_key_file` {key_file}: {reason}"
        ) from None
    return context


class _Server(ThreadingHTTPServer):
    #: Set for a TLS port: each accepted connection is wrapped, its handshake done in the handler's thread.
    tls: ssl.SSLContext | None = None

    def get_request(self) -> tuple[Any, Any]:
        sock, address = super().get_request()
        if self.tls is None:
            return sock, address
        # The handshake happens on the first read, in the connection's own thread: a slow or silent client
        # never holds up the thread that accepts the others.
        return self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), address

    def handle_error(self, request: Any, client_address: Any) -> None:
        gone = sys.exc_info()[1]
        if isinstance(gone, GONE):  # the client left while its request was being read
            log.info("http: client %s went away (%s)", client_address[0], type(gone).__name__)
            return
        if isinstance(gone, ssl.SSLError):  # plain HTTP on the TLS port, TLS 1.2, an untrusted certificate...
            log.info("http: client %s: TLS handshake refused (%s)", client_address[0], gone.reason or gone)
            return
        super().handle_error(request, client_address)


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
        cert_file: str | None = None,
        key_file: str | None = None,
    ) -> None:
        """``cert_file`` and ``key_file`` (PEM) make it a TLS 1.3 port; a ConfigError when they cannot be loaded."""
        outer = self
        tls = tls_context(cert_file, key_file) if cert_file and key_file else None

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
                elif self.path == "/verify/results":
                    outer._json(self, 200, [] if control is None else control.verify_list())
                elif _row_data(self.path) and not outer._authorized(self, token):
                    outer._plain(self, 401, "a valid bearer token is required (rows are behind it)")
                elif self.path == "/conflicts" and control is not None:
                    outer._json(self, 200, control.conflict_list())
                elif self.path.startswith("/conflicts/") and control is not None:
                    found = control.conflict_get(self.path.removeprefix("/conflicts/"))
                    outer._json(self, 200, found) if found else outer._plain(self, 404, "no such conflict")
                elif self.path == "/dead-letters" and control is not None:
                    outer._json(self, 200, control.dead_letter_list())
                elif self.path.startswith("/dead-letters/") and control is not None:
                    letter = control.dead_letter_get(self.path.removeprefix("/dead-letters/"))
                    outer._json(self, 200, letter) if letter else outer._plain(self, 404, "no such dead letter")
                else:
                    outer._plain(self, 404, "not found")

            def do_POST(self) -> None:
                resolving = self.path.startswith("/conflicts/") and self.path.endswith("/resolve")
                letter = _dead_letter_action(self.path)
                verify = self.path == "/verify/results"
                if self.path != "/sync/manual" and not resolving and letter is None and not verify:
                    outer._plain(self, 404, "not found")
                    return
                if not outer._authorized(self, token):
                    outer._plain(self, 401, "a valid bearer token is required")
                    return
                if verify:
                    outer._verify(self, control)
                elif letter is not None:
                    outer._dead_letter(self, control, *letter)
                elif resolving:
                    outer._resolve(self, control, self.path.removeprefix("/conflicts/").removesuffix("/resolve"))
                else:
                    outer._resync(self, control)

            def log_message(self, format: str, *args: object) -> None:
                log.debug("http %s", format % args)

        self._server = _Server((host, port), Handler)
        self._server.tls = tls
        self._server.daemon_threads = True
        self.scheme = "https" if tls else "http"
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="http", daemon=True)

    @staticmethod
    def _authorized(handler: BaseHTTPRequestHandler, token: str | None) -> bool:
        """The request carries the instance's bearer token (none configured: nobody is)."""
        given = handler.headers.get("Authorization", "")
        return token is not None and hmac.compare_digest(given, f"Bearer {token}")

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, code: int, content_type: str, body: bytes) -> None:
        try:
            handler.send_response(code)
            handler.send_header("Content-Type", content_type)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
        except GONE as exc:
            handler.close_connection = True
            log.info(
                "http: client %s went away before the answer to %s %s was sent (%s)",
                handler.client_address[0],
                handler.command,
                handler.path,
                type(exc).__name__,
            )

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

    def _verify(self, handler: BaseHTTPRequestHandler, control: Control | None) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        try:
            document = msgspec.json.decode(handler.rfile.read(length) or b"null")
        except msgspec.DecodeError:
            document = None
        if control is None:
            self._plain(handler, 404, "no pipeline runs here")
            return
        try:
            self._json(handler, 201, control.record_verify(document))
        except KeyError as exc:
            self._plain(handler, 404, f"no link `{exc.args[0]}` in this instance's config")
        except LookupError as exc:
            self._plain(handler, 503, str(exc))
        except ValueError as exc:
            self._plain(handler, 400, str(exc))
        except OSError as exc:  # the state directory cannot be written: not kept, so the reporter must know
            log.error("http: a verify result could not be kept: %s", exc)
            self._plain(handler, 503, f"the result could not be kept: {exc.strerror or exc}")

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

    def _dead_letter(self, handler: BaseHTTPRequestHandler, control: Control | None, ident: str, action: str) -> None:
        if control is None:
            self._plain(handler, 404, "no pipeline runs here")
            return
        act = control.retry_dead_letter if action == "retry" else control.discard_dead_letter
        try:
            self._json(handler, 202, act(ident))
        except KeyError:
            self._plain(handler, 404, "no such dead letter")

    def _plain(self, handler: BaseHTTPRequestHandler, code: int, text: str) -> None:
        self._send(handler, code, "text/plain; charset=utf-8", (text + "\n").encode())

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _dead_letter_action(path: str) -> tuple[str, str] | None:
    """(id, "retry" or "discard") of POST /dead-letters/ID/retry|discard; None for any other path."""
    parts = path.split("/")
    if len(parts) == 4 and parts[:2] == ["", "dead-letters"] and parts[2] and parts[3] in ("retry", "discard"):
        return parts[2], parts[3]
    return None


def _row_data(path: str) -> bool:
    """Paths that answer with rows (parked conflicts, dead letters): only with the bearer token."""
    return path.split("/")[1] in ("conflicts", "dead-letters")
