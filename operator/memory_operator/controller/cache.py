"""What the operator knows of the cluster: indexes fed by label-filtered watches.

A reconcile reads its store's children, Secrets, policies and backups from here, not from the API:
a converged store costs no request. Kopf fills every index from its initial listing before any other
handler runs, and keeps it current from the watch streams; most children are indexed alike by the
operator's own streams (informer.py), which handlers wait for as well.

The watches of children select `app.kubernetes.io/managed-by=memory-operator` on the server. Secrets
are the exception: a store also names Secrets of its user (`auth.existingSecret`, model keys, backup
credentials) that carry no label of ours, so every Secret of the watched namespaces is seen, and only
what a reconcile needs of it is kept: our own Secrets whole, any other one as its key names and a
digest of each value (never the values).

Each object is kept as compressed compact JSON (`Packed`), parsed when a reconcile reads it: a parsed
body takes several times the memory of its text, and most objects are read far less often than they are
kept. The compression is primed with what the operator renders for a store, which most of every child
repeats: a child takes a tenth of its text, for some 10 us to pack and 5 us to unpack.
"""

from __future__ import annotations

import functools
import hashlib
import json
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import kopf

from memory_operator import labels
from memory_operator.api.common import GROUP, VERSION
from memory_operator.api.store import MemoryStore
from memory_operator.render import Credentials, render_store

Body = Mapping[str, Any]
MANAGED = f"{labels.MANAGED_BY_KEY}={labels.MANAGED_BY_VALUE}"


@dataclass(frozen=True)
class Watched:
    """A kind the operator indexes, and how its watch is filtered on the server."""

    group: str
    version: str
    plural: str
    kind: str
    selector: str | None = MANAGED
    fields: str | None = None

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def index_id(self) -> str:
        return f"index_{self.plural}"


# The children of stores (and of their backups), listed by their `store` label. Most are kept by the
# operator's own streams (informer.py), the workloads' changes answered there too; Jobs, which several
# handlers answer, and Certificates, a kind Kopf watches once the cluster serves it, by Kopf's indexes.
WORKLOADS = (
    Watched("apps", "v1", "statefulsets", "StatefulSet"),
    Watched("apps", "v1", "deployments", "Deployment"),
)
INFORMED = (
    Watched("", "v1", "configmaps", "ConfigMap"),
    Watched("", "v1", "services", "Service"),
    Watched("", "v1", "serviceaccounts", "ServiceAccount"),
    Watched("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim"),
    *WORKLOADS,
    Watched("batch", "v1", "cronjobs", "CronJob"),
    Watched("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy"),
    Watched("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget"),
)
INDEXED = (
    Watched("batch", "v1", "jobs", "Job"),
    Watched("cert-manager.io", "v1", "certificates", "Certificate"),
)
CHILDREN = INFORMED + INDEXED
SECRETS = Watched("", "v1", "secrets", "Secret", selector=None)
# Pods of the jobs only, once finished: their termination message is the job's summary. A job pod's
# one container never restarts (`restartPolicy: Never`), so it has terminated exactly when the pod has
# left Pending and Running; the watch reports a pod as it leaves them, not each step of its start.
JOB_PODS = Watched(
    "",
    "v1",
    "pods",
    "Pod",
    selector=f"{MANAGED},{labels.NAME_KEY}=memory-operator",
    fields="status.phase!=Pending,status.phase!=Running",
)
STORES = Watched(GROUP, VERSION, "memorystores", "MemoryStore", selector=None)
POLICIES = Watched(GROUP, VERSION, "memorypolicies", "MemoryPolicy", selector=None)
BACKUPS = Watched(GROUP, VERSION, "memorybackups", "MemoryBackup", selector=None)
CLIENTS = Watched(GROUP, VERSION, "memoryclients", "MemoryClient", selector=None)
ERASURES = Watched(GROUP, VERSION, "memoryerasures", "MemoryErasure", selector=None)


@dataclass(frozen=True)
class Packed:
    """An indexed object as compressed compact JSON, with its name to find it by."""

    name: str
    data: bytes

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> Packed:
        name = str((body.get("metadata") or {}).get("name"))
        packer = _primed_packer().copy()  # half the cost of priming a new one
        return cls(name, packer.compress(_compact(body).encode()) + packer.flush())

    def body(self) -> dict[str, Any]:
        """A fresh copy of the object."""
        return dict(json.loads(zlib.decompressobj(zdict=_primer()).decompress(self.data)))


def _compact(body: Mapping[str, Any]) -> str:
    return json.dumps(body, separators=(",", ":"))


@functools.cache
def _primed_packer() -> Any:
    return zlib.compressobj(1, zdict=_primer())


@functools.cache
def _primer() -> bytes:
    """The children of an example store, as compact JSON: what the objects of the cache share."""
    store = MemoryStore.model_validate(
        {"metadata": {"name": "example", "namespace": "example", "uid": "example"}, "spec": {}}
    )
    manifests = render_store(store, (), credentials=Credentials("key", "key", "key"))
    # zlib reads at most the last 32 KiB of a dictionary.
    return "".join(_compact(m) for m in manifests).encode()[-32768:]


def unpacked(value: Any) -> dict[str, Any]:
    """An index value as a body (tests may fill indexes with plain bodies)."""
    return value.body() if isinstance(value, Packed) else dict(value)


def trimmed(body: Body, watched: Watched) -> dict[str, Any]:
    """The object as the operator needs it: identity filled in, bookkeeping of the server dropped. What
    it changes is copied (the object and its metadata); the rest is shared with `body`."""
    result = {"apiVersion": watched.api_version, "kind": watched.kind, **body}
    meta = {k: v for k, v in (body.get("metadata") or {}).items() if k != "managedFields"}
    annotations = meta.get("annotations")
    if annotations and LAST_APPLIED in annotations:
        meta["annotations"] = {k: v for k, v in annotations.items() if k != LAST_APPLIED}
    result["metadata"] = meta
    return result


LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


# Keys of a Secret whose values are public: the CA bundle of a TLS Secret, which the operator hands
# to the clients of a store that serves a certificate from the user's Secret.
PUBLIC_KEYS = frozenset({"ca.crt"})


def secret_view(body: Body) -> dict[str, Any]:
    """A Secret of ours whole; any other as its keys with a digest of each value (and its CA bundle,
    which is public, as it is)."""
    meta = body.get("metadata") or {}
    if _is_ours(meta.get("labels") or {}):
        return trimmed(body, SECRETS)
    data = body.get("data") or {}
    digests = {key: hashlib.sha256(str(value).encode()).hexdigest() for key, value in data.items()}
    view = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": meta.get("name"), "namespace": meta.get("namespace"), "uid": meta.get("uid")},
        "digests": digests,
    }
    public = {key: value for key, value in data.items() if key in PUBLIC_KEYS}
    if public:
        view["public"] = public
    return view


def job_pod_view(body: Body) -> dict[str, Any]:
    """What a finished job's pod tells: its labels and how its containers terminated."""
    statuses = (body.get("status") or {}).get("containerStatuses") or []
    return {
        "metadata": {
            "name": body["metadata"]["name"],
            "labels": dict(body["metadata"].get("labels") or {}),
        },
        "status": {
            "containerStatuses": [
                {"name": s.get("name"), "state": {"terminated": (s.get("state") or {}).get("terminated")}}
                for s in statuses
                if (s.get("state") or {}).get("terminated")
            ]
        },
    }


def configure_watches(settings: kopf.OperatorSettings) -> None:
    """Server-side label (and field) selectors for the watches of children and job pods."""
    for watched in (*CHILDREN, JOB_PODS):
        if watched.selector:
            settings.watching.label_selectors[_selector(watched)] = watched.selector
        if watched.fields:
            settings.watching.field_selectors[_selector(watched)] = watched.fields


def register(registry: kopf.OperatorRegistry) -> None:
    """The indexes; Kopf passes each to every handler as a keyword argument named by its id.

    The index functions are coroutines though they never wait: Kopf runs a plain function in a
    thread of its executor, a handoff that costs more than the function (thousands of events in a
    burst)."""
    for watched in INDEXED:
        _register_children(registry, watched)

    @kopf.index(*_selector(SECRETS), registry=registry, id=SECRETS.index_id)
    async def index_secrets(
        namespace: str | None, name: str, labels: kopf.Labels, body: kopf.Body, **_: Any
    ) -> dict[Any, Any]:
        view = Packed.of(secret_view(body))
        owner = labels.get(_store_label()) if _is_ours(labels) else None
        # Ours are also found among their store's children.
        return {("secret", namespace, name): view, **({("store", namespace, owner): view} if owner else {})}

    @kopf.index(*_selector(JOB_PODS), registry=registry, id=JOB_PODS.index_id)
    async def index_pods(
        namespace: str | None, labels: kopf.Labels, body: kopf.Body, **_: Any
    ) -> dict[Any, Any]:
        job = labels.get("batch.kubernetes.io/job-name") or labels.get("job-name")
        return {(namespace, job): Packed.of(job_pod_view(body))} if job else {}

    for watched in (STORES, POLICIES, BACKUPS, CLIENTS, ERASURES):
        _register_by_namespace(registry, watched)


def _selector(watched: Watched) -> tuple[str, str, str]:
    return (watched.group or "", watched.version, watched.plural)


def _register_children(registry: kopf.OperatorRegistry, watched: Watched) -> None:
    entry = children_index_entry(watched)

    @kopf.index(*_selector(watched), registry=registry, id=watched.index_id)
    async def index_children(body: kopf.Body, **_: Any) -> dict[Any, Any]:
        found = entry(body)
        return dict([found]) if found else {}


def children_index_entry(watched: Watched) -> Callable[[Body], tuple[Any, Packed] | None]:
    """How a child is indexed: under its store's namespace and name, packed (none without the label)."""

    def entry(body: Body) -> tuple[Any, Packed] | None:
        meta = body.get("metadata") or {}
        owner = (meta.get("labels") or {}).get(_store_label())
        return ((meta.get("namespace"), owner), Packed.of(trimmed(body, watched))) if owner else None

    return entry


def _register_by_namespace(registry: kopf.OperatorRegistry, watched: Watched) -> None:
    @kopf.index(*_selector(watched), registry=registry, id=watched.index_id)
    async def index_objects(namespace: str | None, body: kopf.Body, **_: Any) -> dict[Any, Any]:
        return {namespace: Packed.of(trimmed(body, watched))}


def _store_label() -> str:
    return labels.STORE


def _is_ours(object_labels: Mapping[str, str]) -> bool:
    return object_labels.get(labels.MANAGED_BY_KEY) == labels.MANAGED_BY_VALUE


@dataclass(frozen=True)
class Cache:
    """Read access to the indexes, from the keyword arguments Kopf gives a handler."""

    indexes: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, kwargs: Mapping[str, Any], informed: Mapping[str, Any] | None = None) -> Cache:
        """Kopf's indexes from a handler's keyword arguments, with the operator's own (`informed`)."""
        ids = {
            w.index_id for w in (*CHILDREN, SECRETS, JOB_PODS, STORES, POLICIES, BACKUPS, CLIENTS, ERASURES)
        }
        return cls({**{key: value for key, value in kwargs.items() if key in ids}, **(informed or {})})

    def _raw(self, watched: Watched, key: Any) -> list[Any]:
        index = self.indexes.get(watched.index_id)
        if index is None or key not in index:
            return []
        return list(index[key])

    def _values(self, watched: Watched, key: Any) -> list[dict[str, Any]]:
        return [unpacked(v) for v in self._raw(watched, key)]

    def _named(self, watched: Watched, key: Any, name: str) -> dict[str, Any] | None:
        """The object of that name, parsing only it."""
        for value in self._raw(watched, key):
            found = value.name if isinstance(value, Packed) else value["metadata"]["name"]
            if found == name:
                return unpacked(value)
        return None

    def children(self, namespace: str | None, store: str) -> list[dict[str, Any]]:
        """Every labelled child of the store (and of its backups), of every kind, Secrets included."""
        key = (namespace, store)
        children = [obj for watched in CHILDREN for obj in self._values(watched, key)]
        return children + self._values(SECRETS, ("store", namespace, store))

    def store(self, namespace: str | None, name: str) -> dict[str, Any] | None:
        return self._named(STORES, namespace, name)

    def stores(self, namespace: str) -> list[dict[str, Any]]:
        return self._values(STORES, namespace)

    def every_store(self) -> list[dict[str, Any]]:
        """The stores of every watched namespace."""
        index = self.indexes.get(STORES.index_id)
        return [unpacked(v) for key in (index or {}) for v in index[key]] if index is not None else []

    def policies(self, namespace: str) -> list[dict[str, Any]]:
        return self._values(POLICIES, namespace)

    def policy(self, namespace: str | None, name: str) -> dict[str, Any] | None:
        return self._named(POLICIES, namespace, name)

    def backups(self, namespace: str) -> list[dict[str, Any]]:
        return self._values(BACKUPS, namespace)

    def backup(self, namespace: str | None, name: str) -> dict[str, Any] | None:
        return self._named(BACKUPS, namespace, name)

    def clients(self, namespace: str) -> list[dict[str, Any]]:
        return self._values(CLIENTS, namespace)

    def client(self, namespace: str | None, name: str) -> dict[str, Any] | None:
        return self._named(CLIENTS, namespace, name)

    def erasures(self, namespace: str) -> list[dict[str, Any]]:
        return self._values(ERASURES, namespace)

    def erasure(self, namespace: str | None, name: str) -> dict[str, Any] | None:
        return self._named(ERASURES, namespace, name)

    def secret(self, namespace: str | None, name: str) -> dict[str, Any] | None:
        found = self._values(SECRETS, ("secret", namespace, name))
        return found[0] if found else None

    def job_pods(self, namespace: str | None, job: str) -> list[dict[str, Any]]:
        return self._values(JOB_PODS, (namespace, job))
