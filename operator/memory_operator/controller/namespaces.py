"""When Kopf stops serving a namespace that is being deleted: when it is gone.

An operator serving given namespaces (`--namespace`, the chart's `watchNamespaces`) and allowed to
watch namespaces has Kopf stop serving one it considers deleted: Kopf 1.45 does so once the namespace
is marked for deletion and its conditions show no blocker (none True). But the namespace controller's
first conditions are all False (Kubernetes 1.34, pods first): at that moment Kopf stops serving the
namespace for good, no later event of its stores reaches the operator, its finalizer on each store is
never removed, and the namespace stays Terminating forever. A namespace is served here until its
deletion event; a missed one costs only an idle watch until the operator restarts. Not concerned: an
operator cluster-wide (`--all-namespaces`), or one not allowed to watch namespaces (the chart grants
it no such permission: Kopf serves the given namespaces as they are).
"""

from __future__ import annotations

from typing import Any

from kopf._core.reactor import observation


def namespace_is_deleted(raw_event: Any) -> bool:
    """Whether a namespace's watch event says it is gone (not merely being deleted)."""
    return bool(raw_event.get("type") == "DELETED")


def serve_namespaces_until_gone() -> None:
    """Kopf stops serving a namespace only when `namespace_is_deleted` says so."""
    observation.is_deleted = namespace_is_deleted
