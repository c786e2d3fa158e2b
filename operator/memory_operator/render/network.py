"""NetworkPolicies: who may reach Qdrant, and (for the unauthenticated openmemory flavor) the server.

Qdrant's REST and gRPC ports accept this store's server and job pods and the operator; its cluster port,
and its REST port, accept the store's other Qdrant nodes. Egress is left open (model providers, S3).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from memory_operator import env, labels
from memory_operator.api.store import MemoryStore, ServerFlavor
from memory_operator.render import collection, meta, names, qdrant, server
from memory_operator.render.meta import Manifest

# Components of the store's job pods (restore jobs carry the backup component).
JOB_COMPONENTS = [meta.BACKUP, meta.EXPIRATION, collection.COMPONENT]


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
    store: MemoryStore, operator_namespace: str | None, operator_pod_labels: Mapping[str, str]
) -> Manifest:
    return {
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
    store: MemoryStore, operator_namespace: str | None, operator_pod_labels: Mapping[str, str]
) -> list[Manifest]:
    """The builtin server authenticates every request, so agents of any namespace may reach it."""
    policies = [qdrant_policy(store, operator_namespace, operator_pod_labels)]
    if store.spec.server.flavor == ServerFlavor.openmemory:
        policies.append(server_policy(store, operator_namespace, operator_pod_labels))
    return policies
