"""MemoryClients, decided: the client's Secret, status and Events; the store's clients Secret and mount.
Pure: no cluster."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import pytest

from memory_operator import env, labels
from memory_operator.commands.render import render_documents
from memory_operator.controller import client_sync, clients, grants, plan
from memory_operator.controller.cache import CLIENTS, SECRETS, STORES, Cache
from memory_operator.controller.client_sync import ClientSync
from memory_operator.controller.snapshot import Snapshot
from memory_operator.render import clients as render_clients

from .test_decide import NOW, SETTINGS, bare, converged, live, run, store_body

KEY = "k" * 43
FRESH = "f" * 43
EVERYTHING = {"userIds": ["*"], "agentIds": ["*"], "runIds": ["*"]}


def client_body(
    name: str = "app",
    store: str = "mem",
    generation: int = 1,
    status: dict[str, Any] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    return {
        "apiVersion": "memory-operator.io/v1alpha1",
        "kind": "MemoryClient",
        "metadata": {"name": name, "namespace": "agents", "uid": f"uid-{name}", "generation": generation},
        "spec": {"store": store, "scopes": EVERYTHING, **spec},
        **({"status": status} if status else {}),
    }


def client_secret(name: str = "app", key: str = KEY, store: str = "mem") -> dict[str, Any]:
    from memory_operator.api.client import MemoryClient

    body = client_body(name, store)
    rendered = render_clients.client_secret(MemoryClient.model_validate(body), key)
    return live(plan.stamped(plan.owned(rendered, body)))


def decoded(secret: dict[str, Any], key: str) -> str:
    return base64.b64decode(secret["data"][key]).decode()


def clients_file(store_secret: dict[str, Any]) -> list[dict[str, Any]]:
    return list(json.loads(decoded(store_secret, render_clients.CLIENTS_KEY))["clients"])


def admitted_secret(*entries: tuple[str, str]) -> dict[str, Any]:
    """A store's clients Secret as the cache would hold it, listing these (name, key)."""
    text = json.dumps({"clients": [{"name": n, "keySha256": grants.key_sha256(k)} for n, k in entries]})
    return {
        "metadata": {"name": "mem-clients", "uid": "u", "resourceVersion": str(hash(text))},
        "data": {render_clients.CLIENTS_KEY: base64.b64encode(text.encode()).decode()},
    }


def decide(body: dict[str, Any], **kwargs: Any) -> clients.ClientDecision:
    options: dict[str, Any] = {
        "store": store_body(),
        "secret": None,
        "clients_secret": None,
        "fresh_key": FRESH,
        "now": NOW,
    }
    return clients.decide_client(body, **{**options, **kwargs})


def ready(decision: clients.ClientDecision) -> dict[str, Any]:
    assert decision.status is not None
    return next(c for c in decision.status["conditions"] if c["type"] == "Ready")


def assert_no_key(decision: clients.ClientDecision, *keys: str) -> None:
    told = json.dumps(decision.status) + json.dumps([(e.reason, e.message) for e in decision.events])
    for key in keys:
        assert key not in told and grants.key_sha256(key) not in told


# --- the client's reconcile ------------------------------------------------------------------------


def test_a_new_client_gets_a_secret_it_owns_with_a_fresh_key_and_where_its_store_is() -> None:
    decision = decide(client_body())
    secret = decision.secret
    assert secret is not None
    assert secret["metadata"]["name"] == "app-memory-credentials"
    assert secret["metadata"]["ownerReferences"][0]["uid"] == "uid-app"
    assert secret["metadata"]["labels"][labels.CLIENT] == "app"
    assert decoded(secret, "MEMORY_API_KEY") == FRESH
    assert decoded(secret, "MEMORY_URL") == f"http://mem-server.agents.svc:{env.SERVER_PORT}"
    assert decoded(secret, "MEMORY_MCP_URL") == (
        f"http://mem-server.agents.svc:{env.SERVER_PORT}/mcp/app/http/{{user_id}}"
    )
    assert ready(decision)["reason"] == "Pending"
    assert decision.status is not None
    assert (decision.status["secretName"], decision.status["observedGeneration"]) == (
        "app-memory-credentials",
        1,
    )
    assert decision.events == [], "waiting is no problem"
    assert_no_key(decision, FRESH)


def test_an_existing_key_is_kept_and_a_deleted_secret_brings_a_new_one() -> None:
    kept = decide(client_body(), secret=client_secret(key=KEY))
    assert kept.secret is None, "a converged Secret is not written again"
    rotated = decide(client_body(), secret=None, fresh_key="n" * 43)
    assert rotated.secret is not None and decoded(rotated.secret, "MEMORY_API_KEY") == "n" * 43


def test_ready_once_the_stores_servers_have_the_current_key() -> None:
    body = client_body()
    admitted = decide(body, secret=client_secret(), clients_secret=admitted_secret(("app", KEY)))
    assert (ready(admitted)["status"], ready(admitted)["reason"]) == ("True", "Admitted")
    assert [(e.reason, e.warning) for e in admitted.events] == [("Admitted", False)]
    stale = decide(body, secret=client_secret(), clients_secret=admitted_secret(("app", "old-key" * 5)))
    assert ready(stale)["reason"] == "Pending", "a rotated key is Ready once the servers have it"
    again = decide(
        {**body, "status": admitted.status},
        secret=client_secret(),
        clients_secret=admitted_secret(("app", KEY)),
    )
    assert again.status is None and again.events == [], "a converged client writes nothing"
    assert_no_key(admitted, KEY)


@pytest.mark.parametrize(
    ("change", "reason", "fragment"),
    [
        ({"spec": {"store": "mem", "scopes": {"userIds": ["a b"]}}}, "InvalidScopes", "userIds[0]"),
        ({"store": None}, "StoreNotFound", "MemoryStore mem in namespace agents does not exist"),
        ({"store": store_body(server={"flavor": "openmemory"})}, "StoreUnsupported", "openmemory"),
        (
            {"store": {**store_body(), "metadata": {**store_body()["metadata"], "deletionTimestamp": "T"}}},
            "StoreNotFound",
            "does not exist",
        ),
    ],
)
def test_what_keeps_a_client_out_is_a_condition_and_one_warning(
    change: dict[str, Any], reason: str, fragment: str
) -> None:
    body = client_body()
    if "spec" in change:
        body = {**body, "spec": change.pop("spec")}
    first = decide(body, secret=client_secret(), **change)
    condition = ready(first)
    assert (condition["status"], condition["reason"]) == ("False", reason)
    assert fragment in condition["message"]
    assert [(e.reason, e.warning) for e in first.events] == [(reason, True)]
    again = decide({**body, "status": first.status}, secret=client_secret(), **change)
    assert again.events == [], "the same problem is told once"
    assert_no_key(first, KEY)


def test_a_client_that_reaches_nothing_says_so() -> None:
    body = client_body(scopes={"userIds": ["alice"], "agentIds": [], "runIds": ["*"]})
    decision = decide(body, secret=client_secret(), clients_secret=admitted_secret(("app", KEY)))
    assert "reaches no memory while agentIds allow nothing" in ready(decision)["message"]


def test_a_client_being_deleted_is_left_to_the_garbage_collector() -> None:
    body = client_body()
    body["metadata"]["deletionTimestamp"] = "T"
    decision = decide(body)
    assert (decision.secret, decision.status, decision.events) == (None, None, [])


# --- the store's side ------------------------------------------------------------------------------


def with_clients(*pairs: tuple[dict[str, Any], dict[str, Any] | None], **spec: Any) -> Snapshot:
    secrets = {s["metadata"]["name"]: s for _, s in pairs if s is not None}
    return Snapshot(body=store_body(**spec), clients=[c for c, _ in pairs], secrets=secrets)


def rendered(snap: Snapshot) -> dict[tuple[str, str], dict[str, Any]]:
    decision = run(snap)
    return {(m["kind"], m["metadata"]["name"]): m for m in decision.apply}


def server_pod(manifests: dict[tuple[str, str], dict[str, Any]]) -> dict[str, Any]:
    return manifests[("Deployment", "mem-server")]["spec"]["template"]


def mounts_clients(pod: dict[str, Any]) -> bool:
    container = pod["spec"]["containers"][0]
    mounted = any(m["mountPath"] == env.CLIENTS_DIR for m in container["volumeMounts"])
    told = {"name": env.CLIENTS_FILE, "value": env.CLIENTS_PATH} in container["env"]
    volume = {"name": "clients", "secret": {"secretName": "mem-clients"}} in pod["spec"]["volumes"]
    assert mounted == told == volume
    return mounted


def test_a_store_without_clients_renders_as_before() -> None:
    manifests = rendered(Snapshot(body=store_body()))
    assert ("Secret", "mem-clients") not in manifests
    assert not mounts_clients(server_pod(manifests))


def test_the_servers_get_each_admitted_clients_key_hash_never_its_key() -> None:
    other_key = "o" * 43
    snap = with_clients(
        (client_body("app", access="readWrite", quota={"requestsPerSecond": 5}), client_secret("app", KEY)),
        (client_body("reader"), client_secret("reader", other_key)),
        (client_body("no-secret-yet"), None),
        (client_body("bad", scopes={"userIds": ["no good"]}), client_secret("bad", "b" * 43)),
        (client_body("elsewhere", store="other"), client_secret("elsewhere", "e" * 43, store="other")),
        (
            {
                **client_body("leaving"),
                "metadata": {**client_body("leaving")["metadata"], "deletionTimestamp": "T"},
            },
            None,
        ),
    )
    manifests = rendered(snap)
    secret = manifests[("Secret", "mem-clients")]
    entries = clients_file(secret)
    assert [(e["name"], e["keySha256"], e["access"]) for e in entries] == [
        ("app", grants.key_sha256(KEY), "readWrite"),
        ("reader", grants.key_sha256(other_key), "readOnly"),
    ]
    assert entries[0]["quota"] == {"requestsPerSecond": 5.0}
    assert entries[0]["scopes"] == EVERYTHING
    assert secret["metadata"]["ownerReferences"][0]["kind"] == "MemoryStore"
    text = json.dumps(secret)
    assert KEY not in text and other_key not in text
    assert mounts_clients(server_pod(manifests))


def test_clients_come_and_go_without_rolling_the_servers() -> None:
    first = converged(
        store_body(), clients=[client_body("app")], secrets={"app-memory-credentials": client_secret()}
    )
    template = next(c for c in first.children if c["kind"] == "Deployment")["spec"]["template"]
    assert mounts_clients(template)
    changed = Snapshot(**{**first.__dict__, "clients": [client_body("app", scopes={"userIds": ["alice"]})]})
    decision = run(changed)
    assert [m["kind"] for m in decision.apply] == ["Secret"], "only the clients file changes"
    # The last client gone: the Secret stays, empty, and so does the mount (no roll).
    gone = Snapshot(**{**first.__dict__, "clients": []})
    applied = {m["kind"]: m for m in run(gone).apply}
    assert list(applied) == ["Secret"] and clients_file(applied["Secret"]) == []


def test_an_openmemory_store_gets_no_clients_file() -> None:
    manifests = rendered(with_clients((client_body(), client_secret()), server={"flavor": "openmemory"}))
    assert ("Secret", "mem-clients") not in manifests


def test_what_the_operator_applies_for_clients_is_what_render_prints() -> None:
    body, client = store_body(), client_body()
    applied = run(Snapshot(body=body, clients=[client], secrets={})).apply
    printed = render_documents(
        {"MemoryStore": [body], "MemoryPolicy": [], "MemoryBackup": [], "MemoryClient": [client]},
        SETTINGS,
        with_secrets=False,
    )
    assert [bare(m) for m in applied if m["kind"] != "Secret"] == printed


def test_render_prints_each_clients_secret_and_the_stores_file_with_its_hash() -> None:
    body, client = store_body(), copy.deepcopy(client_body())
    printed = render_documents(
        {"MemoryStore": [body], "MemoryPolicy": [], "MemoryBackup": [], "MemoryClient": [client]},
        SETTINGS,
        with_secrets=True,
    )
    secrets = {m["metadata"]["name"]: m for m in printed if m["kind"] == "Secret"}
    key = decoded(secrets["app-memory-credentials"], "MEMORY_API_KEY")
    assert [e["keySha256"] for e in clients_file(secrets["mem-clients"])] == [grants.key_sha256(key)]


class RecordingKube:
    """Records status writes; the written object comes back with a new resourceVersion."""

    def __init__(self) -> None:
        self.statuses: list[dict[str, Any]] = []

    async def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        return manifest

    async def apply_status(self, resource: Any, namespace: str, name: str, fields: Any, *_: Any) -> Any:
        self.statuses.append(dict(fields))
        return {
            "metadata": {"name": name, "resourceVersion": f"rv{len(self.statuses) + 1}"},
            "status": fields,
        }


async def test_syncs_in_a_row_write_a_status_once_though_the_cache_has_not_seen_the_write(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(client_sync, "post", lambda event: None)
    kube = RecordingKube()
    sync = ClientSync(kube)  # type: ignore[arg-type]
    body = client_body()
    body["metadata"]["resourceVersion"] = "rv1"
    clients_secret = admitted_secret(("app", KEY))
    indexes: dict[str, Any] = {
        CLIENTS.index_id: {"agents": [body]},
        STORES.index_id: {"agents": [store_body()]},
        SECRETS.index_id: {
            ("secret", "agents", "app-memory-credentials"): [client_secret()],
            ("secret", "agents", clients_secret["metadata"]["name"]): [clients_secret],
        },
    }
    for _ in range(3):  # a burst of events, each a sync, while the watch has not brought the write back
        await sync.sync(Cache(indexes), "agents", "app")
    assert len(kube.statuses) == 1
    assert kube.statuses[0]["conditions"][0]["status"] == "True"

    # The cache shows a later version of the client, its status cleared by someone: written again.
    indexes[CLIENTS.index_id] = {
        "agents": [{**body, "metadata": {**body["metadata"], "resourceVersion": "rv9"}}]
    }
    await sync.sync(Cache(indexes), "agents", "app")
    assert len(kube.statuses) == 2
