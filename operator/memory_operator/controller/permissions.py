"""What the operator does through the Kubernetes API, declared once: the chart's RBAC grants exactly
this (tests/install checks the chart against it) and the end-to-end suite checks, from the API
server's audit log, that the operator used every verb and needed none besides."""

from __future__ import annotations

from dataclasses import dataclass

from memory_operator.api.common import GROUP

WATCHED = ("list", "watch")
# Children: applied (a server-side apply that makes an object is authorised as `create`), and deleted
# when no longer rendered.
CHILD = (*WATCHED, "create", "patch", "delete")
# Children rendered for as long as the store lives (their names never change): never deleted.
LASTING_CHILD = (*WATCHED, "create", "patch")


@dataclass(frozen=True)
class Permission:
    group: str
    resource: str
    verbs: tuple[str, ...]
    why: str
    applied: bool = False
    """Written by server-side apply: the API server authorises the `create` of a new object within the
    `patch` request, so the audit log shows that patch only."""


# Namespaced: granted in every watched namespace (a ClusterRole when the operator watches all).
NAMESPACED = (
    Permission(
        GROUP,
        "memorystores",
        (*WATCHED, "patch"),
        "watch cache; the finalizer; Kopf's progress annotations (a failed handler's retries)",
    ),
    Permission(
        GROUP,
        "memorypolicies",
        (*WATCHED, "patch"),
        "watch cache; Kopf's progress annotations (a failed handler's retries)",
    ),
    Permission(
        GROUP,
        "memorybackups",
        (*WATCHED, "create", "patch", "delete"),
        "scheduled backups, adoption, deletionPolicy",
    ),
    Permission(GROUP, "memoryclients", WATCHED, "watch cache (event handlers only: no Kopf state)"),
    Permission(
        GROUP, "memoryerasures", (*WATCHED, "patch"), "watch cache; Kopf's finalizer of the retry timer"
    ),
    Permission(GROUP, "memorystores/status", ("patch",), "server-side apply of the status"),
    Permission(GROUP, "memorypolicies/status", ("patch",), "server-side apply of the status"),
    Permission(GROUP, "memorybackups/status", ("patch",), "server-side apply of the status"),
    Permission(GROUP, "memoryclients/status", ("patch",), "server-side apply of the status"),
    Permission(GROUP, "memoryerasures/status", ("patch",), "server-side apply of the status"),
    Permission(GROUP, "memorystores/finalizers", ("update",), "owner references that block deletion"),
    Permission(GROUP, "memorybackups/finalizers", ("update",), "owner references that block deletion"),
    Permission(GROUP, "memoryclients/finalizers", ("update",), "owner references that block deletion"),
    Permission(GROUP, "memoryerasures/finalizers", ("update",), "owner references that block deletion"),
    Permission("", "configmaps", CHILD, "children", applied=True),
    Permission("", "services", LASTING_CHILD, "children", applied=True),
    Permission("", "serviceaccounts", LASTING_CHILD, "the jobs' ServiceAccount", applied=True),
    Permission(
        "", "secrets", LASTING_CHILD, "generated keys (never deleted); Secrets a store names", applied=True
    ),
    Permission(
        "", "persistentvolumeclaims", CHILD, "claims: growth, retention, deletionPolicy", applied=True
    ),
    Permission("", "pods", WATCHED, "the jobs' termination messages"),
    Permission("", "events", ("create",), "Events"),
    Permission(
        "apps", "statefulsets", (*CHILD, "get"), "children; recreation for new volume templates", applied=True
    ),
    Permission("apps", "deployments", LASTING_CHILD, "children", applied=True),
    Permission(
        "batch", "jobs", CHILD, "collection, backup and restore Jobs; a failed restore retried", applied=True
    ),
    Permission("batch", "cronjobs", CHILD, "expiration CronJobs", applied=True),
    Permission("networking.k8s.io", "networkpolicies", CHILD, "children", applied=True),
    Permission("policy", "poddisruptionbudgets", CHILD, "children", applied=True),
    Permission(
        "cert-manager.io",
        "certificates",
        CHILD,
        "a store's cert-manager Certificate (tls.issuerRef)",
        applied=True,
    ),
    Permission(
        "kopf.dev",
        "kopfpeerings",
        (*WATCHED, "create", "patch", "get"),
        "peering between replicas (`get`: which one runs the stores' timers)",
    ),
)

# Cluster-wide: CRD discovery; and when the operator watches every namespace, the peering.
DISCOVERY = (Permission("apiextensions.k8s.io", "customresourcedefinitions", WATCHED, "Kopf's discovery"),)
ALL_NAMESPACES = (
    Permission(
        "kopf.dev",
        "clusterkopfpeerings",
        (*WATCHED, "create", "patch", "get"),
        "peering between replicas (`get`: which one runs the stores' timers)",
    ),
)

# Granted but not seen in a request: admission checks them (OwnerReferencesPermissionEnforcement),
# peering objects of listed namespaces exist only when the operator watches listed namespaces, and Kopf
# patches a policy only to record the retries of a failed handler (its last-handled state is kept in
# memory: settings.KeptDiffBaseStorage).
NOT_REQUESTED = frozenset(
    {
        (GROUP, "memorypolicies", "patch"),
        (GROUP, "memorystores/finalizers", "update"),
        (GROUP, "memorybackups/finalizers", "update"),
        (GROUP, "memoryclients/finalizers", "update"),
        (GROUP, "memoryerasures/finalizers", "update"),
        ("kopf.dev", "kopfpeerings", "list"),
        ("kopf.dev", "kopfpeerings", "watch"),
        ("kopf.dev", "kopfpeerings", "create"),
        ("kopf.dev", "kopfpeerings", "patch"),
        ("kopf.dev", "kopfpeerings", "get"),
    }
)


def granted(*permissions: Permission) -> set[tuple[str, str, str]]:
    return {(p.group, p.resource, verb) for p in permissions for verb in p.verbs}


def with_apply_creates(
    used: set[tuple[str, str, str]], *permissions: Permission
) -> set[tuple[str, str, str]]:
    """`used` (from the audit log) with the `create` each server-side apply's patch was authorised for."""
    return used | {
        (p.group, p.resource, "create")
        for p in permissions
        if p.applied and (p.group, p.resource, "patch") in used
    }
