"""A small async client for the few API calls the controller makes, on the official `kubernetes` client.

Every write of a child is a server-side apply with one field manager and `force`, so writes are
idempotent and take ownership of the fields the operator renders. Blocking calls run in a pool of
threads of the client's own, as many as its connection pool holds.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import json
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, cast

import kopf
from kubernetes.client import ApiClient, Configuration
from kubernetes.client.exceptions import ApiException

from memory_operator.api.common import API_VERSION
from memory_operator.controller import metrics

FIELD_MANAGER = "memory-operator"
# API calls in flight at once. Each waits on the API server, not on this process: asyncio's default pool
# (the CPU count plus four threads) would let a burst of new stores queue behind a handful of them.
API_CONCURRENCY = 32

JSON = "application/json"
APPLY = "application/apply-patch+yaml"
# An apply's body goes as JSON text (YAML's subset) encoded once: the client encodes again any body of a
# JSON type or of exactly APPLY, after walking it to copy it; a body of bytes of any other type goes as
# it is, and the API server reads the patch type without its parameters.
APPLY_TEXT = f"{APPLY}; charset=utf-8"
# The answers of calls keyed by HTTP status (an int); any other status deserializes to nothing.
OBJECT_ANSWERS = {200: "object", 201: "object", 202: "object"}
MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"


@dataclass(frozen=True)
class Resource:
    """Where a kind lives in the API."""

    api_version: str
    kind: str
    plural: str
    namespaced: bool = True

    def path(self, namespace: str | None, name: str | None = None, subresource: str | None = None) -> str:
        base = f"/api/{self.api_version}" if "/" not in self.api_version else f"/apis/{self.api_version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name:
            base += f"/{name}"
        if subresource:
            base += f"/{subresource}"
        return base


def _resources(*items: Resource) -> dict[tuple[str, str], Resource]:
    return {(r.api_version, r.kind): r for r in items}


RESOURCES = _resources(
    Resource("v1", "Secret", "secrets"),
    Resource("v1", "ConfigMap", "configmaps"),
    Resource("v1", "Service", "services"),
    Resource("v1", "ServiceAccount", "serviceaccounts"),
    Resource("v1", "PersistentVolumeClaim", "persistentvolumeclaims"),
    Resource("v1", "Pod", "pods"),
    Resource("apps/v1", "StatefulSet", "statefulsets"),
    Resource("apps/v1", "Deployment", "deployments"),
    Resource("batch/v1", "CronJob", "cronjobs"),
    Resource("batch/v1", "Job", "jobs"),
    Resource("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies"),
    Resource("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets"),
    Resource(API_VERSION, "MemoryStore", "memorystores"),
    Resource(API_VERSION, "MemoryPolicy", "memorypolicies"),
    Resource(API_VERSION, "MemoryBackup", "memorybackups"),
    Resource(API_VERSION, "MemoryClient", "memoryclients"),
    Resource(API_VERSION, "MemoryErasure", "memoryerasures"),
    Resource("cert-manager.io/v1", "Certificate", "certificates"),
    Resource("kopf.dev/v1", "ClusterKopfPeering", "clusterkopfpeerings", namespaced=False),
    Resource("kopf.dev/v1", "KopfPeering", "kopfpeerings"),
)

SECRET = RESOURCES[("v1", "Secret")]
PVC = RESOURCES[("v1", "PersistentVolumeClaim")]
POD = RESOURCES[("v1", "Pod")]
STATEFULSET = RESOURCES[("apps/v1", "StatefulSet")]
DEPLOYMENT = RESOURCES[("apps/v1", "Deployment")]
JOB = RESOURCES[("batch/v1", "Job")]
STORE = RESOURCES[(API_VERSION, "MemoryStore")]
POLICY = RESOURCES[(API_VERSION, "MemoryPolicy")]
BACKUP = RESOURCES[(API_VERSION, "MemoryBackup")]
CLIENT = RESOURCES[(API_VERSION, "MemoryClient")]
ERASURE = RESOURCES[(API_VERSION, "MemoryErasure")]
CLUSTER_PEERING = RESOURCES[("kopf.dev/v1", "ClusterKopfPeering")]
PEERING = RESOURCES[("kopf.dev/v1", "KopfPeering")]


def resource_of(manifest: Mapping[str, Any]) -> Resource:
    """The resource of a manifest; only kinds the operator manages are known."""
    key = (manifest["apiVersion"], manifest["kind"])
    if key not in RESOURCES:
        raise KeyError(f"the operator does not manage {key[1]} ({key[0]})")
    return RESOURCES[key]


def api_client() -> ApiClient:
    """A client of the loaded configuration that keeps a connection for every call in flight (more would
    be opened and dropped, each with a TLS handshake)."""
    configuration = Configuration.get_default_copy()
    configuration.connection_pool_maxsize = API_CONCURRENCY
    return ApiClient(configuration)


class Kube:
    """Async wrapper over `ApiClient.call_api`; 404 becomes `None` (or `False` for deletes)."""

    def __init__(self, api: ApiClient, timeout_seconds: float = 30.0) -> None:
        self._api = api
        self._timeout = timeout_seconds
        self._threads = ThreadPoolExecutor(API_CONCURRENCY, thread_name_prefix="kube-api")
        # Calls wait here, not in the pool's queue: a burst of new stores makes thousands of them at
        # once, and a queued call holds its request (a copy of the object) until a thread is free.
        self._slots = asyncio.Semaphore(API_CONCURRENCY)

    def _call(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = JSON,
        answer: bool = True,
    ) -> Any:
        return self._api.call_api(
            path,
            method,
            query_params=list((query or {}).items()),
            header_params={"Content-Type": content_type, "Accept": JSON},
            body=body,
            # Without an answer, the response is not parsed.
            response_types_map=OBJECT_ANSWERS if answer else {},
            auth_settings=["BearerToken"],
            _return_http_data_only=True,
            _request_timeout=self._timeout,
        )

    async def _run(
        self, method: str, path: str, *, body: Any = None, content_type: str = JSON, **kwargs: Any
    ) -> Any:
        """The call in a thread once one is free (in the order of the calls); its body sent as JSON
        (tuples, mappings of any kind), encoded only then."""
        async with self._slots:
            encoded, content_type = _encoded(body, content_type)
            call = functools.partial(
                contextvars.copy_context().run,
                self._call,
                method,
                path,
                body=encoded,
                content_type=content_type,
                **kwargs,
            )
            return await asyncio.get_running_loop().run_in_executor(self._threads, call)

    async def serves(self, api_version: str, plural: str) -> bool:
        """Whether the API server serves `plural` in `api_version` (discovery: no RBAC needed)."""
        try:
            found = await self._run("GET", f"/apis/{api_version}")
        except ApiException as error:
            if error.status in (403, 404, 503):
                return False
            raise
        return any(r.get("name") == plural for r in (found or {}).get("resources") or [])

    async def get(self, resource: Resource, namespace: str | None, name: str) -> dict[str, Any] | None:
        try:
            return dict(await self._run("GET", resource.path(namespace, name)))
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    async def apply(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Server-side apply with the operator's field manager, forcing ownership of conflicting fields."""
        return dict(await self._apply(manifest, answer=True))

    async def apply_unanswered(self, manifest: Mapping[str, Any]) -> None:
        """`apply`, the object the server answers with left unparsed (a StatefulSet's is some 15 KB)."""
        await self._apply(manifest, answer=False)

    async def _apply(self, manifest: Mapping[str, Any], *, answer: bool) -> Any:
        resource = resource_of(manifest)
        meta = manifest["metadata"]
        metrics.API_WRITES.labels(kind=manifest["kind"]).inc()
        return await self._run(
            "PATCH",
            resource.path(meta.get("namespace"), meta["name"]),
            query={"fieldManager": FIELD_MANAGER, "force": "true"},
            body=manifest,
            content_type=APPLY,
            answer=answer,
        )

    async def patch(
        self,
        resource: Resource,
        namespace: str | None,
        name: str,
        patch: Any,
        *,
        subresource: str | None = None,
        content_type: str = MERGE,
    ) -> dict[str, Any] | None:
        """A merge patch (or a JSON patch); `None` when the object is gone."""
        metrics.API_WRITES.labels(kind=resource.kind).inc()
        try:
            return dict(
                await self._run(
                    "PATCH",
                    resource.path(namespace, name, subresource),
                    query={"fieldManager": FIELD_MANAGER},
                    body=patch,
                    content_type=content_type,
                )
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    async def apply_status(
        self,
        resource: Resource,
        namespace: str,
        name: str,
        status: Mapping[str, Any],
        manager: str = FIELD_MANAGER,
    ) -> dict[str, Any] | None:
        """Server-side apply of the fields of `status` that `manager` owns; `None` when the object is gone.

        Each writer of a status has a field manager of its own: it owns what it applies, drops what it
        no longer applies, and never takes a field of another writer."""
        metrics.API_WRITES.labels(kind=resource.kind).inc()
        body = {
            "apiVersion": resource.api_version,
            "kind": resource.kind,
            "metadata": {"name": name, "namespace": namespace},
            "status": status,
        }
        try:
            return dict(
                await self._run(
                    "PATCH",
                    resource.path(namespace, name, "status"),
                    query={"fieldManager": manager, "force": "true"},
                    body=body,
                    content_type=APPLY,
                )
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    async def create(self, manifest: Mapping[str, Any]) -> dict[str, Any] | None:
        """Create an object; `None` when it already exists."""
        resource = resource_of(manifest)
        metrics.API_WRITES.labels(kind=manifest["kind"]).inc()
        try:
            return dict(
                await self._run(
                    "POST",
                    resource.path(manifest["metadata"].get("namespace")),
                    query={"fieldManager": FIELD_MANAGER},
                    body=manifest,
                )
            )
        except ApiException as error:
            if error.status == 409:
                return None
            raise

    async def delete(
        self, resource: Resource, namespace: str | None, name: str, *, propagation: str = "Background"
    ) -> bool:
        """Delete an object and (`Background`) its dependents, or (`Orphan`) not them.

        `False` when it was already gone.
        """
        metrics.API_WRITES.labels(kind=resource.kind).inc()
        try:
            await self._run(
                "DELETE",
                resource.path(namespace, name),
                body={"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation},
            )
        except ApiException as error:
            if error.status == 404:
                return False
            raise
        return True


def _encoded(body: Any, content_type: str) -> tuple[Any, str]:
    """The body as the client is to get it, and its content type: an apply's as JSON text, any other
    as plain JSON values (which the client encodes)."""
    if body is None:
        return None, content_type
    text = json.dumps(body, default=_as_dict, separators=(",", ":"))
    if content_type == APPLY:
        return text.encode(), APPLY_TEXT
    return json.loads(text), content_type


def _as_dict(value: Any) -> dict[str, Any]:
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def namespace_terminating(error: BaseException) -> bool:
    """The API server refused new content because the namespace is being deleted: every object in it,
    the store included, is on its way out, so there is nothing left to converge."""
    if not isinstance(error, ApiException) or error.status != 403 or not error.body:
        return False
    try:
        causes = (json.loads(error.body).get("details") or {}).get("causes") or []
    except (ValueError, AttributeError):
        return False
    return any(cause.get("reason") == "NamespaceTerminating" for cause in causes)


def selector(labels: Mapping[str, str]) -> str:
    """An equality-based label selector string."""
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items()))


def event_target(obj: Mapping[str, Any]) -> kopf.Body:
    """An object as Kopf's event helpers (`kopf.warn`, `kopf.info`) take it."""
    return kopf.Body(cast(kopf.RawBody, dict(obj)))
