"""Checks run by the chart's `helm test` pods: ``python helm_tests.py <check> [options]``.

Each check retries until it passes or ``TEST_TIMEOUT_S`` (default 120) runs out, then exits 0 (pass) or
1 (fail, with the last reason on stderr). Only the standard library is used, plus the database drivers
the Worker-Sync image already ships (psycopg, PyMySQL, pymongo) and PyYAML.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

SEED_METRICS = ("sync_lag_ms", "audit_write_tps", "conflict_rate", "queue_depth", "error_ratio")
SEED_ALERTS = ("WorkerSyncDown", "HighSyncLag", "HighErrorRate", "QueueBacklog", "HighConflictRate")


class CheckFailed(Exception):
    """The thing checked answered, but not as it should."""


def retry(check: Callable[[], str], what: str, *, timeout_s: float, interval_s: float = 3.0) -> int:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            detail = check()
        except (CheckFailed, OSError, ValueError) as exc:
            if time.monotonic() >= deadline:
                print(f"FAIL {what}: {exc}", file=sys.stderr)
                return 1
            print(f"waiting for {what}: {exc}", file=sys.stderr)
            time.sleep(interval_s)
        else:
            print(f"ok {what}: {detail}")
            return 0


def http_get(url: str, *, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def get_ok(url: str, *, headers: dict[str, str] | None = None) -> bytes:
    status, body = http_get(url, headers=headers)
    if status != 200:
        raise CheckFailed(f"GET {url} answered {status}: {body[:200]!r}")
    return body


# --- test-connection -------------------------------------------------------------------------------


def check_http(base_url: str) -> str:
    get_ok(f"{base_url}/healthz")
    status = json.loads(get_ok(f"{base_url}/status"))
    if not isinstance(status, dict):
        raise CheckFailed(f"GET {base_url}/status did not return a JSON object")
    return f"/healthz 200, /status has {', '.join(sorted(status)) or 'no keys'}"


# --- test-prometheus -------------------------------------------------------------------------------


def missing_metrics(exposition: str) -> list[str]:
    """Seed metrics absent from a Prometheus text exposition."""
    present = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            present.add(line.split()[2])
        elif line and not line.startswith("#"):
            present.add(line.split("{", 1)[0].split(" ", 1)[0])
    return [name for name in SEED_METRICS if name not in present]


def check_metrics(metrics_url: str, prometheus_url: str | None, job: str, namespace: str) -> str:
    missing = missing_metrics(get_ok(metrics_url).decode())
    if missing:
        raise CheckFailed(f"{metrics_url} lacks {', '.join(missing)}")
    if not prometheus_url:
        return f"{metrics_url} exposes the five seed metrics"
    query = urllib.parse.quote(f'up{{job="{job}",namespace="{namespace}"}}')
    result = json.loads(get_ok(f"{prometheus_url}/api/v1/query?query={query}"))["data"]["result"]
    if not result or result[0]["value"][1] != "1":
        raise CheckFailed(f"Prometheus does not scrape job {job} in {namespace} successfully: {result}")
    groups = json.loads(get_ok(f"{prometheus_url}/api/v1/rules?type=alert"))["data"]["groups"]
    loaded = {rule["name"] for group in groups for rule in group["rules"]}
    absent = [name for name in SEED_ALERTS if name not in loaded]
    if absent:
        raise CheckFailed(f"Prometheus has not loaded the alerts {', '.join(absent)}")
    return "metrics exposed, scraped (up == 1) and the five alerts loaded"


# --- test-grafana ----------------------------------------------------------------------------------


def check_grafana(grafana_url: str, user: str, password: str, uid: str) -> str:
    health = json.loads(get_ok(f"{grafana_url}/api/health"))
    if health.get("database") != "ok":
        raise CheckFailed(f"Grafana health: {health}")
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    body = get_ok(f"{grafana_url}/api/dashboards/uid/{uid}", headers={"Authorization": f"Basic {token}"})
    panels = json.loads(body)["dashboard"].get("panels", [])
    exprs = " ".join(t.get("expr", "") for p in panels for t in p.get("targets", []))
    absent = [name for name in SEED_METRICS if name not in exprs]
    if absent:
        raise CheckFailed(f"dashboard {uid} has no panel for {', '.join(absent)}")
    return f"dashboard {uid} provisioned with {len(panels)} panels"


# --- test-redis ------------------------------------------------------------------------------------


def _resp(*parts: str) -> bytes:
    out = [f"*{len(parts)}\r\n".encode()]
    for part in parts:
        data = part.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def _read_line(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\r\n"):
        chunk = sock.recv(1)
        if not chunk:
            raise CheckFailed("Redis closed the connection")
        data += chunk
    return data[:-2]


def check_redis(address: str, password: str | None) -> str:
    host, _, port = address.rpartition(":")
    if not host:
        host, port = address, "6379"
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        if password:
            sock.sendall(_resp("AUTH", password))
            reply = _read_line(sock)
            if reply != b"+OK":
                raise CheckFailed(f"AUTH answered {reply[:80]!r}")
        sock.sendall(_resp("PING"))
        reply = _read_line(sock)
    if reply != b"+PONG":
        raise CheckFailed(f"PING answered {reply[:80]!r}")
    return f"{host}:{port} answers PONG"


# --- test-database ---------------------------------------------------------------------------------


def _password(node: dict) -> str | None:
    if node.get("password_file"):
        return Path(node["password_file"]).read_text().rstrip("\r\n")
    if node.get("password_env"):
        return os.environ.get(node["password_env"])
    return None


def _ssl_context(tls: dict) -> ssl.SSLContext | None:
    mode = tls.get("mode", "prefer")
    if mode in ("disable", "prefer"):
        return None
    context = ssl.create_default_context(cafile=tls.get("ca_file"))
    context.check_hostname = mode == "verify-full"
    context.verify_mode = ssl.CERT_REQUIRED if mode in ("verify-ca", "verify-full") else ssl.CERT_NONE
    if tls.get("cert_file"):
        context.load_cert_chain(tls["cert_file"], tls.get("key_file"))
    return context


def connect_postgresql(node: dict) -> None:
    import psycopg

    tls = node.get("tls") or {}
    params = {"sslmode": tls.get("mode", "prefer")}
    for key, param in (("ca_file", "sslrootcert"), ("cert_file", "sslcert"), ("key_file", "sslkey")):
        if tls.get(key):
            params[param] = tls[key]
    with psycopg.connect(
        host=node["host"], port=node.get("port", 5432), dbname=node["database"], user=node["username"],
        password=_password(node), connect_timeout=10, **params,
    ) as conn:
        conn.execute("SELECT 1")


def connect_mysql(node: dict) -> None:
    import pymysql

    tls = node.get("tls") or {}
    conn = pymysql.connect(
        host=node["host"], port=node.get("port", 3306), user=node["username"], password=_password(node) or "",
        database=node["database"], connect_timeout=10, ssl=_ssl_context(tls),
        ssl_disabled=tls.get("mode") == "disable",
    )
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT 1")
    finally:
        conn.close()


def connect_mongodb(node: dict) -> None:
    import pymongo

    tls = node.get("tls") or {}
    mode = tls.get("mode", "prefer")
    options: dict = {"tls": mode not in ("disable", "prefer")}
    if options["tls"]:
        options["tlsAllowInvalidCertificates"] = mode == "require"
        options["tlsAllowInvalidHostnames"] = mode != "verify-full"
        if tls.get("ca_file"):
            options["tlsCAFile"] = tls["ca_file"]
    if node.get("replica_set"):
        options["replicaSet"] = node["replica_set"]
    client = pymongo.MongoClient(
        host=node["host"], port=node.get("port", 27017), username=node["username"], password=_password(node),
        authSource=node.get("auth_source", "admin"), serverSelectionTimeoutMS=10000, **options,
    )
    try:
        client[node["database"]].command("ping")
    finally:
        client.close()


CONNECTORS = {"postgresql": connect_postgresql, "mysql": connect_mysql, "mongodb": connect_mongodb}


def enabled_databases(config_path: str) -> dict[str, dict]:
    import yaml

    config = yaml.safe_load(Path(config_path).read_text()) or {}
    return {
        engine: node
        for engine, node in (config.get("databases") or {}).items()
        if node and node.get("enabled", True)
    }


def check_database(engine: str, node: dict) -> str:
    try:
        CONNECTORS[engine](node)
    except (OSError, ValueError, CheckFailed):
        raise
    except Exception as exc:  # driver errors share no base class across the three drivers
        raise CheckFailed(f"{type(exc).__name__}: {exc}") from exc
    return f"{node['username']}@{node['host']}:{node.get('port')}/{node['database']} answers"


# --- command line ----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="check", required=True)
    sub.add_parser("http", help="supervisor /healthz and /status").add_argument("url")
    metrics = sub.add_parser("metrics", help="seed metrics exposed, scraped and alerted on")
    metrics.add_argument("url")
    metrics.add_argument("--prometheus")
    metrics.add_argument("--job", default="")
    metrics.add_argument("--namespace", default="")
    grafana = sub.add_parser("grafana", help="Grafana up with the Worker-Sync dashboard")
    grafana.add_argument("url")
    grafana.add_argument("--uid", default="worker-sync")
    sub.add_parser("redis", help="Redis answers AUTH and PING").add_argument("address")
    sub.add_parser("databases", help="log in to every enabled database").add_argument("config")
    args = parser.parse_args(argv)
    timeout_s = float(os.environ.get("TEST_TIMEOUT_S", "120"))

    if args.check == "http":
        return retry(lambda: check_http(args.url), f"supervisor at {args.url}", timeout_s=timeout_s)
    if args.check == "metrics":
        return retry(
            lambda: check_metrics(args.url, args.prometheus, args.job, args.namespace),
            "metrics", timeout_s=timeout_s,
        )
    if args.check == "grafana":
        user, password = os.environ.get("GRAFANA_USER", "admin"), os.environ.get("GRAFANA_PASSWORD", "")
        return retry(lambda: check_grafana(args.url, user, password, args.uid), "grafana", timeout_s=timeout_s)
    if args.check == "redis":
        password = os.environ.get("REDIS_PASSWORD")
        return retry(lambda: check_redis(args.address, password), f"redis at {args.address}", timeout_s=timeout_s)
    databases = enabled_databases(args.config)
    if not databases:
        print(f"FAIL databases: no enabled database in {args.config}", file=sys.stderr)
        return 1
    failures = 0
    for engine, node in databases.items():
        failures += retry(lambda e=engine, n=node: check_database(e, n), engine, timeout_s=timeout_s)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
