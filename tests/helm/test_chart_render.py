"""The chart renders, lints strictly, and contains every component of the seed README, wired together."""

from __future__ import annotations

import pytest

from tests.helm.chart_support import CHART_DIR, NAMESPACE, RELEASE, annotations, containers, pod_specs, scenario_values

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def lint_findings(report: dict) -> list[str]:
    """Warnings and errors of a lint report (strict mode fails on both)."""
    return [f"{m['path']}: {m['error']}" for m in report["messages"] if m["severity"] >= 2] + report["errors"]


def test_strict_lint_passes(helm, scenario):
    report = helm.lint(str(CHART_DIR), scenario_values(scenario), strict=True, kube_version="v1.30.0")
    assert report["total_charts_linted"] == 1
    assert lint_findings(report) == []


def test_strict_lint_reports_a_schema_violation(helm):
    report = helm.lint(str(CHART_DIR), {"replicaCount": "three"}, strict=True, kube_version="v1.30.0")
    assert any("replicaCount" in finding for finding in lint_findings(report))


def test_values_files_match_the_schema(chart, scenario):
    chart.validate_schema(scenario_values(scenario))


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"replicaCount": "three"}, "/replicaCount"),
        ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
        ({"logLevel": "loud"}, "/logLevel"),
        ({"databases": {"postgresql": {"prot": 5432}}}, "/databases/postgresql"),
        ({"databases": {"mysql": {"tls": {"mode": "verify"}}}}, "/databases/mysql/tls/mode"),
        ({"databases": {"mongodb": {"port": 70000}}}, "/databases/mongodb/port"),
        ({"ray": {"auth": {"mode": "password"}}}, "/ray/auth/mode"),
        ({"autoscaling": {"targetCPUUtilizationPercentage": 120}}, "/autoscaling/targetCPUUtilizationPercentage"),
        ({"auth": {"auditSigningKey": "not-hex"}}, "/auth/auditSigningKey"),
        ({"prometheus": {"retention": "thirty days"}}, "/prometheus/retention"),
        ({"grafana": {"adminPasword": "x"}}, "/grafana"),
    ],
)
def test_schema_rejects_bad_values(chart, helm, values, key):
    with pytest.raises(helm.HelmValuesError, match=key):
        chart.validate_schema(values)


def test_renders_each_values_file(rendering):
    assert rendering.objects, "nothing rendered"
    names = [(o["kind"], o["metadata"]["name"]) for o in rendering.objects]
    assert len(names) == len(set(names)), "two objects share a kind and a name"
    for obj in rendering.objects:
        assert obj["metadata"]["namespace"] == NAMESPACE, obj["metadata"]["name"]
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "worker-sync"
        assert labels["app.kubernetes.io/instance"] == RELEASE
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["helm.sh/chart"] == "worker-sync-0.1.0"
        assert "app.kubernetes.io/component" in labels


# --- every component of the seed README ("Componentes Desplegados", tests, structure) -------------


def test_seed_application_components(default_rendering):
    r = default_rendering
    cluster = r.one("RayCluster")  # the seed's Deployment
    assert cluster["metadata"]["name"] == "worker-sync"
    assert cluster["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["name"] == "ray-head"
    [group] = cluster["spec"]["workerGroupSpecs"]
    assert group["replicas"] == 3  # seed replicaCount
    job = r.one("RayJob")
    assert job["spec"]["clusterSelector"] == {"ray.io/cluster": "worker-sync"}
    assert (
        job["spec"]["entrypoint"] == "worker-sync run --config /etc/worker-sync/config.yaml --detached --log-level info"
    )
    assert job["spec"]["shutdownAfterJobFinishes"] is False
    service = r.get("Service", "worker-sync")
    assert {p["name"] for p in service["spec"]["ports"]} == {"http", "metrics"}
    assert "config.yaml" in r.get("ConfigMap", "worker-sync-config")["data"]
    assert r.get("Secret", "worker-sync-secret")["data"]
    # The seed's HPA: the Ray autoscaler with the seed's bounds.
    assert cluster["spec"]["enableInTreeAutoscaling"] is True
    assert (group["minReplicas"], group["maxReplicas"]) == (3, 10)


def test_seed_monitoring_components(default_rendering):
    r = default_rendering
    prometheus = r.get("Deployment", "worker-sync-prometheus")
    args = prometheus["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--storage.tsdb.retention.time=30d" in args
    assert r.get("PersistentVolumeClaim", "worker-sync-prometheus")["spec"]["resources"]["requests"] == {
        "storage": "50Gi"
    }
    r.get("Deployment", "worker-sync-grafana")
    assert r.get("PersistentVolumeClaim", "worker-sync-grafana")["spec"]["resources"]["requests"] == {"storage": "10Gi"}
    r.get("Deployment", "worker-sync-alertmanager")
    assert r.get("PersistentVolumeClaim", "worker-sync-alertmanager")["spec"]["resources"]["requests"] == {
        "storage": "5Gi"
    }
    for name in ("worker-sync-prometheus", "worker-sync-grafana", "worker-sync-alertmanager"):
        r.get("Service", name)  # the seed's port-forward targets
    assert r.get("Service", "worker-sync-grafana")["spec"]["ports"][0]["port"] == 3000
    assert r.get("Service", "worker-sync-prometheus")["spec"]["ports"][0]["port"] == 9090
    assert r.get("Service", "worker-sync-alertmanager")["spec"]["ports"][0]["port"] == 9093
    r.get("ServiceMonitor", "worker-sync")
    rules = r.get("PrometheusRule", "worker-sync")["spec"]["groups"][0]["rules"]
    assert [rule["alert"] for rule in rules] == [
        "WorkerSyncDown",
        "HighSyncLag",
        "HighErrorRate",
        "QueueBacklog",
        "HighConflictRate",
        "WorkerSyncStreamStopped",
        "WorkerSyncNotStreaming",
        "WorkerSyncDeadLetters",
        "WorkerSyncDeadLettersPending",
        "WorkerSyncSourceLogAtRisk",
        "WorkerSyncSourceRetentionLow",
        "WorkerSyncSourceRetainedHigh",
        "WorkerSyncVerifyMismatches",
        "WorkerSyncVerifyStale",
    ]
    dashboard = r.get("ConfigMap", "worker-sync-dashboard")["data"]["worker-sync.json"]
    for metric in ("sync_lag_ms", "audit_write_tps", "conflict_rate", "queue_depth", "error_ratio"):
        assert metric in dashboard


def test_seed_jobs_and_cronjobs(default_rendering):
    r = default_rendering
    init = r.get("Job", "worker-sync-init")
    assert annotations(init)["helm.sh/hook"] == "post-install"
    assert init["spec"]["template"]["spec"]["containers"][0]["args"][0] == "init"
    migration = r.get("Job", "worker-sync-migration")
    assert annotations(migration)["helm.sh/hook"] == "pre-upgrade"
    assert migration["spec"]["template"]["spec"]["containers"][0]["args"][0] == "migrate"
    backup = r.get("CronJob", "worker-sync-backup")  # kubectl create job --from=cronjob/worker-sync-backup
    assert backup["spec"]["schedule"] == "0 2 * * *"
    args = backup["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[0] == "backup"
    assert args[args.index("--retention-days") + 1] == "30"
    assert args[args.index("--s3-bucket") + 1] == "worker-sync-backups"
    assert args[args.index("--s3-region") + 1] == "us-west-2"
    # kubectl get jobs -l app.kubernetes.io/component=backup finds the Jobs the CronJob creates.
    assert backup["spec"]["jobTemplate"]["metadata"]["labels"]["app.kubernetes.io/component"] == "backup"
    cleanup = r.get("CronJob", "worker-sync-cleanup")
    assert cleanup["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"][0] == "cleanup"


def test_seed_security_components(default_rendering):
    r = default_rendering
    role = r.get("Role", "worker-sync")
    assert role["rules"][:2] == [
        {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["worker-sync-config"], "verbs": ["get"]},
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": ["worker-sync-alertmanager", "worker-sync-secret"],
            "verbs": ["get"],
        },
    ]
    binding = r.get("RoleBinding", "worker-sync")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "worker-sync", "namespace": NAMESPACE}]
    r.get("ServiceAccount", "worker-sync")
    policy = r.get("NetworkPolicy", "worker-sync")
    assert {"from": [{"namespaceSelector": {"matchLabels": {"name": "api-gateway"}}}]} in policy["spec"]["ingress"]
    seed_egress = {"to": [], "ports": [{"protocol": "TCP", "port": p} for p in (5432, 3306, 27017)]}
    assert seed_egress in policy["spec"]["egress"]
    r.get("PodDisruptionBudget", "worker-sync")
    # PodSecurityPolicy is gone since Kubernetes 1.25: nothing renders one.
    assert not r.of_kind("PodSecurityPolicy")
    assert "pod-security.kubernetes.io/enforce=restricted" in r.notes


def test_seed_helm_tests(default_rendering):
    tests = {
        o["metadata"]["name"]: o
        for o in default_rendering.of_kind("Pod")
        if annotations(o).get("helm.sh/hook") == "test"
    }
    assert set(tests) == {
        f"worker-sync-test-{name}"
        for name in ("connection", "database", "redis", "prometheus", "grafana", "sync-functionality")
    }
    sync = tests["worker-sync-test-sync-functionality"]["spec"]["containers"][0]
    assert sync["command"] == ["worker-sync"]
    assert sync["args"] == ["probe", "--config", "/etc/worker-sync/config.yaml"]
    scripts = default_rendering.get("ConfigMap", "worker-sync-tests")
    assert annotations(scripts)["helm.sh/hook"] == "test"
    assert scripts["data"]["helm_tests.py"] == (CHART_DIR / "scripts" / "helm_tests.py").read_text()


def test_gcs_fault_tolerance_uses_the_bundled_redis(default_rendering):
    r = default_rendering
    options = r.one("RayCluster")["spec"]["gcsFaultToleranceOptions"]
    assert options["redisAddress"] == "worker-sync-redis:6379"
    assert options["redisPassword"]["valueFrom"]["secretKeyRef"] == {
        "name": "worker-sync-secret",
        "key": "redis-password",
    }
    r.get("Deployment", "worker-sync-redis")
    assert r.get("Service", "worker-sync-redis")["spec"]["ports"][0]["port"] == 6379


def test_external_redis_replaces_the_bundled_one(render):
    r = render(
        {
            "gcsFaultTolerance": {
                "redisAddress": "redis.cache.svc:6380",
                "redisPassword": {"existingSecret": "cache-auth", "secretKey": "pw"},
            }
        }
    )
    options = r.one("RayCluster")["spec"]["gcsFaultToleranceOptions"]
    assert options["redisAddress"] == "redis.cache.svc:6380"
    assert options["redisPassword"]["valueFrom"]["secretKeyRef"] == {"name": "cache-auth", "key": "pw"}
    assert not [o for o in r.objects if o["metadata"]["labels"]["app.kubernetes.io/component"] == "redis"]
    egress = r.get("NetworkPolicy", "worker-sync")["spec"]["egress"]
    assert {"ports": [{"protocol": "TCP", "port": 6380}]} in egress


# --- wiring -----------------------------------------------------------------------------------------


def _matches(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def test_service_selects_the_head_pod_and_its_http_port(rendering):
    cluster = rendering.one("RayCluster")
    head = cluster["spec"]["headGroupSpec"]["template"]
    service = rendering.get("Service", "worker-sync")
    assert _matches(service["spec"]["selector"], head["metadata"]["labels"])
    worker = cluster["spec"]["workerGroupSpecs"][0]["template"]
    assert not _matches(service["spec"]["selector"], worker["metadata"]["labels"])
    ports = {p["name"]: p["containerPort"] for p in head["spec"]["containers"][0]["ports"]}
    assert all(p["targetPort"] in ports for p in service["spec"]["ports"])
    config = rendering.get("ConfigMap", "worker-sync-config")["data"]["config.yaml"]
    assert f"port: {ports['http']}" in config
    # Ray's own metrics exporter must not take the supervisor's port.
    assert cluster["spec"]["headGroupSpec"]["rayStartParams"]["metrics-export-port"] == str(ports["metrics"])
    assert ports["metrics"] != ports["http"]


def test_service_monitor_and_bundled_prometheus_scrape_the_service(rendering):
    service = rendering.get("Service", "worker-sync")
    monitor = rendering.one("ServiceMonitor")
    assert _matches(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    assert monitor["spec"]["endpoints"][0]["port"] in {p["name"] for p in service["spec"]["ports"]}
    metrics_port = next(p["port"] for p in service["spec"]["ports"] if p["name"] == "metrics")
    prometheus = rendering.get("ConfigMap", "worker-sync-prometheus")["data"]["prometheus.yml"]
    assert f"worker-sync.{NAMESPACE}.svc:{metrics_port}" in prometheus


def test_pdb_and_network_policy_select_the_ray_pods(rendering):
    cluster = rendering.one("RayCluster")
    head = cluster["spec"]["headGroupSpec"]["template"]["metadata"]["labels"]
    worker = cluster["spec"]["workerGroupSpecs"][0]["template"]["metadata"]["labels"]
    pdb = rendering.one("PodDisruptionBudget")
    assert _matches(pdb["spec"]["selector"]["matchLabels"], worker)
    assert not _matches(pdb["spec"]["selector"]["matchLabels"], head)
    selector = rendering.get("NetworkPolicy", "worker-sync")["spec"]["podSelector"]
    [expression] = selector["matchExpressions"]
    for labels in (head, worker):
        assert _matches(selector["matchLabels"], labels)
        assert labels[expression["key"]] in expression["values"]


def test_every_volume_mount_and_reference_resolves(rendering):
    rendered = {(o["kind"], o["metadata"]["name"]) for o in rendering.objects}
    values = rendering.values
    external = {
        v
        for v in (
            (values.get("auth") or {}).get("existingSecret"),
            (values.get("grafana") or {}).get("existingSecret"),
            ((values.get("redis") or {}).get("auth") or {}).get("existingSecret"),
            (values.get("alertmanager") or {}).get("existingConfigSecret"),
            (((values.get("service") or {}).get("tls")) or {}).get("existingSecret"),
            (((values.get("ray") or {}).get("tls")) or {}).get("existingSecret"),
            *[(db or {}).get("existingSecret") for db in (values.get("databases") or {}).values()],
            *[((db or {}).get("tls") or {}).get("existingSecret") for db in (values.get("databases") or {}).values()],
        )
        if v
    }
    for obj in rendering.objects:
        for where, pod in pod_specs(obj):
            volumes = {v["name"]: v for v in pod.get("volumes", [])}
            for _, container, _ in containers({"kind": "Pod", "metadata": {"name": where}, "spec": pod}):
                for mount in container.get("volumeMounts", []):
                    assert mount["name"] in volumes, f"{where}: mount {mount['name']} has no volume"
                for env in container.get("env", []):
                    ref = (env.get("valueFrom") or {}).get("secretKeyRef")
                    if ref:
                        assert ("Secret", ref["name"]) in rendered or ref["name"] in external, (where, ref)
            for volume in volumes.values():
                sources = [volume] + [s for s in (volume.get("projected") or {}).get("sources", [])]
                for source in sources:
                    if "configMap" in source:
                        assert ("ConfigMap", source["configMap"]["name"]) in rendered, (where, source)
                    if "secret" in source:
                        name = source["secret"].get("secretName") or source["secret"].get("name")
                        assert ("Secret", name) in rendered or name in external, (where, name)
                    if "persistentVolumeClaim" in source:
                        claim = source["persistentVolumeClaim"]["claimName"]
                        assert ("PersistentVolumeClaim", claim) in rendered, (where, claim)


def test_ingress_routes_to_the_service(render):
    values = scenario_values("production")
    values["ingress"]["enabled"] = True
    ingress = render(values).one("Ingress")
    assert ingress["spec"]["tls"] == [{"secretName": "worker-sync-tls", "hosts": ["worker-sync.example.com"]}]
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "worker-sync", "port": {"name": "http"}}


def test_ingress_is_off_by_default(rendering):
    """Off in both values files: /status and /metrics need no token, so nothing exposes the port by default."""
    assert not rendering.of_kind("Ingress")


def test_production_brings_every_secret_and_generates_none(production_rendering):
    assert not production_rendering.of_kind("Secret")
    sources = production_rendering.one("RayCluster")["spec"]["headGroupSpec"]["template"]["spec"]["volumes"]
    projected = next(v for v in sources if v["name"] == "secrets")["projected"]["sources"]
    names = {s["secret"]["name"] for s in projected}
    assert names == {
        "worker-sync-auth",
        "worker-sync-postgresql",
        "worker-sync-mysql",
        "worker-sync-mongodb",
        "worker-sync-database-ca",
        "worker-sync-http-tls",
    }


# --- the Ray workload -------------------------------------------------------------------------------


def test_autoscaling_maps_the_seed_targets_to_ray_resources(default_rendering):
    params = default_rendering.one("RayCluster")["spec"]["workerGroupSpecs"][0]["rayStartParams"]
    # worker limits: 2 CPUs and 4Gi; targets 70 % and 80 %.
    assert params["num-cpus"] == "1"  # floor(2 * 0.70)
    assert params["memory"] == str(4 * 1024**3 * 80 // 100)


def test_autoscaling_mapping_handles_millicores_and_explicit_values(render):
    r = render(
        {
            "worker": {"resources": {"limits": {"cpu": "6500m", "memory": "1000M"}}},
            "autoscaling": {"targetCPUUtilizationPercentage": 50, "targetMemoryUtilizationPercentage": 90},
        }
    )
    params = r.one("RayCluster")["spec"]["workerGroupSpecs"][0]["rayStartParams"]
    assert (params["num-cpus"], params["memory"]) == ("3", "900000000")
    r = render({"worker": {"rayStartParams": {"num-cpus": "5"}}})
    assert r.one("RayCluster")["spec"]["workerGroupSpecs"][0]["rayStartParams"]["num-cpus"] == "5"


def test_without_autoscaling_the_worker_group_is_fixed(render):
    r = render({"autoscaling": {"enabled": False}, "replicaCount": 2})
    cluster = r.one("RayCluster")["spec"]
    group = cluster["workerGroupSpecs"][0]
    assert cluster["enableInTreeAutoscaling"] is False
    assert "autoscalerOptions" not in cluster
    assert (group["replicas"], group["minReplicas"], group["maxReplicas"]) == (2, 2, 2)
    assert "num-cpus" not in group["rayStartParams"]
    assert cluster["headGroupSpec"]["template"]["spec"]["automountServiceAccountToken"] is False
    assert not [rule for rule in r.one("Role")["rules"] if "ray.io" in rule["apiGroups"]]


def test_kuberay_key_names_override_the_seed_keys(render):
    r = render({"worker": {"replicas": 4, "minReplicas": 2, "maxReplicas": 6}})
    group = r.one("RayCluster")["spec"]["workerGroupSpecs"][0]
    assert (group["replicas"], group["minReplicas"], group["maxReplicas"]) == (4, 2, 6)


def test_ray_auth_mode(render, default_rendering):
    assert default_rendering.one("RayCluster")["spec"]["authOptions"] == {"mode": "token"}
    r = render({"ray": {"auth": {"mode": "disabled"}}})
    assert r.one("RayCluster")["spec"]["authOptions"] == {"mode": "disabled"}
    for where, container, _ in [c for o in r.objects for c in containers(o) if o["kind"] in ("RayCluster", "RayJob")]:
        assert {"name": "RAY_AUTH_MODE", "value": "disabled"} in container.get("env", []), where


def pod_revision(rendering) -> str:
    return rendering.one("RayCluster")["spec"]["headGroupSpec"]["template"]["metadata"]["annotations"][
        "worker-sync/revision"
    ]


def test_ray_job_name_and_pod_revision_follow_the_config(render, default_rendering):
    name = default_rendering.one("RayJob")["metadata"]["name"]
    assert render({}).one("RayJob")["metadata"]["name"] == name, "the revision must be deterministic"
    changed = render({"config": {"supervisor": {"applier_shards": 8}}})
    assert changed.one("RayJob")["metadata"]["name"] != name
    assert pod_revision(changed) != pod_revision(default_rendering), "a new config reaches fresh pods"
    assert changed.one("RayCluster")["spec"]["workerGroupSpecs"][0]["template"]["metadata"]["annotations"][
        "worker-sync/revision"
    ] == pod_revision(changed)


def test_names_fit_63_characters(render):
    r = render({"fullnameOverride": "w" * 63})
    for obj in r.objects:
        assert len(obj["metadata"]["name"]) <= 63, obj["metadata"]["name"]
    assert r.get("Service", "w" * 55 + "-grafana")


# --- values validated by the templates (validateValues) ----------------------------------------------


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"config": {"databases": {}}}, "config.databases: set by the chart"),
        ({"config": {"http": {"port": 1}}}, "config.http: set by the chart"),
        ({"config": {"audit": {"signing_key_file": "/k"}}}, "config.audit.signing_key_file"),
        ({"databases": {"postgresql": {"tls": {"mode": "verify-full"}}}}, "databases.postgresql.tls.existingSecret"),
        ({"redis": {"enabled": False}}, "gcsFaultTolerance.enabled needs a Redis"),
        ({"autoscaling": {"minReplicas": 5, "maxReplicas": 4}}, "minReplicas \\(5\\) is above maxReplicas \\(4\\)"),
        ({"replicaCount": 20}, "replicaCount \\(20\\) must lie between"),
        ({"cronJobs": {"backup": {"s3": {"bucket": ""}}}}, "cronJobs.backup.s3.bucket"),
        ({"prometheus": {"enabled": False}}, "grafana.datasourceUrl"),
        ({"head": {"rayStartParams": {"resources": '"{\\"gpu-ish\\": 1}"'}}}, "head.rayStartParams.resources"),
    ],
)
def test_bad_values_fail_the_render_with_the_key_to_fix(render, helm, values, message):
    with pytest.raises(helm.HelmRenderError, match=message):
        render(values)


def test_upgrade_render_keeps_the_hooks(render):
    r = render({}, is_upgrade=True)
    assert annotations(r.get("Job", "worker-sync-migration"))["helm.sh/hook"] == "pre-upgrade"


def test_notes_warn_about_what_needs_attention(default_rendering, production_rendering, render):
    assert "databases.postgresql has no password" in default_rendering.notes
    assert "audit signing key was generated" in default_rendering.notes
    assert "WARNINGS" not in production_rendering.notes
    assert "image.tag is `latest`" in render({"image": {"tag": "latest"}}).notes
    for service in (
        "worker-sync-grafana 3000:3000",
        "worker-sync-prometheus 9090:9090",
        "worker-sync-alertmanager 9093:9093",
    ):
        assert service in default_rendering.notes


def test_the_state_volume_outlives_an_uninstall(render, default_rendering):
    """It holds the committed stream positions: losing it with the release would re-snapshot every stream."""
    claim = default_rendering.get("PersistentVolumeClaim", "worker-sync-checkpoints")
    assert annotations(claim)["helm.sh/resource-policy"] == "keep"
    others = [c for c in default_rendering.of_kind("PersistentVolumeClaim") if c is not claim]
    assert others and all("helm.sh/resource-policy" not in annotations(c) for c in others)
    not_kept = render({"persistence": {"keepOnUninstall": False}})
    dropped = not_kept.get("PersistentVolumeClaim", "worker-sync-checkpoints")
    assert "helm.sh/resource-policy" not in annotations(dropped)
