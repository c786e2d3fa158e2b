"""Every leaf of a MemoryClient's spec has a consumer: it changes what the store's servers are given
(the clients file), or, for `store`, which store's servers are given it."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from memory_operator.api.client import MemoryClientSpec
from memory_operator.api.store import MemoryStore
from memory_operator.controller import grants
from memory_operator.render import clients as render_clients
from render.test_every_field import leaves, set_path

BASE: dict[str, Any] = {
    "store": "mem",
    "access": "readOnly",
    "scopes": {"userIds": ["alice"], "agentIds": ["*"], "runIds": ["*"]},
    "quota": {"requestsPerSecond": 1, "burst": 2, "writesPerSecond": 1, "writeBurst": 2},
}
CHANGES: dict[str, Any] = {
    "access": "readWrite",
    "scopes.userIds": ["bob"],
    "scopes.agentIds": ["bot"],
    "scopes.runIds": ["r-*"],
    "quota.requestsPerSecond": 3,
    "quota.burst": 4,
    "quota.writesPerSecond": 3,
    "quota.writeBurst": 4,
}
SECRETS = {"app-memory-credentials": {"data": {"MEMORY_API_KEY": "a2V5LW9mLWFwcA=="}}}


def clients_file(spec: dict[str, Any], store: str = "mem") -> str:
    body = {"apiVersion": "memory-operator.io/v1alpha1", "kind": "MemoryClient", "spec": spec}
    body["metadata"] = {"name": "app", "namespace": "agents", "uid": "u"}
    owner = MemoryStore.model_validate({"metadata": {"name": store, "namespace": "agents"}})
    found = grants.store_grants(owner, [body], SECRETS, has_clients_secret=True)
    assert found is not None
    return render_clients.clients_file(found)


def test_every_leaf_is_listed() -> None:
    assert set(leaves(MemoryClientSpec)) == set(CHANGES) | {"store"}


@pytest.mark.parametrize("path", sorted(CHANGES))
def test_changing_a_client_field_changes_what_the_servers_are_given(path: str) -> None:
    changed = copy.deepcopy(BASE)
    set_path(changed, path, CHANGES[path])
    assert clients_file(BASE) != clients_file(changed), f"{path} has no consumer"


def test_the_store_field_says_which_stores_servers_admit_the_client() -> None:
    assert json.loads(clients_file(BASE))["clients"] != []
    assert json.loads(clients_file(BASE, store="other"))["clients"] == []
