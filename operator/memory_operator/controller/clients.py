"""A MemoryClient's reconcile, decided: its Secret (the key, generated once and again only when the
Secret is deleted), its status and its Events. Pure: the handlers read the cache and write.

`Ready` is True once the store's clients Secret (what its server pods read) lists the client with its
current key's hash; it is False, with a reason, while the scopes are invalid (`InvalidScopes`), the
store is missing (`StoreNotFound`) or runs the upstream OpenMemory image (`StoreUnsupported`), or the
store has not yet taken the client in (`Pending`). The key is never in the status, an Event or a log.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from memory_operator.api.client import MemoryClient, MemoryClientStatus
from memory_operator.api.common import Condition
from memory_operator.api.store import MemoryStore, ServerFlavor
from memory_operator.controller import grants, plan, status
from memory_operator.controller.decide import Event
from memory_operator.render import clients as render_clients
from memory_operator.render import names

Body = Mapping[str, Any]
KEY_BYTES = 32
FIELD_MANAGER = "memory-operator-client"


def generate_key() -> str:
    return secrets.token_urlsafe(KEY_BYTES)


@dataclass
class ClientDecision:
    secret: dict[str, Any] | None = field(default=None, repr=False)
    """The client's Secret to apply (owned by the MemoryClient), when it differs from the live one."""
    status: dict[str, Any] | None = None
    """The status (wire form) when it changed; never the key."""
    events: list[Event] = field(default_factory=list)


def previous_status(body: Body) -> MemoryClientStatus:
    try:
        return MemoryClientStatus.model_validate(body.get("status") or {})
    except ValidationError:
        return MemoryClientStatus()


def problem_of(client: MemoryClient, store: Body | None) -> tuple[str, str] | None:
    """(reason, message) of what keeps the client from being admitted by its store, if anything."""
    problems = client.spec.scopes.problems()
    if problems:
        return "InvalidScopes", "spec.scopes is invalid: " + "; ".join(problems)
    where = f"MemoryStore {client.spec.store} in namespace {client.metadata.namespace}"
    if store is None or (store.get("metadata") or {}).get("deletionTimestamp"):
        return "StoreNotFound", f"{where} does not exist; create it or correct spec.store"
    flavor = ((store.get("spec") or {}).get("server") or {}).get("flavor")
    if flavor == ServerFlavor.openmemory.value:
        return (
            "StoreUnsupported",
            f"{where} runs the upstream OpenMemory server (server.flavor openmemory), which has no "
            "per-client keys; use the builtin flavor",
        )
    return None


def served_store(store: Body | None) -> MemoryStore | None:
    """The client's store as its spec says (whether it serves https); None when missing or invalid."""
    if store is None:
        return None
    try:
        return MemoryStore.model_validate(store)
    except ValidationError:
        return None


def readiness(client: MemoryClient, store: Body | None, key: str, clients_secret: Body | None) -> Condition:
    generation = client.metadata.generation
    problem = problem_of(client, store)
    if problem is not None:
        return status.condition("Ready", False, problem[0], problem[1], generation)
    if (client.metadata.name, grants.key_sha256(key)) not in grants.admitted(clients_secret):
        message = f"waiting for MemoryStore {client.spec.store} to give its servers this client's key"
        return status.condition("Ready", False, "Pending", message, generation)
    empty = client.spec.scopes.empty_fields()
    reach = f"; it reaches no memory while {', '.join(empty)} allow nothing" if empty else ""
    message = f"the servers of MemoryStore {client.spec.store} admit this client{reach}"
    return status.condition("Ready", True, "Admitted", message, generation)


def decide_client(
    body: Body,
    *,
    store: Body | None,
    secret: Body | None,
    clients_secret: Body | None,
    fresh_key: str,
    now: str,
    ca_bundle: str | None = None,
) -> ClientDecision:
    """One reconcile of a MemoryClient. `secret` is its live Secret, `clients_secret` its store's,
    `ca_bundle` the CA bundle of the store's certificate (for a store with TLS)."""
    if body["metadata"].get("deletionTimestamp"):
        return ClientDecision()
    previous = previous_status(body)
    try:
        client = MemoryClient.model_validate(body)
    except ValidationError as error:
        ready = status.condition(
            "Ready", False, "InvalidSpec", f"the spec is invalid: {error.errors()[0]['msg']}", None
        )
        return _reported(body, previous, ready, None, now)
    key = grants.secret_value(secret, render_clients.KEY) or fresh_key
    rendered = render_clients.client_secret(client, key, served_store(store), ca_bundle)
    desired = plan.stamped(plan.owned(rendered, body))
    ready = readiness(client, store, key, clients_secret)
    decision = _reported(body, previous, ready, names.client_secret_name(client.metadata.name), now)
    decision.secret = desired if plan.needs_apply(desired, secret) else None
    return decision


def _reported(
    body: Body, previous: MemoryClientStatus, ready: Condition, secret_name: str | None, now: str
) -> ClientDecision:
    new = MemoryClientStatus(
        conditions=status.set_conditions(previous.conditions, [ready], now),
        secret_name=secret_name,
        observed_generation=body["metadata"].get("generation"),
    ).wire()
    changed = status.changed(body.get("status") or {}, new)
    return ClientDecision(status=new if changed else None, events=events(body, previous, ready))


# Reasons that are waits, not problems: no Warning for them.
WAITING = frozenset({"Pending"})


def events(body: Body, previous: MemoryClientStatus, ready: Condition) -> list[Event]:
    """A Warning when a new problem appears, a Normal Event when the client becomes Ready."""
    old = status.find(previous.conditions, "Ready")
    if old is not None and (old.status, old.reason, old.message) == (
        ready.status,
        ready.reason,
        ready.message,
    ):
        return []
    if ready.status == "True":
        if old is not None and old.status == "True":
            return []
        return [Event(body, "Admitted", ready.message, warning=False)]
    if ready.reason in WAITING:
        return []
    return [Event(body, ready.reason, ready.message)]
