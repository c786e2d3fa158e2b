"""The Helm chart: lint, Kubernetes schemas, exact RBAC, the values schema, CRD modes and monitoring."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from install.helpers import CHART, NAMESPACE, ROOT, helm_template_args, kinds, render, run, tool, values_files
from memory_operator import env
from memory_operator.controller import permissions

KUBERNETES_VERSION = "1.34"
MONITORING_GROUP = "monitoring.coreos.com"
Permissions = dict[tuple[str, str], set[str]]

ALL_VERBS = {"get", "list", "watch", "create", "patch", "update", "delete"}
READ = {"get", "list", "watch"}


# The operator's RBAC, as the code declares it (controller/permissions.py).
def declared(*grants: permissions.Permission) -> Permissions:
    result: Permissions = defaultdict(set)
    for grant in grants:
        result[(grant.group, grant.resource)] |= set(grant.verbs)
    return dict(result)


OPERATOR_NAMESPACED = declared(*permissions.NAMESPACED)
OPERATOR_CRD_DISCOVERY = declared(*permissions.DISCOVERY)
OPERATOR_NAMESPACES = declared(*permissions.ALL_NAMESPACES)

RENDERS = [pytest.param((), id="defaults")] + [
    pytest.param(("-f", str(path)), id=path.stem) for path in values_files()
]


def permissions(role: dict[str, Any]) -> Permissions:
    granted: Permissions = defaultdict(set)
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                granted[(group, resource)] |= set(rule["verbs"])
    return dict(granted)


def merged(*sets: Permissions) -> Permissions:
    out: Permissions = defaultdict(set)
    for granted in sets:
        for key, verbs in granted.items():
            out[key] |= verbs
    return dict(out)


def bound_roles(
    objects: list[dict[str, Any]], subject_name: str, subject_namespace: str
) -> list[dict[str, Any]]:
    """Roles and ClusterRoles bound to a ServiceAccount, with the namespace each binding grants them in."""
    by_key = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o for o in objects}
    found = []
    for binding in kinds(objects, "RoleBinding") + kinds(objects, "ClusterRoleBinding"):
        subjects = binding["subjects"]
        if not any(
            s["kind"] == "ServiceAccount"
            and s["name"] == subject_name
            and s["namespace"] == subject_namespace
            for s in subjects
        ):
            continue
        ref = binding["roleRef"]
        namespace = binding["metadata"].get("namespace") if ref["kind"] == "Role" else None
        role = by_key[(ref["kind"], namespace, ref["name"])]
        found.append({"scope": binding["metadata"].get("namespace"), "role": role})
    return found


def deployment(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (found,) = kinds(objects, "Deployment")
    return found


def container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (found,) = deployment(objects)["spec"]["template"]["spec"]["containers"]
    return found


def env_of(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(objects)["env"]}


def chart_meta() -> dict[str, Any]:
    return yaml.safe_load((CHART / "Chart.yaml").read_text())


# --- lint and schemas ---------------------------------------------------------------------------


@pytest.mark.parametrize("extra", RENDERS)
def test_helm_lint_strict(extra: tuple[str, ...]) -> None:
    result = run([tool("helm"), "lint", "--strict", CHART, *extra])
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("extra", RENDERS)
def test_rendered_objects_match_kubernetes_schemas(extra: tuple[str, ...]) -> None:
    objects = render(*extra, "--include-crds")
    assert objects
    for obj in objects:
        if obj["apiVersion"].startswith(MONITORING_GROUP + "/"):
            continue  # no schema for the Prometheus Operator's kinds; test_monitoring_* checks them
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_templated_crds_match_kubernetes_schemas() -> None:
    objects = render("--skip-crds", "--set", "crds.templated=true")
    crds = kinds(objects, "CustomResourceDefinition")
    assert len(crds) == len(EXPECTED_CRDS)
    for crd in crds:
        kubernetes_validate.validate(crd, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize(
    ("settings", "complaint"),
    [
        (["--set", "replicaCount=0"], "/replicaCount"),
        (["--set", "image.tag=5"], "/image/tag"),
        (["--set", "image.tag=latest"], "/image/tag"),
        (["--set", "image.pullPolicy=Sometimes"], "/image/pullPolicy"),
        (["--set", "rbac.clusterWide=false"], "/watchNamespaces"),
        (["--set", "watchNamespaces[0]=Not_A_Namespace"], "/watchNamespaces/0"),
        (["--set", "operator.logFormat=xml"], "/operator/logFormat"),
        (["--set", "operator.metricsPort=70000"], "/operator/metricsPort"),
        (["--set", "securityContext.runAsNonRoot=false"], "/securityContext/runAsNonRoot"),
        (["--set", "securityContext.privileged=true"], "/securityContext/privileged"),
        (["--set", "nonsense=1"], "nonsense"),
        (["--set", "crds.instal=false"], "instal"),
        (["--set", "metrics.qdrantPodMonitors.enabled=true"], "/metrics/qdrantPodMonitors/stores"),
        (["--set", "metrics.serverPodMonitors.enabled=true"], "/metrics/serverPodMonitors/stores"),
        (
            ["--set", "metrics.service.enabled=false", "--set", "metrics.serviceMonitor.enabled=true"],
            "/metrics/service/enabled",
        ),
    ],
)
def test_bad_values_fail_through_the_schema(settings: list[str], complaint: str) -> None:
    result = run(helm_template_args(*settings), check=False)
    assert result.returncode != 0
    assert "don't meet the specifications of the schema" in result.stderr
    assert complaint in result.stderr


def test_image_tag_given_as_string_is_accepted() -> None:
    objects = render("--set-string", "image.tag=5")
    assert container(objects)["image"] == "ghcr.io/memory-operator/memory-operator:5"


# --- RBAC ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("extra", RENDERS)
def test_no_wildcard_in_any_rule(extra: tuple[str, ...]) -> None:
    for role in kinds(render(*extra), "ClusterRole") + kinds(render(*extra), "Role"):
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"):
                assert "*" not in rule.get(field, []), (role["metadata"]["name"], rule)
            assert not any("*" in item for item in rule["resources"]), rule


def test_cluster_wide_rbac_is_exactly_the_contract() -> None:
    objects = render()
    bindings = bound_roles(objects, "memory-operator", NAMESPACE)
    assert all(b["role"]["kind"] == "ClusterRole" and b["scope"] is None for b in bindings)
    granted = merged(*(permissions(b["role"]) for b in bindings))
    assert granted == merged(OPERATOR_NAMESPACED, OPERATOR_CRD_DISCOVERY, OPERATOR_NAMESPACES)
    assert kinds(objects, "Role") == []


def test_namespaced_rbac_grants_the_contract_in_each_watched_namespace_only() -> None:
    objects = render("-f", str(CHART / "ci" / "namespaced-rbac-values.yaml"))
    bindings = bound_roles(objects, "memory-operator", NAMESPACE)
    cluster = [permissions(b["role"]) for b in bindings if b["role"]["kind"] == "ClusterRole"]
    assert merged(*cluster) == OPERATOR_CRD_DISCOVERY  # no namespaces, nothing namespaced cluster-wide
    by_namespace: dict[str, Permissions] = defaultdict(dict)
    for b in bindings:
        if b["role"]["kind"] == "Role":
            assert b["role"]["metadata"]["namespace"] == b["scope"]
            by_namespace[b["scope"]] = merged(by_namespace[b["scope"]], permissions(b["role"]))
    assert set(by_namespace) == {"team-a", "team-b"}
    for granted in by_namespace.values():
        assert granted == OPERATOR_NAMESPACED


def test_the_chart_grants_the_jobs_nothing() -> None:
    """Each store's jobs run as a ServiceAccount of the store with no token: no role, no binding."""
    objects = render()
    assert [a["metadata"]["name"] for a in kinds(objects, "ServiceAccount")] == ["memory-operator"]
    assert not [
        r for r in kinds(objects, "ClusterRole") + kinds(objects, "Role") if "jobs" in r["metadata"]["name"]
    ]


# --- operator Deployment ------------------------------------------------------------------------


def test_default_deployment_runs_the_operator_as_the_contract_says() -> None:
    objects = render()
    spec = deployment(objects)["spec"]
    assert spec["replicas"] == 1
    # The replicas peer: the new pod of a rolling update waits beside the old one.
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    pod = spec["template"]["spec"]
    operator = container(objects)
    app_version = chart_meta()["appVersion"]
    assert operator["image"] == f"ghcr.io/memory-operator/memory-operator:{app_version}"
    assert operator["args"] == ["run", "--all-namespaces", "--log-format=json", "--peering=memory-operator"]
    assert operator["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "healthz"}
    ports = {p["name"]: p["containerPort"] for p in operator["ports"]}
    assert ports == {"healthz": 8080, "metrics": env.METRICS_PORT}
    variables = env_of(objects)
    assert variables["MEMORY_OPERATOR_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert variables["MEMORY_OPERATOR_JOB_IMAGE"] == operator["image"]
    assert variables["MEMORY_OPERATOR_LIVENESS_PORT"] == "8080"
    assert variables["MEMORY_OPERATOR_METRICS_PORT"] == "9090"
    assert "MEMORY_OPERATOR_NAMESPACES" not in variables
    # As benchmarks/controller_scale.py measures it: its API threads share two malloc arenas.
    assert variables["MALLOC_ARENA_MAX"] == "2"
    assert pod["serviceAccountName"] == "memory-operator"
    assert {"name": "tmp", "mountPath": "/tmp"} in operator["volumeMounts"]
    assert any(v["name"] == "tmp" and "emptyDir" in v for v in pod["volumes"])
    assert operator["resources"]["limits"]["memory"]


def test_operator_is_non_root_with_a_read_only_root_and_no_capabilities() -> None:
    objects = render()
    pod = deployment(objects)["spec"]["template"]["spec"]["securityContext"]
    operator = container(objects)["securityContext"]
    assert pod["runAsNonRoot"] is True and pod["runAsUser"] == 10001
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    assert operator["readOnlyRootFilesystem"] is True
    assert operator["allowPrivilegeEscalation"] is False
    assert operator["capabilities"] == {"drop": ["ALL"]}
    assert operator["runAsNonRoot"] is True and operator["runAsUser"] == 10001


def test_watched_namespaces_reach_the_operator() -> None:
    objects = render("-f", str(CHART / "ci" / "namespaced-rbac-values.yaml"))
    assert env_of(objects)["MEMORY_OPERATOR_NAMESPACES"] == "team-a,team-b"
    assert "--all-namespaces" not in container(objects)["args"]


def test_custom_image_and_scheduling_values_are_applied() -> None:
    path = CHART / "ci" / "custom-image-scheduling-values.yaml"
    values = yaml.safe_load(path.read_text())
    objects = render("-f", str(path))
    pod = deployment(objects)["spec"]["template"]["spec"]
    operator = container(objects)
    assert operator["image"] == "registry.example.com/mirror/memory-operator:0.1.0-rc.1"
    assert operator["imagePullPolicy"] == "Always"
    assert (
        env_of(objects)["MEMORY_OPERATOR_JOB_IMAGE"]
        == "registry.example.com/mirror/memory-operator-jobs:0.1.0-rc.1"
    )
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    for key in ("nodeSelector", "tolerations", "affinity", "priorityClassName"):
        assert pod[key] == values[key]
    assert operator["resources"] == values["resources"]
    assert operator["args"] == [
        "run",
        "--all-namespaces",
        "--log-format=plain",
        "--peering=memops",
        "--verbose",
    ]
    assert {"name": "HTTPS_PROXY", "value": "http://proxy.example.com:3128"} in operator["env"]
    assert pod["serviceAccountName"] == "memops-controller"
    assert deployment(objects)["metadata"]["name"] == "memops"
    labels = deployment(objects)["spec"]["template"]["metadata"]["labels"]
    # the managed NetworkPolicies admit the operator by this label, whatever the release is called
    assert labels["app.kubernetes.io/name"] == "memory-operator"
    assert labels["example.com/cost-center"] == "42"


# --- CRDs ---------------------------------------------------------------------------------------


def test_chart_crds_are_byte_identical_to_the_generated_ones() -> None:
    generated = {p.name: p.read_bytes() for p in (ROOT / "crds").glob("*.yaml")}
    # Kopf's peering CRDs (kopf.dev_*) are the chart's own.
    in_chart = {p.name: p.read_bytes() for p in (CHART / "crds").glob("memory-operator.io_*.yaml")}
    assert generated, "crds/ is empty: run `memory-operator crds -o crds`"
    assert in_chart == generated, "run scripts/generate-install.sh"


def crd_names(objects: list[dict[str, Any]]) -> set[str]:
    return {o["metadata"]["name"] for o in kinds(objects, "CustomResourceDefinition")}


EXPECTED_CRDS = {
    "memorystores.memory-operator.io",
    "memorypolicies.memory-operator.io",
    "memorybackups.memory-operator.io",
    "memoryclients.memory-operator.io",
    "memoryerasures.memory-operator.io",
    # Kopf's peering between operator replicas.
    "clusterkopfpeerings.kopf.dev",
    "kopfpeerings.kopf.dev",
}


def test_default_installs_crds_from_the_crds_folder_only() -> None:
    assert crd_names(render("--include-crds")) == EXPECTED_CRDS
    assert crd_names(render()) == set()  # not in templates: Helm's crds/ folder installs them


def test_templated_crds_are_the_same_files_kept_on_uninstall() -> None:
    crds = kinds(
        render("--skip-crds", "-f", str(CHART / "ci" / "crds-templated-values.yaml")),
        "CustomResourceDefinition",
    )
    files = {yaml.safe_load(p.read_text())["metadata"]["name"]: p for p in (CHART / "crds").glob("*.yaml")}
    assert {c["metadata"]["name"] for c in crds} == EXPECTED_CRDS
    for crd in crds:
        file = yaml.safe_load(files[crd["metadata"]["name"]].read_text())
        annotations = crd["metadata"].pop("annotations")
        assert annotations.pop("helm.sh/resource-policy") == "keep"
        # the files' own annotations (Argo CD's sync options) are kept beside it
        assert annotations == file["metadata"].pop("annotations", {})
        assert crd == file


def test_crds_can_be_left_out() -> None:
    assert crd_names(render("--skip-crds", "-f", str(CHART / "ci" / "crds-off-values.yaml"))) == set()
    assert (
        crd_names(render("--skip-crds", "--set", "crds.install=false", "--set", "crds.templated=true"))
        == set()
    )


# --- monitoring ---------------------------------------------------------------------------------

MONITORING = ("-f", str(CHART / "ci" / "monitoring-values.yaml"))
OPERATOR_METRICS = [
    "memory_operator_reconciles_total",
    "memory_operator_reconcile_duration_seconds",
    "memory_operator_stores",
    "memory_operator_api_writes_total",
    "memory_operator_drift_repairs_total",
    "memory_operator_backup_last_success_timestamp_seconds",
    "memory_operator_expiration_runs_total",
]


def test_no_monitoring_object_by_default() -> None:
    assert [o for o in render() if o["apiVersion"].startswith(MONITORING_GROUP)] == []
    assert kinds(render(), "ConfigMap") == []


def test_monitoring_objects_are_well_formed() -> None:
    for obj in render(*MONITORING):
        if obj["apiVersion"].startswith(MONITORING_GROUP):
            assert obj["apiVersion"] == f"{MONITORING_GROUP}/v1"
            assert obj["kind"] in {"ServiceMonitor", "PodMonitor", "PrometheusRule"}
            assert set(obj) == {"apiVersion", "kind", "metadata", "spec"}
            assert obj["metadata"]["name"] and obj["metadata"]["namespace"]
            # the rest of metadata is plain ObjectMeta
            kubernetes_validate.validate(
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": obj["metadata"]},
                KUBERNETES_VERSION,
                strict=True,
            )


def test_service_monitor_scrapes_the_operator_metrics_service() -> None:
    objects = render(*MONITORING)
    (monitor,) = kinds(objects, "ServiceMonitor")
    (service,) = kinds(objects, "Service")
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert (
        service["spec"]["selector"].items()
        <= deployment(objects)["spec"]["template"]["metadata"]["labels"].items()
    )
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    assert endpoint["honorLabels"] is True
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}


def test_pod_monitors_scrape_servers_and_qdrant_with_the_stores_keys() -> None:
    objects = kinds(render(*MONITORING), "PodMonitor")
    monitors = {(m["metadata"]["namespace"], m["metadata"]["name"]): m for m in objects}
    # the Secrets the operator generates for these stores, and the keys it puts in them
    expected = {
        ("team-a", "agents-memory-server"): (
            "memory-server",
            "agents",
            "agents-api-keys",
            "read-only-api-key",
        ),
        ("team-b", "support-memory-server"): (
            "memory-server",
            "support",
            "support-api-keys",
            "read-only-api-key",
        ),
        ("team-a", "agents-qdrant"): ("qdrant", "agents", "agents-qdrant-key", "api-key"),
        ("team-b", "support-qdrant"): ("qdrant", "support", "support-qdrant-key", "api-key"),
    }
    assert set(monitors) == set(expected)
    for key, (app, store, secret, secret_key) in expected.items():
        spec = monitors[key]["spec"]
        assert "namespaceSelector" not in spec  # its own namespace, where the Secret is
        assert spec["selector"]["matchLabels"] == {
            "app.kubernetes.io/name": app,
            "app.kubernetes.io/instance": store,
            "app.kubernetes.io/managed-by": "memory-operator",
        }
        (endpoint,) = spec["podMetricsEndpoints"]
        assert (endpoint["port"], endpoint["path"]) == ("http", "/metrics")
        assert endpoint["authorization"] == {
            "type": "Bearer",
            "credentials": {"name": secret, "key": secret_key},
        }
        assert endpoint["relabelings"] == [{"targetLabel": "store", "replacement": store}]


def test_prometheus_rule_alerts_on_the_operator_metrics() -> None:
    (rule,) = kinds(render(*MONITORING), "PrometheusRule")
    (group,) = rule["spec"]["groups"]
    alerts = {r["alert"]: r for r in group["rules"]}
    assert set(alerts) == {
        "MemoryOperatorDown",
        "MemoryStoreDegraded",
        "MemoryStoreNotReady",
        "MemoryStoreBackupMissing",
        "MemoryPolicyExpirationFailing",
        "MemoryOperatorReconcileErrors",
        "MemoryOperatorReconcileSlow",
        "MemoryStoreCanaryRecallLow",
        "MemoryStoreCanaryLatencyHigh",
        "MemoryClientDenied",
        "MemoryClientThrottled",
    }
    for alert in alerts.values():
        assert set(alert) <= {"alert", "expr", "for", "labels", "annotations"}
        assert alert["labels"]["severity"] in {"critical", "warning", "info"}
        assert alert["annotations"]["summary"] and alert["annotations"]["description"]
        assert alert["expr"].count("(") == alert["expr"].count(")")
    assert 'memory_operator_stores{phase=~"Degraded|Failed"}' in alerts["MemoryStoreDegraded"]["expr"]
    for metric in (
        "memory_operator_backup_last_success_timestamp_seconds",
        "memory_operator_backup_scheduled_since_timestamp_seconds",
    ):
        assert metric in alerts["MemoryStoreBackupMissing"]["expr"]  # tests/install/test_alerts.py runs it
    assert "memory_operator_expiration_runs_total" in alerts["MemoryPolicyExpirationFailing"]["expr"]
    assert (
        'memory_operator_reconciles_total{result="error"}' in alerts["MemoryOperatorReconcileErrors"]["expr"]
    )
    assert (
        "memory_operator_reconcile_duration_seconds_bucket" in alerts["MemoryOperatorReconcileSlow"]["expr"]
    )
    assert 'job="memory-operator-metrics"' in alerts["MemoryOperatorDown"]["expr"]
    # Prometheus templates survive Helm's templating
    assert "{{ $labels.store }}" in alerts["MemoryStoreBackupMissing"]["annotations"]["summary"]


def test_grafana_dashboard_config_map() -> None:
    (config_map,) = kinds(render(*MONITORING), "ConfigMap")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["namespace"] == "monitoring"
    dashboard = json.loads(config_map["data"]["memory-operator.json"])
    assert dashboard["uid"] == "memory-operator"
    expressions = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    for metric in OPERATOR_METRICS:
        assert metric in expressions, metric


# --- documentation ------------------------------------------------------------------------------


def value_paths(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Every key of values.yaml, nested ones as dotted paths, with its value."""
    paths: dict[str, Any] = {}
    for key, value in values.items():
        path = f"{prefix}{key}"
        paths[path] = value
        if isinstance(value, dict):
            paths.update(value_paths(value, path + "."))
    return paths


def documented_values(readme: Path) -> dict[str, str]:
    """Key to default cell of the Values table of the chart's README."""
    rows: dict[str, str] = {}
    in_table = False
    for line in readme.read_text().splitlines():
        if line.startswith("| Key | Default | Description |"):
            in_table = True
            continue
        if in_table and line.startswith("| `"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            rows[cells[0].strip("`")] = cells[1]
        elif in_table and not line.startswith("|"):
            break
    return rows


def test_every_value_is_documented_with_its_default() -> None:
    values = value_paths(yaml.safe_load((CHART / "values.yaml").read_text()))
    documented = documented_values(CHART / "README.md")
    assert set(documented) == set(values)
    for path, value in values.items():
        if isinstance(value, dict) and value:
            assert documented[path] == "", path  # objects are described by their keys
        else:
            assert documented[path] == f"`{json.dumps(value)}`", path


def test_schema_knows_every_value() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())

    def check(values: dict[str, Any], node: dict[str, Any], path: str) -> None:
        for key, value in values.items():
            assert key in node.get("properties", {}), f"{path}{key} is missing from values.schema.json"
            child = node["properties"][key]
            if (
                isinstance(value, dict)
                and "properties" in child
                and child.get("additionalProperties") is False
            ):
                check(value, child, f"{path}{key}.")

    check(yaml.safe_load((CHART / "values.yaml").read_text()), schema, "")


def test_notes_point_at_the_examples() -> None:
    result = run(
        [tool("helm"), "install", "--dry-run=client", "memory-operator", CHART, "--namespace", NAMESPACE]
    )
    notes = result.stdout.split("NOTES:", 1)[1]
    for example in (
        "store-minimal.yaml",
        "store-production.yaml",
        "policy-retention.yaml",
        "backup-on-demand.yaml",
    ):
        assert f"manifests/examples/{example}" in notes
    assert "serviceaccount" not in notes.lower(), "the operator makes each store's jobs ServiceAccount"
