"""An in-memory Kubernetes API server over HTTP, faithful where the operator relies on API semantics.

Why not kmock's `KubernetesEmulator`: it merges writes as plain dicts and would need almost every
handler replaced (resourceVersion and watch resumption, generation, status subresource separation,
server-side apply, label selectors, cluster-scoped paths, owner garbage collection, Table output for
kubectl). This module implements those on aiohttp, with one lock and one event history, and nothing else:
no admission, no schema validation (beyond requiring the CRDs' resources to exist), no RBAC.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime
import json
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml
from aiohttp import web
from jsonpath_ng.ext import parse as jsonpath

from support.kube import merge_patch, selector_matches

Obj = dict[str, Any]


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    status: bool = False
    printer_columns: tuple[dict[str, Any], ...] = ()
    short_names: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        return self.kind.lower()


BUILTINS = [
    ResourceType("", "v1", "namespaces", "Namespace", namespaced=False, status=True, short_names=("ns",)),
    ResourceType("", "v1", "secrets", "Secret"),
    ResourceType("", "v1", "configmaps", "ConfigMap", short_names=("cm",)),
    ResourceType("", "v1", "services", "Service", status=True, short_names=("svc",)),
    ResourceType("", "v1", "serviceaccounts", "ServiceAccount", short_names=("sa",)),
    ResourceType(
        "", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", status=True, short_names=("pvc",)
    ),
    ResourceType("", "v1", "pods", "Pod", status=True, short_names=("po",)),
    ResourceType("", "v1", "events", "Event", short_names=("ev",)),
    ResourceType("events.k8s.io", "v1", "events", "Event"),
    ResourceType("apps", "v1", "statefulsets", "StatefulSet", status=True, short_names=("sts",)),
    ResourceType("apps", "v1", "deployments", "Deployment", status=True, short_names=("deploy",)),
    ResourceType("batch", "v1", "jobs", "Job", status=True),
    ResourceType("batch", "v1", "cronjobs", "CronJob", status=True, short_names=("cj",)),
    ResourceType("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", short_names=("netpol",)),
    ResourceType(
        "policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", status=True, short_names=("pdb",)
    ),
    ResourceType("coordination.k8s.io", "v1", "leases", "Lease"),
    ResourceType(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        namespaced=False,
        status=True,
        short_names=("crd",),
    ),
]


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message

    def body(self) -> Obj:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }


def now() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def json_patch(target: Obj, ops: list[Obj]) -> Obj:
    """RFC 6902 JSON patch (add, remove, replace, test)."""
    doc = copy.deepcopy(target)
    for op in ops:
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        parent: Any = doc
        for part in parts[:-1]:
            parent = parent[int(part)] if isinstance(parent, list) else parent.setdefault(part, {})
        last = parts[-1] if parts else ""
        kind = op["op"]
        if kind == "test":
            current = parent[int(last)] if isinstance(parent, list) else parent.get(last)
            if current != op.get("value"):
                raise ApiError(422, "Invalid", f"test failed at {op['path']}")
        elif kind == "remove":
            if isinstance(parent, list):
                parent.pop(int(last))
            elif last in parent:
                del parent[last]
            else:
                raise ApiError(422, "Invalid", f"no path {op['path']}")
        elif kind in ("add", "replace"):
            if isinstance(parent, list):
                index = len(parent) if last == "-" else int(last)
                if kind == "add":
                    parent.insert(index, copy.deepcopy(op["value"]))
                else:
                    parent[index] = copy.deepcopy(op["value"])
            else:
                parent[last] = copy.deepcopy(op["value"])
        else:
            raise ApiError(422, "Invalid", f"unsupported op {kind}")
    return doc


def strip_paths(live: Any, previous: Any, current: Any) -> Any:
    """Remove from `live` the fields `previous` applied and `current` no longer applies (SSA pruning)."""
    if not isinstance(live, dict) or not isinstance(previous, dict):
        return live
    result = dict(live)
    current = current if isinstance(current, dict) else {}
    for key, value in previous.items():
        if key not in current:
            result.pop(key, None)
        elif key in result:
            result[key] = strip_paths(result[key], value, current[key])
    return result


def deep_merge(base: Any, applied: Any) -> Any:
    """Apply configuration over a live object: maps merge, lists and scalars are replaced."""
    if isinstance(base, dict) and isinstance(applied, dict):
        result = dict(base)
        for key, value in applied.items():
            result[key] = deep_merge(base.get(key), value)
        return result
    return copy.deepcopy(applied)


def field_selector_matches(selector: str | None, obj: Obj) -> bool:
    if not selector:
        return True
    for term in selector.split(","):
        key, _, value = term.replace("==", "=").partition("=")
        negate = key.endswith("!")
        key = key.rstrip("!")
        actual: Any = obj
        for part in key.split("."):
            actual = actual.get(part) if isinstance(actual, dict) else None
        if (str(actual or "") == value) == negate:
            return False
    return True


def age(timestamp: str | None) -> str:
    if not timestamp:
        return "<unknown>"
    then = datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    seconds = int((datetime.datetime.now(tz=datetime.UTC) - then).total_seconds())
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h"


@dataclass
class Event:
    rv: int
    type_: str
    resource: ResourceType
    obj: Obj


@dataclass
class Write:
    method: str
    path: str
    content_type: str
    changed: bool = True


# What the API server lets an update of these kinds change in `spec`; any other change is refused.
STATEFULSET_MUTABLE_SPEC = {
    "replicas",
    "ordinals",
    "template",
    "updateStrategy",
    "revisionHistoryLimit",
    "persistentVolumeClaimRetentionPolicy",
    "minReadySeconds",
}
CLAIM_MUTABLE_SPEC = {"resources", "volumeAttributesClassName"}


def _storage_bytes(quantity: str) -> float:
    from kubernetes.utils import parse_quantity

    return float(parse_quantity(quantity))


def check_immutable_spec(rt: ResourceType, old: Obj, new: Obj) -> None:
    """Refuse the spec changes a real API server refuses for StatefulSets and PersistentVolumeClaims."""
    old_spec, new_spec = old.get("spec") or {}, new.get("spec") or {}
    if rt.kind == "StatefulSet":
        changed = sorted(
            k
            for k in set(old_spec) | set(new_spec)
            if k not in STATEFULSET_MUTABLE_SPEC and old_spec.get(k) != new_spec.get(k)
        )
        if changed:
            raise ApiError(
                422,
                "Invalid",
                f'StatefulSet.apps "{old["metadata"]["name"]}" is invalid: spec: Forbidden: updates to '
                "statefulset spec for fields other than 'replicas', 'ordinals', 'template', "
                "'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and "
                f"'minReadySeconds' are forbidden (changed: {', '.join(changed)})",
            )
    elif rt.kind == "PersistentVolumeClaim":
        changed = sorted(
            k
            for k in set(old_spec) | set(new_spec)
            if k not in CLAIM_MUTABLE_SPEC and old_spec.get(k) != new_spec.get(k)
        )
        if changed:
            raise ApiError(422, "Invalid", "spec: Forbidden: spec is immutable after creation")
        before = ((old_spec.get("resources") or {}).get("requests") or {}).get("storage")
        after = ((new_spec.get("resources") or {}).get("requests") or {}).get("storage")
        if before and after and _storage_bytes(after) < _storage_bytes(before):
            raise ApiError(
                422,
                "Invalid",
                "spec.resources.requests.storage: Forbidden: field can not be less than previous value",
            )


class World:
    """The objects, their history, and the API semantics; used from the server's event loop only."""

    def __init__(self) -> None:
        self.types: dict[tuple[str, str], ResourceType] = {(t.group, t.plural): t for t in BUILTINS}
        self.objects: dict[tuple[str, str, str, str], Obj] = {}
        self.applied: dict[tuple[tuple[str, str, str, str], str], Obj] = {}
        self.history: list[Event] = []
        self.rv = 0
        self.changed = asyncio.Condition()

    # -- storage --------------------------------------------------------------------------------

    @staticmethod
    def key(rt: ResourceType, namespace: str | None, name: str) -> tuple[str, str, str, str]:
        return (rt.group, rt.plural, namespace or "" if rt.namespaced else "", name)

    def items(self, rt: ResourceType, namespace: str | None) -> Iterator[Obj]:
        for (group, plural, ns, _), obj in sorted(self.objects.items()):
            if (group, plural) == (rt.group, rt.plural) and (not namespace or ns == namespace):
                yield obj

    async def emit(self, type_: str, rt: ResourceType, obj: Obj) -> None:
        self.history.append(Event(self.rv, type_, rt, copy.deepcopy(obj)))
        async with self.changed:
            self.changed.notify_all()

    def bump(self, obj: Obj) -> None:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)

    # -- custom resources --------------------------------------------------------------------

    def register_crd(self, crd: Obj) -> None:
        spec = crd["spec"]
        for version in spec["versions"]:
            if not version.get("served", True):
                continue
            rt = ResourceType(
                spec["group"],
                version["name"],
                spec["names"]["plural"],
                spec["names"]["kind"],
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                status="status" in (version.get("subresources") or {}),
                printer_columns=tuple(version.get("additionalPrinterColumns") or ()),
                short_names=tuple(spec["names"].get("shortNames") or ()),
            )
            self.types[(rt.group, rt.plural)] = rt

    def unregister_crd(self, crd: Obj) -> None:
        self.types.pop((crd["spec"]["group"], crd["spec"]["names"]["plural"]), None)

    # -- writes ---------------------------------------------------------------------------------

    async def create(self, rt: ResourceType, namespace: str | None, body: Obj, manager: str) -> Obj:
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        if not meta.get("name"):
            raise ApiError(422, "Invalid", "metadata.name is required")
        if rt.namespaced:
            if namespace and meta.get("namespace") not in (None, namespace):
                raise ApiError(400, "BadRequest", "the namespace of the object does not match the path")
            meta["namespace"] = namespace or meta.get("namespace") or "default"
        else:
            meta.pop("namespace", None)
        key = self.key(rt, meta.get("namespace"), meta["name"])
        if key in self.objects:
            raise ApiError(409, "AlreadyExists", f'{rt.plural} "{meta["name"]}" already exists')
        obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=now(), generation=1)
        for transient in ("deletionTimestamp", "resourceVersion"):
            meta.pop(transient, None)
        meta["managedFields"] = [{"manager": manager, "operation": "Update", "apiVersion": rt.api_version}]
        if rt.status:  # status is written through its own endpoint only
            obj.pop("status", None)
        if rt.kind == "Secret" and "stringData" in obj:
            obj = self.secret_data(obj)
        self.bump(obj)
        self.objects[key] = obj
        if rt.kind == "CustomResourceDefinition":
            self.register_crd(obj)
        await self.emit("ADDED", rt, obj)
        return obj

    @staticmethod
    def secret_data(obj: Obj) -> Obj:
        import base64

        data = obj.setdefault("data", {}) or {}
        obj["data"] = data
        for key, value in obj.pop("stringData", {}).items():
            data[key] = base64.b64encode(str(value).encode()).decode()
        return obj

    def get(self, rt: ResourceType, namespace: str | None, name: str) -> Obj:
        obj = self.objects.get(self.key(rt, namespace, name))
        if obj is None:
            raise ApiError(404, "NotFound", f'{rt.plural} "{name}" not found')
        return obj

    async def update(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        new: Obj,
        subresource: str | None,
        manager: str,
        check_rv: str | None = None,
    ) -> tuple[Obj, bool]:
        """Store `new` as the object, keeping what the endpoint may not change; returns (obj, changed)."""
        key = self.key(rt, namespace, name)
        old = self.get(rt, namespace, name)
        if check_rv and check_rv != old["metadata"].get("resourceVersion"):
            raise ApiError(
                409,
                "Conflict",
                f'the object "{name}" has been modified; please apply your changes '
                "to the latest version and try again",
            )
        if subresource == "status":
            result = copy.deepcopy(old)
            if "status" in new:
                result["status"] = copy.deepcopy(new["status"])
            else:
                result.pop("status", None)
        else:
            result = copy.deepcopy(new)
            result["apiVersion"], result["kind"] = rt.api_version, rt.kind
            if rt.status:
                if "status" in old:
                    result["status"] = copy.deepcopy(old["status"])
                else:
                    result.pop("status", None)
            meta = result.setdefault("metadata", {})
            for fixed in ("uid", "creationTimestamp", "name", "namespace", "generation"):
                if fixed in old["metadata"]:
                    meta[fixed] = old["metadata"][fixed]
                else:
                    meta.pop(fixed, None)
            if old["metadata"].get("deletionTimestamp"):
                meta["deletionTimestamp"] = old["metadata"]["deletionTimestamp"]
            elif "deletionTimestamp" in meta:
                del meta["deletionTimestamp"]
            if rt.kind == "Secret" and "stringData" in result:
                result = self.secret_data(result)
        result["metadata"]["resourceVersion"] = old["metadata"].get("resourceVersion")
        result["metadata"]["managedFields"] = self.managed_fields(old, manager, subresource)

        def essence(obj: Obj) -> Obj:
            return {k: v for k, v in obj.items() if k not in ("metadata", "status")}

        if subresource is None:
            check_immutable_spec(rt, old, result)

        if essence(result) != essence(old):
            result["metadata"]["generation"] = int(old["metadata"].get("generation") or 1) + 1
        if result == old:
            return old, False
        self.bump(result)
        self.objects[key] = result
        if result["metadata"].get("deletionTimestamp") and not result["metadata"].get("finalizers"):
            await self.remove(rt, key)
            return result, True
        if rt.kind == "CustomResourceDefinition":
            self.register_crd(result)
        await self.emit("MODIFIED", rt, result)
        return result, True

    @staticmethod
    def managed_fields(old: Obj, manager: str, subresource: str | None) -> list[Obj]:
        entries = [dict(e) for e in old["metadata"].get("managedFields") or []]
        if not any(e.get("manager") == manager and e.get("subresource") == subresource for e in entries):
            entry = {"manager": manager, "operation": "Update", "apiVersion": old.get("apiVersion")}
            if subresource:
                entry["subresource"] = subresource
            entries.append(entry)
        return entries

    async def apply(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        config: Obj,
        manager: str,
        subresource: str | None,
    ) -> tuple[Obj, bool]:
        """Server-side apply: create, or merge the config and drop what the manager stopped applying."""
        key = self.key(rt, namespace, name)
        config = copy.deepcopy(config)
        config.setdefault("metadata", {})["name"] = name
        if key not in self.objects:
            if subresource:
                raise ApiError(404, "NotFound", f'{rt.plural} "{name}" not found')
            obj = await self.create(rt, namespace, config, manager)
            obj["metadata"]["managedFields"][0]["operation"] = "Apply"
            self.applied[(key, manager)] = config
            return obj, True
        live = self.get(rt, namespace, name)
        previous = self.applied.get((key, manager), {})
        merged = deep_merge(strip_paths(live, previous, config), config)
        if rt.kind == "Secret" and "stringData" in merged:
            merged = self.secret_data(merged)
            merged_data = {**live.get("data", {}), **merged.get("data", {})}
            merged["data"] = {
                k: v
                for k, v in merged_data.items()
                if k in merged["data"] or k not in (previous.get("data") or {})
            }
        self.applied[(key, manager)] = config
        return await self.update(rt, namespace, name, merged, subresource, manager)

    async def delete(self, rt: ResourceType, namespace: str | None, name: str, propagation: str) -> Obj:
        key = self.key(rt, namespace, name)
        obj = self.get(rt, namespace, name)
        if obj["metadata"].get("finalizers"):
            if not obj["metadata"].get("deletionTimestamp"):
                obj = copy.deepcopy(obj)
                obj["metadata"]["deletionTimestamp"] = now()
                obj["metadata"]["deletionGracePeriodSeconds"] = 0
                self.bump(obj)
                self.objects[key] = obj
                await self.emit("MODIFIED", rt, obj)
            return obj
        await self.remove(rt, key, orphan=propagation == "Orphan")
        return obj

    async def remove(self, rt: ResourceType, key: tuple[str, str, str, str], orphan: bool = False) -> None:
        obj = self.objects.pop(key)
        for applied_key in [k for k in self.applied if k[0] == key]:
            del self.applied[applied_key]
        self.rv += 1
        gone = copy.deepcopy(obj)
        gone["metadata"]["resourceVersion"] = str(self.rv)
        if rt.kind == "CustomResourceDefinition":
            self.unregister_crd(obj)
        await self.emit("DELETED", rt, gone)
        await self.collect(obj["metadata"]["uid"], orphan)

    async def collect(self, owner_uid: str, orphan: bool) -> None:
        """Garbage collection: dependents whose owners are all gone are deleted (or orphaned)."""
        live_uids = {o["metadata"]["uid"] for o in self.objects.values()}
        for key, obj in list(self.objects.items()):
            refs = obj["metadata"].get("ownerReferences") or []
            if not any(r.get("uid") == owner_uid for r in refs):
                continue
            rt = self.types.get((key[0], key[1]))
            if rt is None:
                continue
            if orphan:
                kept = [r for r in refs if r.get("uid") != owner_uid]
                await self.update(
                    rt,
                    key[2],
                    key[3],
                    merge_patch(obj, {"metadata": {"ownerReferences": kept}}),
                    None,
                    "garbage-collector",
                )
            elif not any(r.get("uid") in live_uids for r in refs) and key in self.objects:
                await self.delete(rt, key[2] or None, key[3], "Background")


@dataclass
class Hold:
    """Write requests that wait, unanswered, until released: to stop a client in the middle of its work."""

    method: str
    path_contains: str
    arrived: threading.Event
    released: asyncio.Event

    def matches(self, method: str, path: str) -> bool:
        return method == self.method and self.path_contains in path


class Emulator:
    """Serves a World on 127.0.0.1 from a thread of its own; counts write requests."""

    def __init__(self) -> None:
        self.world: World | None = None
        self.writes: list[Write] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        # Open watch streams: aiohttp does not end a handler whose client left, so stop() ends them.
        self._watches: set[asyncio.Task[Any]] = set()
        self._holds: list[Hold] = []
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Emulator:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        ready = threading.Event()

        def serve() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            self.world = World()
            app = web.Application(client_max_size=64 * 1024 * 1024)
            app.router.add_route("*", "/{tail:.*}", self._handle)
            self._runner = web.AppRunner(app, handle_signals=False)
            self._loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", self.port)
            self._loop.run_until_complete(site.start())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, name="kube-emulator", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the emulator did not start")
        return self

    def stop(self) -> None:
        if self._loop is None or self._runner is None:
            return
        future = asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
        try:
            future.result(10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            if self._thread:
                self._thread.join(10)

    async def _shutdown(self) -> None:
        for task in list(self._watches):
            task.cancel()
        await asyncio.gather(*self._watches, return_exceptions=True)
        assert self._runner is not None
        await self._runner.cleanup()

    def hold(self, method: str, path_contains: str) -> Hold:
        """Hold matching requests until `release(hold)`; `hold.arrived` is set when one comes."""
        hold = Hold(method, path_contains, threading.Event(), asyncio.Event())
        with self._lock:
            self._holds.append(hold)
        return hold

    def release(self, hold: Hold) -> None:
        with self._lock:
            self._holds.remove(hold)
        assert self._loop is not None
        self._loop.call_soon_threadsafe(hold.released.set)

    async def _wait_if_held(self, request: web.Request) -> None:
        with self._lock:
            holds = [h for h in self._holds if h.matches(request.method, request.path)]
        for hold in holds:
            hold.arrived.set()
            await hold.released.wait()

    def write_count(self, path_contains: str = "") -> int:
        with self._lock:
            return sum(1 for w in self.writes if path_contains in w.path)

    def writes_since(self, index: int) -> list[Write]:
        with self._lock:
            return list(self.writes[index:])

    def kubeconfig(self) -> str:
        return yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "emulator",
                "clusters": [{"name": "emulator", "cluster": {"server": self.url}}],
                "users": [{"name": "emulator", "user": {"token": "emulator"}}],
                "contexts": [
                    {
                        "name": "emulator",
                        "context": {"cluster": "emulator", "user": "emulator", "namespace": "default"},
                    }
                ],
            }
        )

    # -- HTTP -----------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        try:
            await self._wait_if_held(request)
            return await self._route(request)
        except ApiError as error:
            return web.json_response(error.body(), status=error.code)
        except (ValueError, KeyError, TypeError, yaml.YAMLError) as error:
            failure = ApiError(400, "BadRequest", f"{type(error).__name__}: {error}")
            return web.json_response(failure.body(), status=400)

    def _record(self, request: web.Request, changed: bool) -> None:
        with self._lock:
            self.writes.append(Write(request.method, request.path, request.content_type, changed))

    async def _route(self, request: web.Request) -> web.StreamResponse:
        assert self.world is not None
        world = self.world
        parts = [p for p in request.path.split("/") if p]
        if request.path in ("/version", "/version/"):
            return web.json_response(
                {"major": "1", "minor": "34", "gitVersion": "v1.34.0-emulator", "platform": "linux/amd64"}
            )
        if parts == ["api"]:
            return web.json_response(
                {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
            )
        if parts == ["apis"]:
            return web.json_response(self._groups())
        if parts[:2] == ["openapi", "v3"]:
            return web.json_response(self._openapi(parts[2:]))
        if parts and parts[0] in ("openapi", "healthz", "livez", "readyz"):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if len(parts) == 2 and parts[0] == "apis":
            for group in self._groups()["groups"]:
                if group["name"] == parts[1]:
                    return web.json_response({"kind": "APIGroup", "apiVersion": "v1", **group})
            raise ApiError(404, "NotFound", "no such group")
        if parts[:2] == ["api", "v1"]:
            group, version, rest = "", "v1", parts[2:]
        elif parts and parts[0] == "apis" and len(parts) >= 3:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if not rest:
            return web.json_response(self._resource_list(group, version))
        namespace: str | None = None
        if rest[0] == "namespaces" and len(rest) >= 3 and (group, rest[2]) in world.types:
            namespace, rest = rest[1], rest[2:]
        rt = world.types.get((group, rest[0]))
        if rt is None or rt.version != version:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        name = rest[1] if len(rest) > 1 else None
        subresource = rest[2] if len(rest) > 2 else None
        manager = (
            request.query.get("fieldManager") or request.headers.get("User-Agent", "unknown").split("/")[0]
        )
        method = request.method
        if method == "GET":
            if name is None:
                if request.query.get("watch") in ("1", "true"):
                    return await self._watch(request, rt, namespace)
                return self._respond(request, rt, self._list(request, rt, namespace), listing=True)
            return self._respond(request, rt, world.get(rt, namespace, name), listing=False)
        body = await self._body(request)
        if method == "POST" and name is None:
            obj = await world.create(rt, namespace, body, manager)
            self._record(request, True)
            return web.json_response(obj, status=201)
        if name is None:
            raise ApiError(405, "MethodNotAllowed", "collection writes are not supported")
        if method == "PUT":
            check = (body.get("metadata") or {}).get("resourceVersion")
            obj, changed = await world.update(rt, namespace, name, body, subresource, manager, check)
        elif method == "PATCH":
            content_type = request.content_type
            if content_type == "application/apply-patch+yaml":
                obj, changed = await world.apply(rt, namespace, name, body, manager, subresource)
            else:
                live = world.get(rt, namespace, name)
                if content_type == "application/json-patch+json":
                    patched = json_patch(live, body)
                else:  # merge patch; strategic merge treated as merge (lists replaced)
                    patched = merge_patch(live, body)
                check = (
                    (body.get("metadata") or {}).get("resourceVersion") if isinstance(body, dict) else None
                )
                obj, changed = await world.update(rt, namespace, name, patched, subresource, manager, check)
        elif method == "DELETE":
            propagation = (body or {}).get("propagationPolicy") or request.query.get("propagationPolicy", "")
            obj, changed = await world.delete(rt, namespace, name, propagation), True
        else:
            raise ApiError(405, "MethodNotAllowed", f"{method} is not supported")
        self._record(request, changed)
        return web.json_response(obj)

    @staticmethod
    async def _body(request: web.Request) -> Any:
        raw = await request.read()
        if not raw:
            return {}
        if request.content_type == "application/apply-patch+yaml":
            return yaml.safe_load(raw) or {}
        return json.loads(raw)

    def _list(self, request: web.Request, rt: ResourceType, namespace: str | None) -> list[Obj]:
        assert self.world is not None
        labels = request.query.get("labelSelector")
        fields = request.query.get("fieldSelector")
        return [
            o
            for o in self.world.items(rt, namespace)
            if selector_matches(labels, o["metadata"].get("labels") or {})
            and field_selector_matches(fields, o)
        ]

    def _respond(self, request: web.Request, rt: ResourceType, data: Any, listing: bool) -> web.Response:
        assert self.world is not None
        if "as=Table" in request.headers.get("Accept", ""):
            return web.json_response(self._table(rt, data if listing else [data]))
        if listing:
            return web.json_response(
                {
                    "kind": f"{rt.kind}List",
                    "apiVersion": rt.api_version,
                    "metadata": {"resourceVersion": str(self.world.rv)},
                    "items": data,
                }
            )
        return web.json_response(data)

    def _table(self, rt: ResourceType, objs: list[Obj]) -> Obj:
        columns = [{"name": "Name", "type": "string", "format": "name", "description": "Name", "priority": 0}]
        extra = list(rt.printer_columns) or [
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
        ]
        for column in extra:
            columns.append(
                {
                    "name": column["name"],
                    "type": "string" if column["type"] == "date" else column["type"],
                    "format": "",
                    "description": column.get("description", ""),
                    "priority": column.get("priority", 0),
                }
            )
        rows = []
        for obj in objs:
            cells: list[Any] = [obj["metadata"]["name"]]
            for column in extra:
                found = [m.value for m in jsonpath("$" + column["jsonPath"]).find(obj)]
                value = found[0] if found else None
                if column["type"] == "date":
                    value = age(value)
                cells.append(value)
            rows.append(
                {
                    "cells": cells,
                    "object": {
                        "kind": "PartialObjectMetadata",
                        "apiVersion": "meta.k8s.io/v1",
                        "metadata": obj["metadata"],
                    },
                }
            )
        return {
            "kind": "Table",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": {"resourceVersion": str(self.world.rv if self.world else 0)},
            "columnDefinitions": columns,
            "rows": rows,
        }

    async def _watch(
        self, request: web.Request, rt: ResourceType, namespace: str | None
    ) -> web.StreamResponse:
        assert self.world is not None
        world = self.world
        labels = request.query.get("labelSelector")
        fields = request.query.get("fieldSelector")
        timeout = float(request.query.get("timeoutSeconds") or 1800)
        since = request.query.get("resourceVersion") or ""
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)

        def wanted(event: Event) -> bool:
            meta = event.obj["metadata"]
            return (
                (event.resource.group, event.resource.plural) == (rt.group, rt.plural)
                and (not namespace or meta.get("namespace") == namespace)
                and selector_matches(labels, meta.get("labels") or {})
                and field_selector_matches(fields, event.obj)
            )

        if since in ("", "0"):
            for obj in self._list(request, rt, namespace):
                await response.write(json.dumps({"type": "ADDED", "object": obj}).encode() + b"\n")
            position = len(world.history)
        else:
            position = next((i for i, e in enumerate(world.history) if e.rv > int(since)), len(world.history))
        deadline = asyncio.get_running_loop().time() + timeout
        task = asyncio.current_task()
        assert task is not None
        self._watches.add(task)
        try:
            while request.transport is not None and not request.transport.is_closing():
                while position < len(world.history):
                    event = world.history[position]
                    position += 1
                    if wanted(event):
                        line = json.dumps({"type": event.type_, "object": event.obj}).encode() + b"\n"
                        await response.write(line)
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    break
                async with world.changed:
                    # An event may have landed while this waited for the lock: send it first.
                    if position >= len(world.history):
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(world.changed.wait(), timeout=min(remaining, 5))
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self._watches.discard(task)
        return response

    def _openapi(self, path: list[str]) -> Obj:
        """OpenAPI v3, as kubectl reads it for client-side validation: every kind accepts any fields."""
        assert self.world is not None
        versions = {(rt.group, rt.version) for rt in self.world.types.values()}

        def gv_path(group: str, version: str) -> str:
            return f"apis/{group}/{version}" if group else f"api/{version}"

        if not path:
            return {
                "paths": {
                    gv_path(g, v): {"serverRelativeURL": f"/openapi/v3/{gv_path(g, v)}?hash=1"}
                    for g, v in sorted(versions)
                }
            }
        wanted = "/".join(path)
        schemas = {}
        paths: dict[str, Obj] = {}
        for rt in self.world.types.values():
            if gv_path(rt.group, rt.version) == wanted:
                # A PATCH that takes `fieldValidation` tells kubectl the server validates fields itself.
                scope = "namespaces/{namespace}/" if rt.namespaced else ""
                paths[f"/{wanted}/{scope}{rt.plural}/{{name}}"] = {
                    "patch": {
                        "x-kubernetes-group-version-kind": {
                            "group": rt.group,
                            "version": rt.version,
                            "kind": rt.kind,
                        },
                        "parameters": [
                            {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}}
                        ],
                        "responses": {"200": {"description": "OK"}},
                    }
                }
                schemas[f"{rt.group or 'core'}.{rt.version}.{rt.kind}"] = {
                    "type": "object",
                    "x-kubernetes-preserve-unknown-fields": True,
                    "x-kubernetes-group-version-kind": [
                        {"group": rt.group, "version": rt.version, "kind": rt.kind}
                    ],
                }
        if not schemas:
            raise ApiError(404, "NotFound", "no such group version")
        return {
            "openapi": "3.0.0",
            "info": {"title": "Kubernetes", "version": "v1.34.0"},
            "paths": paths,
            "components": {"schemas": schemas},
        }

    def _groups(self) -> Obj:
        assert self.world is not None
        versions: dict[str, list[str]] = {}
        for rt in self.world.types.values():
            if rt.group and rt.version not in versions.setdefault(rt.group, []):
                versions[rt.group].append(rt.version)
        groups = []
        for group, vs in sorted(versions.items()):
            entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in vs]
            groups.append({"name": group, "versions": entries, "preferredVersion": entries[0]})
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}

    def _resource_list(self, group: str, version: str) -> Obj:
        assert self.world is not None
        resources: list[Obj] = []
        verbs = ["create", "delete", "get", "list", "patch", "update", "watch"]
        for rt in self.world.types.values():
            if (rt.group, rt.version) != (group, version):
                continue
            resources.append(
                {
                    "name": rt.plural,
                    "singularName": rt.singular,
                    "namespaced": rt.namespaced,
                    "kind": rt.kind,
                    "verbs": verbs,
                    "shortNames": list(rt.short_names),
                }
            )
            if rt.status:
                resources.append(
                    {
                        "name": f"{rt.plural}/status",
                        "singularName": "",
                        "namespaced": rt.namespaced,
                        "kind": rt.kind,
                        "verbs": ["get", "patch", "update"],
                    }
                )
        if not resources:
            raise ApiError(404, "NotFound", "no such group version")
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version,
            "resources": resources,
        }
