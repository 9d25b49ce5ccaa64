"""TLS in the chart: the supervisor's HTTP port (`service.tls`, TLS 1.3 in actors/http.py) and Ray's own TLS
(`ray.tls`, RAY_USE_TLS on every container running a Ray process), each from an existing Secret.

With `service.tls` on, the config names the certificate files the secrets volume carries, and every client
the chart ships (the ServiceMonitor, the bundled Prometheus, the helm test pods) speaks https and checks the
certificate against the Service's name. Each rendering validates against Kubernetes 1.30 and the CRDs.
"""

from __future__ import annotations

import pytest

from config import parse_config
from tests.helm.chart_support import CRD_KINDS, containers, load_yaml, scenario_values
from tests.helm.test_chart_crds import CRD_FILES, crd_dir, crd_errors, jsonschema  # noqa: F401 - fixtures
from tests.helm.test_chart_k8s_schema import kubernetes_validate, validation_errors  # noqa: F401 - fixture

HTTP_TLS = {"service": {"tls": {"enabled": True, "existingSecret": "supervisor-tls"}}}
RAY_TLS = {"ray": {"tls": {"enabled": True, "existingSecret": "ray-certs"}}}
RAY_TLS_ENV = {"RAY_USE_TLS", "RAY_TLS_SERVER_CERT", "RAY_TLS_SERVER_KEY", "RAY_TLS_CA_CERT"}


@pytest.fixture(scope="module")
def http_tls(render):
    return render(HTTP_TLS)


@pytest.fixture(scope="module")
def ray_tls(render):
    return render(RAY_TLS)


def config_of(rendering) -> dict:
    return load_yaml(rendering.get("ConfigMap", "worker-sync-config")["data"]["config.yaml"])


def head_pod(rendering) -> dict:
    return rendering.one("RayCluster")["spec"]["headGroupSpec"]["template"]["spec"]


def projected_paths(rendering) -> dict[str, tuple[str, str]]:
    """Every file of the secrets volume on the head: path -> (secret, key)."""
    volume = next(v for v in head_pod(rendering)["volumes"] if v["name"] == "secrets")
    return {
        f"/run/secrets/worker-sync/{item['path']}": (source["secret"]["name"], item["key"])
        for source in volume["projected"]["sources"]
        for item in source["secret"]["items"]
    }


def test_plain_http_by_default(default_rendering):
    http = config_of(default_rendering)["http"]
    assert "tls_cert_file" not in http and "tls_key_file" not in http
    assert "scheme" not in default_rendering.one("ServiceMonitor")["spec"]["endpoints"][0]


def test_the_config_names_the_certificate_files_of_the_secret(http_tls):
    config = config_of(http_tls)
    assert parse_config(http_tls.get("ConfigMap", "worker-sync-config")["data"]["config.yaml"]).http.scheme == "https"
    files = projected_paths(http_tls)
    assert files[config["http"]["tls_cert_file"]] == ("supervisor-tls", "tls.crt")
    assert files[config["http"]["tls_key_file"]] == ("supervisor-tls", "tls.key")
    assert files["/run/secrets/worker-sync/tls/http/ca.crt"] == ("supervisor-tls", "ca.crt")


def test_every_client_of_the_port_speaks_https_and_checks_the_name(http_tls):
    endpoint = http_tls.one("ServiceMonitor")["spec"]["endpoints"][0]
    assert endpoint["scheme"] == "https"
    assert endpoint["tlsConfig"] == {
        "serverName": "worker-sync.worker-sync.svc",
        "ca": {"secret": {"name": "supervisor-tls", "key": "ca.crt"}},
    }
    prometheus = load_yaml(http_tls.get("ConfigMap", "worker-sync-prometheus")["data"]["prometheus.yml"])
    job = next(j for j in prometheus["scrape_configs"] if j["job_name"] == "worker-sync")
    assert job["scheme"] == "https"
    assert job["tls_config"] == {
        "server_name": "worker-sync.worker-sync.svc",
        "ca_file": "/etc/prometheus/supervisor-tls/ca.crt",
    }
    pod = http_tls.get("Deployment", "worker-sync-prometheus")["spec"]["template"]["spec"]
    mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    assert mounts["supervisor-tls"] == "/etc/prometheus/supervisor-tls"
    volume = next(v for v in pod["volumes"] if v["name"] == "supervisor-tls")
    assert volume["secret"]["items"] == [{"key": "ca.crt", "path": "ca.crt"}], "only the CA, never the key"
    for name in ("worker-sync-test-connection", "worker-sync-test-prometheus"):
        test = http_tls.get("Pod", name)["spec"]["containers"][0]
        assert any(arg.startswith("https://worker-sync.worker-sync.svc:") for arg in test["args"]), test["args"]
        env = {e["name"]: e.get("value") for e in test["env"]}
        assert env["SSL_CERT_FILE"] == "/run/secrets/worker-sync/tls/http/ca.crt"


def test_ray_tls_reaches_every_ray_process_but_not_the_submitter(ray_tls, default_rendering):
    cluster = ray_tls.one("RayCluster")
    checked = []
    for where, container, pod in containers(cluster):
        env = {e["name"]: e["value"] for e in container.get("env", [])}
        assert set(env) >= RAY_TLS_ENV, where
        assert env["RAY_USE_TLS"] == "1"
        mount = next(m for m in container["volumeMounts"] if m["name"] == "ray-tls")
        for var in RAY_TLS_ENV - {"RAY_USE_TLS"}:
            assert env[var].startswith(mount["mountPath"] + "/"), (where, var)
        volume = next(v for v in pod["volumes"] if v["name"] == "ray-tls")
        assert volume["secret"]["secretName"] == "ray-certs"
        checked.append(where)
    assert len(checked) == 2
    autoscaler = cluster["spec"]["autoscalerOptions"]  # a sidecar of the head: it dials the GCS too
    assert {e["name"] for e in autoscaler["env"]} >= RAY_TLS_ENV
    assert "ray-tls" in {m["name"] for m in autoscaler["volumeMounts"]}
    submitter = ray_tls.one("RayJob")["spec"]["submitterPodTemplate"]["spec"]["containers"][0]
    assert not RAY_TLS_ENV & {e["name"] for e in submitter.get("env", [])}, "it talks HTTP to the dashboard only"
    for _, container, _ in [c for o in default_rendering.objects for c in containers(o)]:
        assert not RAY_TLS_ENV & {e["name"] for e in container.get("env", [])}, "off by default"


@pytest.mark.parametrize("values", [HTTP_TLS, RAY_TLS, {**HTTP_TLS, **RAY_TLS}], ids=["http", "ray", "both"])
def test_tls_renderings_validate(render, values, kubernetes_validate, crd_dir, jsonschema):  # noqa: F811
    rendering = render(values)
    errors = [
        e for o in rendering.objects if o["kind"] not in CRD_KINDS for e in validation_errors(kubernetes_validate, o)
    ]
    errors += [e for o in rendering.objects if o["kind"] in CRD_FILES for e in crd_errors(jsonschema, crd_dir, o)]
    assert errors == []


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"service": {"tls": {"enabled": True}}}, "service.tls.existingSecret"),
        ({"ray": {"tls": {"enabled": True}}}, "ray.tls.existingSecret"),
    ],
)
def test_tls_without_its_secret_fails_the_render(render, helm, values, message):
    with pytest.raises(helm.HelmRenderError, match=message):
        render(values)


def test_production_serves_tls_and_exposes_no_ingress(production_rendering):
    assert config_of(production_rendering)["http"]["tls_cert_file"] == "/run/secrets/worker-sync/tls/http/tls.crt"
    assert not production_rendering.of_kind("Ingress")
    annotations = scenario_values("production")["ingress"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/backend-protocol"] == "HTTPS", "ready for the TLS backend"
