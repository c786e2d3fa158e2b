"""The chart's side of memory quality: the `helm test` pod running the recall canary against a store,
and the dashboard's panels of the canary and the audit."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from install.helpers import CHART, helm_template_args, kinds, render, run

CANARY_VALUES = ("-f", str(CHART / "ci" / "canary-test-values.yaml"))
MONITORING = ("-f", str(CHART / "ci" / "monitoring-values.yaml"))


def test_no_helm_test_pod_by_default() -> None:
    assert [
        o for o in render() if (o["metadata"].get("annotations") or {}).get("helm.sh/hook") == "test"
    ] == []


def test_helm_test_runs_the_canary_against_the_named_store() -> None:
    (pod,) = [o for o in kinds(render(*CANARY_VALUES), "Pod")]
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert pod["metadata"]["namespace"] == "team-a"
    spec = pod["spec"]
    (container,) = spec["containers"]
    assert container["args"] == ["canary", "--top-k", "3", "--min-recall", "0.9", "--max-p95-ms", "1500"]
    variables = {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}
    assert variables["MEMORY_SERVER_URL"] == "http://agents-server.team-a.svc:8765"
    assert variables["MEMORY_API_KEY"] == {"secretKeyRef": {"name": "agents-keys", "key": "rw"}}
    assert variables["MEMORY_STORE_NAME"] == "agents"
    # The jobs' image, which has the canary's command; no API token, nothing else mounted.
    assert container["image"].startswith("ghcr.io/memory-operator/memory-operator:")
    assert spec["automountServiceAccountToken"] is False and spec["restartPolicy"] == "Never"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_the_store_s_generated_secret_is_the_default() -> None:
    (pod,) = kinds(render("--set", "tests.canary.store=mem", "--namespace", "agents"), "Pod")
    (container,) = pod["spec"]["containers"]
    key = next(e for e in container["env"] if e["name"] == "MEMORY_API_KEY")
    assert key["valueFrom"]["secretKeyRef"] == {"name": "mem-api-keys", "key": "api-key"}
    assert container["args"] == ["canary", "--top-k", "5", "--min-recall", "0.95", "--max-p95-ms", "2000"]
    assert pod["metadata"]["namespace"] == "agents"


@pytest.mark.parametrize(
    ("setting", "complaint"),
    [
        ("tests.canary.minRecall=1.5", "/tests/canary/minRecall"),
        ("tests.canary.topK=0", "/tests/canary/topK"),
        ("tests.canary.store=Not_A_Store", "/tests/canary/store"),
    ],
)
def test_bad_canary_values_fail_through_the_schema(setting: str, complaint: str) -> None:
    result = run(helm_template_args("--set", setting), check=False)
    assert result.returncode != 0 and complaint in result.stderr


def dashboard() -> dict[str, Any]:
    (config_map,) = kinds(render(*MONITORING), "ConfigMap")
    return dict(json.loads(config_map["data"]["memory-operator.json"]))


def test_the_dashboard_shows_quality_per_store() -> None:
    panels = {p["title"]: " ".join(t["expr"] for t in p["targets"]) for p in dashboard()["panels"]}
    assert "memory_operator_canary_recall" in panels["Canary recall@k by store"]
    assert "memory_operator_canary_latency_seconds" in panels["Canary search latency by store"]
    assert "memory_operator_audit_duplicates" in panels["Duplicates by store"]
    assert "memory_operator_audit_stale_memories" in panels["Stale memories by store"]
    for title in ("Canary recall@k by store", "Duplicates by store", "Stale memories by store"):
        assert "by (namespace, store" in panels[title], title


def test_the_dashboards_quality_panels_read_metrics_the_operator_exports() -> None:
    from prometheus_client import REGISTRY

    import memory_operator.controller.metrics  # noqa: F401  (registers the operator's metrics)

    families = {family.name for family in REGISTRY.collect()}
    quality = [p for p in dashboard()["panels"] if "anary" in p["title"] or "by store" in p["title"]]
    names = {
        name
        for panel in quality
        for target in panel["targets"]
        for name in re.findall(r"memory_operator_\w+", target["expr"])
    }
    assert len(names) >= 7
    for name in names:
        assert name in families or name.removesuffix("_total") in families, name
