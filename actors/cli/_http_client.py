"""Talking to a running instance's HTTP port from the command line (`conflicts`, `sync --manual`)."""

from __future__ import annotations

import argparse
import json
import os
import urllib.error
import urllib.request
from typing import Any

from config import load_config
from config.exit_codes import Exit
from config.secrets import read_secret


def add_endpoint_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--url", help="base URL of the instance (default: from --config, else http://127.0.0.1:8080)")
    where.add_argument("--config", help="the instance's config file (its `http` block gives address and token)")
    parser.add_argument("--token-file", help="file holding the bearer token (default: the config's)")
    parser.add_argument("--json", action="store_true", help="print JSON")


class HttpFailure(Exception):
    """A request that failed, with the exit code it means (1: not found, 2: refused, 3: unreachable or 503)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def endpoint(args: argparse.Namespace) -> tuple[str, str | None]:
    """(base URL, bearer token or None) from --url / --config / --token-file."""
    token = read_secret(env=None, file=args.token_file, what="http token") if args.token_file else None
    if args.url:
        return args.url.rstrip("/"), token
    if args.config:
        http = load_config(args.config).http
        host = "127.0.0.1" if http.host in ("0.0.0.0", "::") else http.host
        if token is None:
            token = read_secret(env=None, file=http.token_file, what="http token")
        if token is None and http.token_env:
            token = os.environ.get(http.token_env)
        return f"{http.scheme}://{host}:{http.port}", token
    return "http://127.0.0.1:8080", token


def call(url: str, body: dict[str, Any] | None = None, token: str | None = None) -> Any:
    """GET (or POST ``body`` as JSON) and decode the JSON answer; HttpFailure otherwise."""
    request = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode())
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        text = exc.read().decode(errors="replace").strip()
        code = Exit.FINDINGS if exc.code == 404 else Exit.UNAVAILABLE if exc.code == 503 else Exit.USAGE
        raise HttpFailure(code, f"{url}: {exc.code} {text}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise HttpFailure(Exit.UNAVAILABLE, f"cannot reach {url}: {getattr(exc, 'reason', exc)}") from None
