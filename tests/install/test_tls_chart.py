"""The chart and TLS: the operator's RBAC covers cert-manager's Certificates, and the PodMonitors of a
store with `spec.tls` scrape over https, verifying the store's certificate."""

from __future__ import annotations

from install.helpers import kinds, render
from memory_operator.controller import permissions


def test_the_operator_may_manage_cert_manager_certificates() -> None:
    declared = permissions.granted(*permissions.NAMESPACED)
    assert {
        ("cert-manager.io", "certificates", verb) for verb in ("list", "watch", "create", "patch", "delete")
    } <= (declared)
    roles = [r for r in kinds(render(), "ClusterRole") if r["metadata"]["name"] == "memory-operator"]
    rules = [rule for role in roles for rule in role["rules"] if "cert-manager.io" in rule["apiGroups"]]
    assert rules == [
        {
            "apiGroups": ["cert-manager.io"],
            "resources": ["certificates"],
            "verbs": ["list", "watch", "create", "patch", "delete"],
        }
    ]


def test_pod_monitors_of_a_store_with_tls_scrape_over_https() -> None:
    objects = render(
        "--set", "metrics.scraper.podLabels.app=prometheus",
        "--set", "metrics.serverPodMonitors.enabled=true",
        "--set", "metrics.serverPodMonitors.stores[0].name=secure",
        "--set", "metrics.serverPodMonitors.stores[0].namespace=agents",
        "--set", "metrics.serverPodMonitors.stores[0].tls=true",
        "--set", "metrics.serverPodMonitors.stores[1].name=plain",
        "--set", "metrics.serverPodMonitors.stores[1].namespace=agents",
        "--set", "metrics.qdrantPodMonitors.enabled=true",
        "--set", "metrics.qdrantPodMonitors.stores[0].name=secure",
        "--set", "metrics.qdrantPodMonitors.stores[0].namespace=agents",
        "--set", "metrics.qdrantPodMonitors.stores[0].tls=true",
        "--set", "metrics.qdrantPodMonitors.stores[0].tlsSecret=own-tls",
    )  # fmt: skip
    endpoints = {
        m["metadata"]["name"]: m["spec"]["podMetricsEndpoints"][0] for m in kinds(objects, "PodMonitor")
    }
    assert endpoints["secure-memory-server"]["scheme"] == "https"
    assert endpoints["secure-memory-server"]["tlsConfig"] == {
        "ca": {"secret": {"name": "secure-tls", "key": "ca.crt"}},
        "serverName": "secure-server.agents.svc",
    }
    assert endpoints["secure-qdrant"]["tlsConfig"] == {
        "ca": {"secret": {"name": "own-tls", "key": "ca.crt"}},
        "serverName": "secure-qdrant.agents.svc",
    }
    assert "scheme" not in endpoints["plain-memory-server"]
    assert "tlsConfig" not in endpoints["plain-memory-server"]
