"""Pure renderers: a validated MemoryStore (and the policies that select it) in, child manifests out.

Nothing here talks to a cluster. The same store, policies, settings and keys always give the same
manifests, and no operator version appears in them, so an operator upgrade rolls no pod.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from memory_operator import images
from memory_operator.api.policy import MemoryPolicy
from memory_operator.api.store import MemoryStore, ServerFlavor
from memory_operator.render import backup, disruption, expiration, names, network, openmemory, qdrant, server
from memory_operator.render import credentials as credentials_
from memory_operator.render.credentials import Credentials

__all__ = ["Credentials", "RenderSettings", "names", "render_store"]


def _default_operator_pod_labels() -> Mapping[str, str]:
    return {"app.kubernetes.io/name": "memory-operator"}


@dataclass(frozen=True)
class RenderSettings:
    """What the operator's deployment decides, as opposed to the store's spec."""

    job_image: str = images.DEFAULT_JOB_IMAGE
    """Image of the expiration, backup and restore jobs."""
    job_service_account: str = "memory-operator-jobs"
    """ServiceAccount of the jobs, present in every watched namespace."""
    operator_namespace: str | None = None
    """Namespace of the operator's pods; the NetworkPolicy lets them reach Qdrant (any namespace if unset)."""
    operator_pod_labels: Mapping[str, str] = field(default_factory=_default_operator_pod_labels)
    """Labels of the operator's pods."""


# Kinds in the order they are applied: what pods reference exists before the pods.
APPLY_ORDER = [
    "Secret",
    "ConfigMap",
    "PersistentVolumeClaim",
    "Service",
    "NetworkPolicy",
    "StatefulSet",
    "PodDisruptionBudget",
    "Job",
    "Deployment",
    "CronJob",
]


def _in_apply_order(manifests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # A stable sort: within a kind, the renderers' own order is kept.
    return sorted(manifests, key=lambda m: APPLY_ORDER.index(m["kind"]))


def render_store(
    store: MemoryStore,
    policies: Sequence[MemoryPolicy] = (),
    settings: RenderSettings = RenderSettings(),  # frozen, so a shared default is safe
    credentials: Credentials | None = None,
) -> list[dict[str, Any]]:
    """Every child manifest of `store`, in apply order.

    `policies` are those that select the store. Secrets are rendered only when `credentials` is given:
    the controller generates keys once and passes the same ones ever after.
    """
    manifests: list[dict[str, Any]] = []
    if credentials is not None:
        manifests += credentials_.render(store, credentials)
    manifests += qdrant.render(store)
    if store.spec.server.flavor == ServerFlavor.openmemory:
        manifests += openmemory.render(store)
    else:
        manifests += server.render(store)
    manifests += network.render(store, settings.operator_namespace, settings.operator_pod_labels)
    manifests += disruption.render(store)
    manifests += expiration.render(store, list(policies), settings.job_image, settings.job_service_account)
    manifests += backup.render(store, settings.job_image, settings.job_service_account)
    return _in_apply_order(manifests)
