"""An in-memory stand-in for the controller's `Kube`, and Kopf's event queue outside an operator."""

from __future__ import annotations

import asyncio
import copy
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import kopf
from kopf._core.engines import posting  # Kopf keeps its event queue in context variables

from memory_operator.controller.kube import Resource, resource_of
from support.kube import merge_patch, selector_matches


class FakeKube:
    """Objects by (plural, namespace, name); records every write as (verb, kind, name)."""

    def __init__(self, *objects: dict[str, Any]) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.writes: list[tuple[str, str, str]] = []
        for obj in objects:
            self._store(resource_of(obj), copy.deepcopy(obj))

    def _store(self, resource: Resource, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        meta.setdefault("uid", str(uuid.uuid4()))
        self.objects[(resource.plural, meta.get("namespace", ""), meta["name"])] = obj
        return obj

    def find(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.objects.get((plural, namespace, name))

    async def get(self, resource: Resource, namespace: str | None, name: str) -> dict[str, Any] | None:
        obj = self.find(resource.plural, namespace or "", name)
        return copy.deepcopy(obj) if obj else None

    async def list(
        self, resource: Resource, namespace: str | None, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        return [
            copy.deepcopy(o)
            for (plural, ns, _), o in sorted(self.objects.items())
            if plural == resource.plural
            and ns == (namespace or "")
            and selector_matches(label_selector, o["metadata"].get("labels") or {})
        ]

    async def apply(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        resource = resource_of(manifest)
        meta = manifest["metadata"]
        self.writes.append(("apply", manifest["kind"], meta["name"]))
        live = self.find(resource.plural, meta.get("namespace", ""), meta["name"]) or {}
        return self._store(resource, merge_patch(live, copy.deepcopy(dict(manifest))))

    async def patch(
        self,
        resource: Resource,
        namespace: str | None,
        name: str,
        patch: Any,
        *,
        subresource: str | None = None,
        content_type: str = "",
    ) -> dict[str, Any] | None:
        self.writes.append((f"patch{'/' + subresource if subresource else ''}", resource.kind, name))
        live = self.find(resource.plural, namespace or "", name)
        if live is None:
            return None
        return self._store(resource, merge_patch(live, patch))

    async def patch_status(
        self, resource: Resource, namespace: str, name: str, status: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        return await self.patch(resource, namespace, name, {"status": dict(status)}, subresource="status")

    async def delete(
        self, resource: Resource, namespace: str | None, name: str, *, propagation: str = "Background"
    ) -> bool:
        self.writes.append(("delete", resource.kind, name))
        return self.objects.pop((resource.plural, namespace or "", name), None) is not None


@contextmanager
def kopf_events() -> Iterator[asyncio.Queue[Any]]:
    """Events that `kopf.info` / `kopf.warn` post, collected in a queue instead of the API."""
    queue: asyncio.Queue[Any] = asyncio.Queue()
    tokens = (
        posting.event_queue_var.set(queue),
        posting.event_queue_loop_var.set(asyncio.get_running_loop()),
        posting.settings_var.set(kopf.OperatorSettings()),
    )
    try:
        yield queue
    finally:
        posting.settings_var.reset(tokens[2])
        posting.event_queue_loop_var.reset(tokens[1])
        posting.event_queue_var.reset(tokens[0])


def drain(queue: asyncio.Queue[Any]) -> list[tuple[str, str, str]]:
    """(type, reason, involved object's name) of every queued event."""
    events = []
    while not queue.empty():
        event = queue.get_nowait()
        events.append((event.type, event.reason, event.ref["name"]))
    return events
