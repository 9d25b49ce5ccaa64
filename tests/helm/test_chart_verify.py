"""The verify CronJob (issue 21): `worker-sync verify --report` for every SQL link (or the listed ones), reporting
to the supervisor's Service with the token the config names, over TLS with `service.tls`; it mounts the state
volume read-only like the backup (so in-flight keys are re-read, not reported), fails once on differences
(backoffLimit 0), has a NetworkPolicy to the databases and the release, and is gone when disabled."""

from __future__ import annotations

import posixpath

import pytest

from actors.cli import build_parser
from config import parse_config
from tests.helm.chart_support import pod_specs
from tests.helm.test_chart_backup import assert_coscheduled_with_head, claim_mount, head_claim, state_dir, within
from tests.helm.test_chart_k8s_schema import validation_errors
from tests.helm.test_chart_tls import HTTP_TLS

VERIFY = "worker-sync-verify"


@pytest.fixture(scope="module")
def k8s_errors():
    module = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is not installed")
    return lambda obj: validation_errors(module, obj)


def verify_pod(rendering) -> dict:
    [(_, pod)] = pod_specs(rendering.get("CronJob", VERIFY))
    return pod


def verify_args(rendering):
    [container] = verify_pod(rendering)["containers"]
    assert container["command"] == ["worker-sync"]
    return build_parser().parse_args(container["args"])


def mounted(pod: dict, path: str) -> bool:
    """``path`` lies inside one of the container's volume mounts."""
    [container] = pod["containers"]
    return any(within(posixpath.dirname(path), m["mountPath"]) for m in container["volumeMounts"])


def test_verify_reports_every_sql_link_to_the_supervisor_service(rendering, k8s_errors):
    cronjob = rendering.get("CronJob", VERIFY)
    assert cronjob["spec"]["schedule"] == "30 4 * * *"
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    assert cronjob["spec"]["jobTemplate"]["spec"]["backoffLimit"] == 0  # differences fail once, not 6 times
    args = verify_args(rendering)
    assert args.command == "verify" and args.all_links and args.link is None and args.report
    service = rendering.get("Service", "worker-sync")
    port = next(p["port"] for p in service["spec"]["ports"] if p["name"] == "http")
    config = parse_config(rendering.get("ConfigMap", "worker-sync-config")["data"]["config.yaml"], source="helm")
    assert args.report_url == f"{config.http.scheme}://worker-sync.worker-sync.svc:{port}"
    assert args.config == "/etc/worker-sync/config.yaml"
    # The bearer token: the config's http.token_file, which the pod mounts (the secrets volume).
    pod = verify_pod(rendering)
    assert config.http.token_file and mounted(pod, config.http.token_file)
    assert args.token_file is None
    assert k8s_errors(cronjob) == []


def test_verify_reads_the_committed_positions_on_the_heads_node(rendering):
    pod = verify_pod(rendering)
    claim, head_path = head_claim(rendering)
    volume, mount = claim_mount(pod, pod["containers"][0], claim)
    assert mount["readOnly"] is True and volume["persistentVolumeClaim"]["readOnly"] is True
    assert mount["mountPath"] == head_path and within(state_dir(rendering), head_path)
    assert_coscheduled_with_head(rendering, pod)


def test_listed_links_are_verified_one_by_one(render):
    r = render({"cronJobs": {"verify": {"links": ["orders", "stock"], "chunkRows": 5000}}})
    args = verify_args(r)
    assert args.link == ["orders", "stock"] and not args.all_links and args.chunk_rows == 5000


def test_verify_trusts_the_supervisors_tls_certificate(render):
    r = render(HTTP_TLS)
    args = verify_args(r)
    assert args.report_url.startswith("https://worker-sync.worker-sync.svc:")
    [container] = verify_pod(r)["containers"]
    [cert] = [e for e in container.get("env", []) if e["name"] == "SSL_CERT_FILE"]
    assert mounted(verify_pod(r), cert["value"])


def test_network_policy_reaches_the_databases_and_the_release(default_rendering):
    policy = default_rendering.get("NetworkPolicy", VERIFY)
    assert policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "verify"
    assert policy["spec"]["ingress"] == []
    peers = [p for rule in policy["spec"]["egress"] for p in rule.get("to") or []]
    release = {"app.kubernetes.io/instance": "worker-sync"}
    assert any(release.items() <= p.get("podSelector", {}).get("matchLabels", {}).items() for p in peers)


def test_disabled_verify_leaves_no_cronjob_and_no_policy(render):
    r = render({"cronJobs": {"verify": {"enabled": False}}})
    assert VERIFY not in [o["metadata"]["name"] for o in r.objects]
