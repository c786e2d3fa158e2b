"""NetworkPolicies: who may reach Qdrant, and (for the unauthenticated openmemory flavor) the server.

Qdrant's REST and gRPC ports accept this store's server and job pods and the operator; its cluster port,
and its REST port, accept the store's other Qdrant nodes; its REST port, where `/metrics` is, accepts
the metrics scraper the operator's deployment names (a Prometheus). Egress is left open (model
providers, S3).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from memory_operator import env, labels
from memory_operator.api.store import MemoryStore, ServerFlavor
from memory_operator.render import collection, erasure, meta, names, qdrant, server, upgrade
from memory_operator.render.meta import Manifest

# Components of the store's job pods (restore jobs carry the backup component).
JOB_COMPONENTS = [meta.BACKUP, meta.EXPIRATION, collection.COMPONENT, upgrade.COMPONENT, erasure.COMPONENT]


@dataclass(frozen=True)
class Scraper:
    """The pods that scrape Qdrant's `/metrics` (a Prometheus), by their namespace's and their own labels.

    Empty labels select every namespace, or every pod of the selected namespaces."""

    namespace_labels: Mapping[str, str] = field(default_factory=dict)
    pod_labels: Mapping[str, str] = field(default_factory=dict)

    def peer(self) -> dict[str, Any]:
        return {
            "namespaceSelector": {"matchLabels": dict(sorted(self.namespace_labels.items()))},
            "podSelector": {"matchLabels": dict(sorted(self.pod_labels.items()))},
        }


def _ports(*ports: int) -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": port} for port in ports]


def operator_peer(operator_namespace: str | None, operator_pod_labels: Mapping[str, str]) -> dict[str, Any]:
    """The operator's pods: in its namespace when known, else wherever they run."""
    namespace_selector: dict[str, Any] = {}
    if operator_namespace:
        namespace_selector = {"matchLabels": {"kubernetes.io/metadata.name": operator_namespace}}
    return {
        "namespaceSelector": namespace_selector,
        "podSelector": {"matchLabels": dict(sorted(operator_pod_labels.items()))},
    }


def job_peer(store: MemoryStore) -> dict[str, Any]:
    return {
        "podSelector": {
            "matchLabels": {
                "app.kubernetes.io/name": meta.JOBS,
                labels.STORE: store.metadata.name,
            },
            "matchExpressions": [
                {"key": "app.kubernetes.io/component", "operator": "In", "values": JOB_COMPONENTS}
            ],
        }
    }


def qdrant_policy(
    store: MemoryStore,
    operator_namespace: str | None,
    operator_pod_labels: Mapping[str, str],
    scraper: Scraper | None = None,
) -> Manifest:
    policy: Manifest = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta.metadata(store, names.qdrant_network_policy_name(store), meta.QDRANT, meta.NETWORK),
        "spec": {
            "podSelector": {"matchLabels": qdrant.selector(store)},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [
                        {"podSelector": {"matchLabels": server.selector(store)}},
                        job_peer(store),
                        operator_peer(operator_namespace, operator_pod_labels),
                    ],
                    "ports": _ports(env.QDRANT_HTTP_PORT, env.QDRANT_GRPC_PORT),
                },
                # Peers: consensus and shard transfers on the cluster port, and the `snapshot` transfer
                # method, which downloads the shard snapshot over REST.
                {
                    "from": [{"podSelector": {"matchLabels": qdrant.selector(store)}}],
                    "ports": _ports(env.QDRANT_HTTP_PORT, env.QDRANT_P2P_PORT),
                },
            ],
        },
    }
    if scraper is not None:
        # Qdrant serves `/metrics` on its REST port only: the scraper reaches that port (and, for the
        # openmemory flavor, whose Qdrant has no API key, the API on it too).
        policy["spec"]["ingress"].append({"from": [scraper.peer()], "ports": _ports(env.QDRANT_HTTP_PORT)})
    return policy


def server_policy(
    store: MemoryStore, operator_namespace: str | None, operator_pod_labels: Mapping[str, str]
) -> Manifest:
    """The openmemory server has no authentication: only pods of its namespace (agents) reach it."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta.metadata(store, names.server_network_policy_name(store), meta.SERVER, meta.NETWORK),
        "spec": {
            "podSelector": {"matchLabels": server.selector(store)},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [{"podSelector": {}}, operator_peer(operator_namespace, operator_pod_labels)],
                    "ports": _ports(env.SERVER_PORT),
                }
            ],
        },
    }


def render(
    store: MemoryStore,
    operator_namespace: str | None,
    operator_pod_labels: Mapping[str, str],
    scraper: Scraper | None = None,
) -> list[Manifest]:
    """The builtin server authenticates every request, so agents of any namespace may reach it."""
    policies = [qdrant_policy(store, operator_namespace, operator_pod_labels, scraper)]
    if store.spec.server.flavor == ServerFlavor.openmemory:
        policies.append(server_policy(store, operator_namespace, operator_pod_labels))
    return policies
