"""OpenMemory's apps: the clients that add memories (an MCP client's name, a REST body's `app`).

An app is known by its name, which is also its id here (OpenMemory gives apps UUIDs). Its memories
are those whose payload `app` is that name. Whether it is active or paused is kept per user, as
OpenMemory keeps apps per owner, in the points of a second collection (`<collection>_apps`, one
point per user and app, its id derived from both, no vector). A paused app may not add memories for
that user. Requests that name no user act on every user within the key's reach that has memories
of the app or a state for it; an app counts as paused when it is paused for any of them.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from qdrant_client import QdrantClient
from qdrant_client import models as qm

from memory_operator.server import history
from memory_operator.server.store import (
    STORED_STATES,
    AppNotFound,
    MemoryService,
    Owner,
    StoredMemory,
    memory_from_payload,
    newest_first,
    scope_filter,
)

APP_POINT_NAMESPACE = uuid.UUID("b0c8c5a4-3f5e-4a7e-8d0f-4f6f2f3c9a21")
SCROLL_PAGE = 256


def app_point_id(user_id: str, app: str) -> str:
    # Scope ids never hold `/`, so `user/app` names one pair only.
    return str(uuid.uuid5(APP_POINT_NAMESPACE, f"{user_id}/{app}"))


@dataclass(frozen=True)
class AppState:
    user_id: str
    app: str
    is_active: bool


@dataclass
class AppRegistry:
    """The per-user states of apps, in their own collection."""

    client: QdrantClient
    collection: str

    def ensure(self, memories: str) -> None:
        """Create the collection when missing, replicated as the memories' collection is (an add
        reads it, so it must stay available whenever the memories are)."""
        if self.client.collection_exists(self.collection):
            return
        params = self.client.get_collection(memories).config.params
        self.client.create_collection(
            self.collection,
            vectors_config={},
            replication_factor=params.replication_factor,
            write_consistency_factor=params.write_consistency_factor,
        )

    def is_active(self, user_id: str, app: str) -> bool:
        records = self.client.retrieve(self.collection, ids=[app_point_id(user_id, app)], with_payload=True)
        return not records or (records[0].payload or {}).get("is_active") is not False

    def states(self, owner: Owner, app: str | None = None) -> list[AppState]:
        # The owner's scope conditions name payload keys the states share (`user_id`).
        query = scope_filter(owner, app=app)
        found: list[AppState] = []
        offset: qm.ExtendedPointId | None = None
        while True:
            page, offset = self.client.scroll(
                self.collection, scroll_filter=query, limit=SCROLL_PAGE, offset=offset, with_payload=True
            )
            for record in page:
                payload = record.payload or {}
                if not owner.contains(payload):
                    continue  # beyond what Qdrant's filter could say (a client's id prefixes)
                found.append(
                    AppState(
                        str(payload.get("user_id")),
                        str(payload.get("app")),
                        payload.get("is_active") is not False,
                    )
                )
            if offset is None:
                return found

    def set_active(self, users: Iterable[str], app: str, active: bool) -> None:
        now = dt.datetime.now(dt.UTC).isoformat()
        points = [
            qm.PointStruct(
                id=app_point_id(user, app),
                vector={},
                payload={"user_id": user, "app": app, "is_active": active, "updated_at": now},
            )
            for user in users
        ]
        self.client.upsert(self.collection, points=points, wait=True)


@dataclass(frozen=True)
class AppSummary:
    name: str
    is_active: bool
    total_memories_created: int
    total_memories_accessed: int
    first_accessed: str | None
    last_accessed: str | None


def _registry(service: MemoryService) -> AppRegistry:
    if service.apps is None:
        raise RuntimeError("the memory service has no app registry")
    return service.apps


def _memories(service: MemoryService, owner: Owner) -> list[StoredMemory]:
    records = service.scroll(scope_filter(owner, STORED_STATES), within=owner)
    return newest_first([memory_from_payload(r.id, r.payload or {}) for r in records])


def _summaries(memories: Sequence[StoredMemory], states: Sequence[AppState]) -> dict[str, AppSummary]:
    created: dict[str, int] = {}
    accessed: dict[str, int] = {}
    times: dict[str, list[str]] = {}
    for memory in memories:
        if memory.app:
            created[memory.app] = created.get(memory.app, 0) + 1
        for app in history.access_counts(memory.payload):
            accessed[app] = accessed.get(app, 0) + 1
        for entry in history.access_log(memory.payload):
            times.setdefault(str(entry.get("app")), []).append(str(entry.get("at")))
    paused = {s.app for s in states if not s.is_active}
    names = sorted({*created, *accessed, *(s.app for s in states)})
    return {
        name: AppSummary(
            name=name,
            is_active=name not in paused,
            total_memories_created=created.get(name, 0),
            total_memories_accessed=accessed.get(name, 0),
            first_accessed=min(times[name]) if name in times else None,
            last_accessed=max(times[name]) if name in times else None,
        )
        for name in names
    }


def list_apps(service: MemoryService, owner: Owner) -> list[AppSummary]:
    """Every app within the owner, by name."""

    def action() -> list[AppSummary]:
        return list(_summaries(_memories(service, owner), _registry(service).states(owner)).values())

    return service._call("list", action)


def app_summary(service: MemoryService, owner: Owner, name: str) -> AppSummary:
    def action() -> AppSummary:
        found = _summaries(_memories(service, owner), _registry(service).states(owner, name)).get(name)
        if found is None:
            raise AppNotFound(name)
        return found

    return service._call("list", action)


def app_memories(service: MemoryService, owner: Owner, name: str) -> list[StoredMemory]:
    """The memories the app created, newest first."""

    def action() -> list[StoredMemory]:
        memories = [m for m in _memories(service, owner) if m.app == name]
        if not memories and not _registry(service).states(owner, name):
            raise AppNotFound(name)
        return memories

    return service._call("list", action)


def app_accessed(service: MemoryService, owner: Owner, name: str) -> list[tuple[StoredMemory, int]]:
    """The memories the app searched or listed, with how often, the most accessed first."""

    def action() -> list[tuple[StoredMemory, int]]:
        counted = [(m, history.access_counts(m.payload).get(name, 0)) for m in _memories(service, owner)]
        return sorted([(m, n) for m, n in counted if n], key=lambda pair: pair[1], reverse=True)

    return service._call("list", action)


def set_app_active(service: MemoryService, owner: Owner, name: str, active: bool, user_id: str | None) -> int:
    """Pause or resume the app for one user, or (no user given) for every user within the owner
    that has memories of it or a state for it; returns how many users."""

    def action() -> int:
        registry = _registry(service)
        if user_id is not None:
            users = {user_id}
        else:
            users = {m.user_id for m in _memories(service, owner) if m.app == name and m.user_id}
            users |= {s.user_id for s in registry.states(owner, name)}
        if not users:
            raise AppNotFound(name)
        registry.set_active(sorted(users), name, active)
        return len(users)

    return service._call("state", action)


def access_entries(service: MemoryService, owner: Owner, memory_id: str) -> list[dict[str, Any]]:
    """The memory's access log, newest first."""
    return history.access_log(service.get(owner, memory_id).payload)
