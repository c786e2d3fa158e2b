"""MemoryClients on a real control plane: a key per client in a Secret it owns, its store's servers given
the key's hash, rotation by deleting the Secret, deletion, and problems told as conditions and Events.

No kubelet mounts Secrets here (the node is fake), so what the server pods would read is read from the
store's clients Secret and loaded the way the server loads its mounted file: a client's key is admitted
or refused by exactly that.
"""

from __future__ import annotations

import base64
import hashlib
import time
from typing import Any

from e2e.cluster import audit_writes, condition, store, wait_for
from e2e.conftest import Cluster
from memory_operator import env
from memory_operator.server.clients import ClientDirectory, parse_clients
from memory_operator.server.store import Scope

CREDENTIALS = "app-memory-credentials"
EVERYTHING = {"userIds": ["*"], "agentIds": ["*"], "runIds": ["*"]}


def memory_client(namespace: str, name: str, store_name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "memory-operator.io/v1alpha1",
        "kind": "MemoryClient",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"store": store_name, **spec},
    }


def decoded(secret: dict[str, Any], key: str) -> str:
    return base64.b64decode(secret["data"][key]).decode()


def servers_directory(cluster: Cluster, namespace: str, store_name: str) -> ClientDirectory | None:
    """The clients the store's server pods would load from their mounted Secret; None without it."""
    secret = cluster.client.get("Secret", namespace, f"{store_name}-clients")
    if secret is None:
        return None
    return ClientDirectory(parse_clients(decoded(secret, "clients.json")))


def admitted(cluster: Cluster, namespace: str, key: str) -> bool:
    directory = servers_directory(cluster, namespace, "mem")
    return directory is not None and directory.find(key) is not None


def ready(cluster: Cluster, namespace: str, name: str) -> dict[str, Any] | None:
    body = cluster.client.get("MemoryClient", namespace, name)
    return body if condition(body, "Ready").get("status") == "True" else None


def events_of(cluster: Cluster, namespace: str, name: str) -> list[dict[str, Any]]:
    return [
        e
        for e in cluster.client.list("Event", namespace)
        if e.get("involvedObject", {}).get("kind") == "MemoryClient"
        and e.get("involvedObject", {}).get("name") == name
    ]


def key_of(cluster: Cluster, namespace: str) -> str | None:
    secret = cluster.client.get("Secret", namespace, CREDENTIALS)
    return decoded(secret, "MEMORY_API_KEY") if secret else None


def test_a_client_gets_a_key_its_stores_servers_admit_rotated_when_its_secret_is_deleted(
    cluster: Cluster,
) -> None:
    ns = cluster.client.namespace("clients")
    cluster.client.create(store(ns, "mem"))
    created = cluster.client.create(
        memory_client(
            ns,
            "app",
            "mem",
            access="readWrite",
            scopes={"userIds": ["team-a-*"], "agentIds": ["*"], "runIds": ["*"]},
            quota={"requestsPerSecond": 10, "writesPerSecond": 2},
        )
    )
    secret = wait_for(lambda: cluster.client.get("Secret", ns, CREDENTIALS), "the client's Secret")
    refs = secret["metadata"]["ownerReferences"]
    assert [(r["kind"], r["name"], r["uid"]) for r in refs] == [
        ("MemoryClient", "app", created["metadata"]["uid"])
    ]
    key = decoded(secret, "MEMORY_API_KEY")
    assert decoded(secret, "MEMORY_URL") == f"http://mem-server.{ns}.svc:{env.SERVER_PORT}"
    assert decoded(secret, "MEMORY_MCP_URL").endswith("/mcp/app/http/{user_id}")

    body = wait_for(lambda: ready(cluster, ns, "app"), "the client Ready")
    assert body["status"]["secretName"] == CREDENTIALS
    assert body["status"]["observedGeneration"] == body["metadata"]["generation"]
    directory = servers_directory(cluster, ns, "mem")
    assert directory is not None
    client = directory.find(key)
    assert client is not None and client.name == "app"
    assert client.reach.permits(Scope(user_id="team-a-7")) and not client.reach.permits(Scope(user_id="bob"))
    mounted = {"name": "clients", "secret": {"secretName": "mem-clients", "defaultMode": 420}}

    def volumes() -> list[dict[str, Any]]:
        deployment = cluster.client.get("Deployment", ns, "mem-server") or {}
        return list(
            ((deployment.get("spec") or {}).get("template") or {}).get("spec", {}).get("volumes") or []
        )

    wait_for(lambda: mounted in volumes(), "the servers' pods to mount the clients Secret")
    printed = cluster.kubectl("get", "memoryclients", "-n", ns)
    assert printed.split("\n")[0].split()[:5] == ["NAME", "STORE", "ACCESS", "READY", "REASON"]
    assert printed.split("\n")[1].split()[:5] == ["app", "mem", "readWrite", "True", "Admitted"]

    # A converged client costs no write, through resyncs of its store (every 3 s here).
    since = time.time()
    time.sleep(7)
    writes = [
        e["requestURI"]
        for e in audit_writes(cluster.plane, ns, since)
        if "memoryclients" in e["requestURI"] or CREDENTIALS in e["requestURI"]
    ]
    assert writes == []

    # Rotation: the Secret deleted, a new key, given to the servers; the old key is refused.
    assert cluster.client.delete("Secret", ns, CREDENTIALS) == 200
    new_key = wait_for(lambda: (k := key_of(cluster, ns)) != key and k, "a new key")
    wait_for(
        lambda: admitted(cluster, ns, new_key) and not admitted(cluster, ns, key), "the new key admitted"
    )
    wait_for(lambda: ready(cluster, ns, "app"), "the client Ready again")

    # Nowhere but the client's own Secret.
    told = " ".join(
        [
            str(cluster.client.get("MemoryClient", ns, "app")),
            str(cluster.client.list("Event", ns)),
            str(cluster.client.get("Secret", ns, "mem-clients")),
            str(cluster.client.get("MemoryStore", ns, "mem")),
            cluster.operator.metrics(),
            cluster.plane.log_tail("operator", 10_000_000),
        ]
    )
    for value in (key, new_key):
        assert value not in told and base64.b64encode(value.encode()).decode() not in told
    servers = decoded(cluster.client.get("Secret", ns, "mem-clients") or {}, "clients.json")
    assert hashlib.sha256(new_key.encode()).hexdigest() in servers, "the servers get the key's hash"

    # A deleted client's key leaves the servers' file (its Secret, owned by it, goes with it: the
    # garbage collector's part, which takes its discovery period to learn a new kind).
    assert cluster.client.delete("MemoryClient", ns, "app") == 200
    wait_for(lambda: not admitted(cluster, ns, new_key), "the deleted client's key refused", timeout=30)
    assert servers_directory(cluster, ns, "mem") is not None, "the file stays, empty: no pod rolls"
    assert mounted in volumes()


def test_invalid_scopes_and_a_missing_store_are_conditions_and_warnings(cluster: Cluster) -> None:
    ns = cluster.client.namespace("clients-wrong")
    cluster.client.create(memory_client(ns, "early", "later", scopes=EVERYTHING))
    cluster.client.create(
        memory_client(ns, "typo", "later", scopes={"userIds": ["team a"], "agentIds": ["*"]})
    )

    def reason(name: str) -> str | None:
        return condition(cluster.client.get("MemoryClient", ns, name), "Ready").get("reason")

    wait_for(lambda: reason("early") == "StoreNotFound", "StoreNotFound")
    wait_for(lambda: reason("typo") == "InvalidScopes", "InvalidScopes")
    message = condition(cluster.client.get("MemoryClient", ns, "typo"), "Ready")["message"]
    assert "userIds[0]: 'team a' is not an id" in message
    for name, why in (("early", "StoreNotFound"), ("typo", "InvalidScopes")):
        wait_for(
            lambda name=name, why=why: [
                e for e in events_of(cluster, ns, name) if e["reason"] == why and e["type"] == "Warning"
            ],
            f"a Warning Event {why}",
        )
    # The store appears: the client is admitted; the scopes corrected: that one too.
    cluster.client.create(store(ns, "later"))
    wait_for(lambda: ready(cluster, ns, "early"), "the client Ready once its store exists")
    cluster.client.patch("MemoryClient", ns, "typo", {"spec": {"scopes": {"userIds": ["team-a"]}}})
    wait_for(lambda: reason("typo") in ("Pending", "Admitted"), "the corrected scopes accepted")
    body = wait_for(lambda: ready(cluster, ns, "typo"), "the corrected client Ready")
    # A merge patch keeps `agentIds: ["*"]`; `runIds` is still empty.
    assert "reaches no memory while runIds allow nothing" in condition(body, "Ready")["message"]
