"""The `helm test` checks (helm/scripts/helm_tests.py) against local stand-ins for the services.

No cluster here, so each check runs against a loopback HTTP or TCP server that answers like the real
service would, once healthy and once broken.
"""

from __future__ import annotations

import importlib.util
import json
import socket
import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from tests.helm.chart_support import CHART_DIR

SEED_EXPOSITION = """\
# TYPE sync_lag_ms gauge
sync_lag_ms{stream="orders"} 12
# TYPE audit_write_tps gauge
audit_write_tps 250
# TYPE conflict_rate gauge
conflict_rate{link="orders"} 0
# TYPE queue_depth gauge
queue_depth{stream="orders"} 3
# TYPE error_ratio gauge
error_ratio 0
"""


@pytest.fixture(scope="module")
def checks():
    spec = importlib.util.spec_from_file_location("helm_tests", CHART_DIR / "scripts" / "helm_tests.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextmanager
def http_stub(routes: dict[str, tuple[int, str]]) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            status, body = routes.get(self.path.split("?")[0], (404, "not found"))
            if self.path.startswith("/api/dashboards/") and self.headers.get("Authorization") != "Basic YWRtaW46cHc=":
                status, body = 401, "unauthorized"
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def redis_stub(password: str) -> Iterator[str]:
    class Handler(socketserver.StreamRequestHandler):
        def handle(self):
            authed = not password
            while True:
                header = self.rfile.readline()
                if not header:
                    return
                parts = []
                for _ in range(int(header[1:])):
                    size = int(self.rfile.readline()[1:])
                    parts.append(self.rfile.read(size + 2)[:-2].decode())
                if parts[0] == "AUTH":
                    authed = parts[1] == password
                    self.wfile.write(b"+OK\r\n" if authed else b"-WRONGPASS invalid password\r\n")
                elif parts[0] == "PING":
                    self.wfile.write(b"+PONG\r\n" if authed else b"-NOAUTH Authentication required.\r\n")

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def quick(monkeypatch):
    """No retries: a failing check fails at once."""
    monkeypatch.setenv("TEST_TIMEOUT_S", "0")


def test_connection_check(checks, quick):
    with http_stub({"/healthz": (200, "ok"), "/status": (200, json.dumps({"streams": []}))}) as url:
        assert checks.main(["http", url]) == 0
    with http_stub({"/healthz": (503, "starting"), "/status": (200, "{}")}) as url:
        assert checks.main(["http", url]) == 1


def test_prometheus_check_needs_all_five_metrics(checks, quick):
    with http_stub({"/metrics": (200, SEED_EXPOSITION)}) as url:
        assert checks.main(["metrics", f"{url}/metrics"]) == 0
    partial = SEED_EXPOSITION.replace("queue_depth", "queue_size")
    with http_stub({"/metrics": (200, partial)}) as url:
        assert checks.main(["metrics", f"{url}/metrics"]) == 1
    assert checks.missing_metrics(partial) == ["queue_depth"]


def test_prometheus_check_needs_the_scrape_and_the_alerts(checks, quick):
    up = {"data": {"result": [{"metric": {}, "value": [0, "1"]}]}}
    rules = {"data": {"groups": [{"rules": [{"name": n} for n in checks.SEED_ALERTS]}]}}
    routes = {
        "/metrics": (200, SEED_EXPOSITION),
        "/api/v1/query": (200, json.dumps(up)),
        "/api/v1/rules": (200, json.dumps(rules)),
    }
    with http_stub(routes) as url:
        assert checks.main(["metrics", f"{url}/metrics", "--prometheus", url, "--job", "w", "--namespace", "n"]) == 0
    routes["/api/v1/rules"] = (200, json.dumps({"data": {"groups": [{"rules": [{"name": "HighSyncLag"}]}]}}))
    with http_stub(routes) as url:
        assert checks.main(["metrics", f"{url}/metrics", "--prometheus", url]) == 1


def test_grafana_check(checks, quick, monkeypatch):
    exprs = ["sync_lag_ms", "audit_write_tps", "conflict_rate", "queue_depth", "error_ratio"]
    dashboard = {"dashboard": {"panels": [{"targets": [{"expr": f"max({e})"}]} for e in exprs]}}
    routes = {
        "/api/health": (200, json.dumps({"database": "ok"})),
        "/api/dashboards/uid/worker-sync": (200, json.dumps(dashboard)),
    }
    monkeypatch.setenv("GRAFANA_USER", "admin")
    monkeypatch.setenv("GRAFANA_PASSWORD", "pw")
    with http_stub(routes) as url:
        assert checks.main(["grafana", url]) == 0
        monkeypatch.setenv("GRAFANA_PASSWORD", "wrong")
        assert checks.main(["grafana", url]) == 1


def test_grafana_check_against_the_shipped_dashboard(checks, quick, monkeypatch):
    dashboard = json.loads((CHART_DIR / "dashboards" / "worker-sync.json").read_text())
    routes = {
        "/api/health": (200, json.dumps({"database": "ok"})),
        f"/api/dashboards/uid/{dashboard['uid']}": (200, json.dumps({"dashboard": dashboard})),
    }
    monkeypatch.setenv("GRAFANA_PASSWORD", "pw")
    with http_stub(routes) as url:
        assert checks.main(["grafana", url, "--uid", dashboard["uid"]]) == 0


def test_redis_check(checks, quick, monkeypatch):
    with redis_stub("s3cret") as address:
        monkeypatch.setenv("REDIS_PASSWORD", "s3cret")
        assert checks.main(["redis", address]) == 0
        monkeypatch.setenv("REDIS_PASSWORD", "nope")
        assert checks.main(["redis", address]) == 1


def test_database_check_fails_on_an_unreachable_database(checks, quick, tmp_path):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = tmp_path / "config.yaml"
    config.write_text(
        "databases:\n"
        f"  postgresql: {{enabled: true, host: 127.0.0.1, port: {port}, database: d, username: u,"
        " tls: {mode: disable}}\n"
        "  mysql: {enabled: false, host: x, port: 3306, database: d, username: u}\n"
    )
    assert list(checks.enabled_databases(str(config))) == ["postgresql"]
    assert checks.main(["databases", str(config)]) == 1


def test_database_check_needs_an_enabled_database(checks, quick, tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("databases: {}\n")
    assert checks.main(["databases", str(config)]) == 1


def test_database_check_logs_in_to_real_servers(checks, pg_server, mariadb_server, tmp_path, monkeypatch):
    """test-database against real PostgreSQL and MariaDB, with passwords read from files as in the pod."""
    monkeypatch.setenv("TEST_TIMEOUT_S", "30")
    nodes = {}
    for engine, endpoint in (("postgresql", pg_server), ("mysql", mariadb_server)):
        creds = endpoint.credentials("capture")
        password_file = tmp_path / f"{engine}-password"
        password_file.write_text(creds.password + "\n")
        nodes[engine] = {
            "enabled": True,
            "host": endpoint.host,
            "port": endpoint.port,
            "database": endpoint.database,
            "username": creds.user,
            "password_file": str(password_file),
            "tls": {"mode": "disable"},
        }
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"databases": nodes}))
    assert checks.main(["databases", str(config)]) == 0
    (tmp_path / "mysql-password").write_text("not-the-password\n")
    monkeypatch.setenv("TEST_TIMEOUT_S", "0")
    assert checks.main(["databases", str(config)]) == 1
