"""Every leaf of every spec is honoured: changing it changes what the operator renders, or, for the few
fields only the controller acts on, a named behaviour. A field added to a model without a consumer (and
an entry here) fails `test_every_leaf_is_listed`."""

from __future__ import annotations

import copy
import datetime as dt
import types
import typing
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pydantic import BaseModel

from memory_operator.api.backup import MemoryBackupSpec
from memory_operator.api.policy import MemoryPolicySpec
from memory_operator.api.store import MemoryStore, MemoryStoreSpec
from memory_operator.controller import decide, schedule
from memory_operator.controller.snapshot import Snapshot
from memory_operator.render import render_store
from render.helpers import CREDENTIALS, SETTINGS, every_job, make_policy, make_store

OPENAI = {"name": "openai", "key": "api-key"}
MODEL = {"provider": "openai", "model": "m", "apiKeySecretRef": OPENAI, "baseUrl": "http://llm:1"}
# Placement of a component's pods (`PodSettings`), every field set.
POD: dict[str, Any] = {
    "labels": {"team": "a"},
    "annotations": {"mesh": "on"},
    "nodeSelector": {"pool": "memory"},
    "tolerations": [
        {"key": "taint", "operator": "Equal", "value": "m", "effect": "NoSchedule", "tolerationSeconds": 9}
    ],
    "affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []}},
    "topologySpreadConstraints": [
        {
            "maxSkew": 1,
            "topologyKey": "zone",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {
                "matchLabels": {"a": "b"},
                "matchExpressions": [{"key": "k", "operator": "In", "values": ["v"]}],
            },
            "minDomains": 2,
            "matchLabelKeys": ["pod-template-hash"],
            "nodeAffinityPolicy": "Honor",
            "nodeTaintsPolicy": "Ignore",
        }
    ],
    "priorityClassName": "high",
}
POD_CHANGES: dict[str, Any] = {
    "labels": {"team": "b"},
    "annotations": {"mesh": "off"},
    "nodeSelector": {"pool": "other"},
    "tolerations[].key": "other",
    "tolerations[].operator": "Exists",
    "tolerations[].value": "n",
    "tolerations[].effect": "NoExecute",
    "tolerations[].tolerationSeconds": 10,
    "affinity": {"podAntiAffinity": {}},
    "topologySpreadConstraints[].maxSkew": 2,
    "topologySpreadConstraints[].topologyKey": "host",
    "topologySpreadConstraints[].whenUnsatisfiable": "DoNotSchedule",
    "topologySpreadConstraints[].labelSelector.matchLabels": {"a": "c"},
    "topologySpreadConstraints[].labelSelector.matchExpressions[].key": "k2",
    "topologySpreadConstraints[].labelSelector.matchExpressions[].operator": "NotIn",
    "topologySpreadConstraints[].labelSelector.matchExpressions[].values": ["w"],
    "topologySpreadConstraints[].minDomains": 3,
    "topologySpreadConstraints[].matchLabelKeys": ["other"],
    "topologySpreadConstraints[].nodeAffinityPolicy": "Ignore",
    "topologySpreadConstraints[].nodeTaintsPolicy": "Honor",
    "priorityClassName": "low",
}
# The components whose pods take `PodSettings`.
POD_OWNERS = ("vectorStore.pod", "server.pod", "jobs.pod")

# Every optional section set, so that every leaf has a value to change.
BASE: dict[str, Any] = {
    "vectorStore": {
        "image": "docker.io/qdrant/qdrant:v1.16.3",
        "replicas": 3,
        "storage": {"size": "10Gi", "storageClassName": "fast"},
        "resources": {"requests": {"cpu": "1"}, "limits": {"memory": "1Gi"}},
        "collection": {"name": "memories", "onDisk": False, "replicationFactor": 2, "shardNumber": 2},
        "pod": POD,
    },
    "server": {
        "replicas": 1,
        "image": "registry.example/memory:1",
        "llm": MODEL,
        "embedder": {**MODEL, "dims": 384},
        "resources": {"requests": {"cpu": "1"}},
        "config": {
            "categories": [{"name": "incident", "description": "outages", "expiration": "90d"}],
            "customInstructions": "keep facts",
            "defaultExpiration": {"temporary": "7d"},
        },
        "pod": POD,
    },
    "auth": {"apiKeyKey": "rw", "readOnlyApiKeyKey": "ro"},
    "backup": {
        "schedule": "0 2 * * *",
        "destination": {"pvc": {"size": "5Gi", "storageClassName": "standard"}},
        "retention": {"maxCount": 7, "maxAge": "30d"},
    },
    "bootstrap": {"fromBackup": {"name": "nightly-1"}},
    "jobs": {
        "resources": {"requests": {"cpu": "50m"}, "limits": {"cpu": "1"}},
        "pod": POD,
        "serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/a"}},
    },
    "imagePullSecrets": [{"name": "regcred"}],
    "monitoring": {"canary": {}},
    "tls": {"mode": "enabled"},
}
S3 = {
    "bucket": "memories",
    "prefix": "a/",
    "endpoint": "http://minio:9000",
    "region": "eu",
    "credentialsSecret": "s3",
}

# A new value for each leaf, and where needed the base it is changed on.
STORE_CHANGES: dict[str, Any] = {
    "vectorStore.image": "docker.io/qdrant/qdrant:v1.17.0",
    "vectorStore.replicas": 4,
    "vectorStore.storage.size": "20Gi",
    "vectorStore.storage.storageClassName": "slow",
    "vectorStore.resources.requests": {"cpu": "2"},
    "vectorStore.resources.limits": {"memory": "2Gi"},
    "vectorStore.snapshots.size": "40Gi",
    "vectorStore.snapshots.claim": True,
    "vectorStore.snapshots.storageClassName": "scratch",
    "vectorStore.collection.name": "other",
    "vectorStore.collection.onDisk": True,
    "vectorStore.collection.replicationFactor": 3,
    "vectorStore.collection.shardNumber": 4,
    "server.flavor": "openmemory",
    "server.replicas": 2,
    "server.image": "registry.example/memory:2",
    "server.llm.provider": "ollama",
    "server.llm.model": "m2",
    "server.llm.apiKeySecretRef.name": "other",
    "server.llm.apiKeySecretRef.key": "other",
    "server.llm.baseUrl": "http://llm:2",
    "server.embedder.provider": "ollama",
    "server.embedder.model": "m2",
    "server.embedder.apiKeySecretRef.name": "other",
    "server.embedder.apiKeySecretRef.key": "other",
    "server.embedder.baseUrl": "http://llm:2",
    "server.embedder.dims": 768,
    "server.resources.requests": {"cpu": "2"},
    "server.resources.limits": {"memory": "3Gi"},
    "server.user": "someone",
    "server.cors.allowedOrigins": ["https://ui.example"],
    "server.config.categories[].name": "outage",
    "server.config.categories[].description": "failures",
    "server.config.categories[].expiration": "30d",
    "server.config.customInstructions": "keep less",
    "server.config.defaultExpiration": {"temporary": "3d"},
    "auth.existingSecret": "mine",
    "auth.apiKeyKey": "key",
    "auth.readOnlyApiKeyKey": "ro-key",
    "backup.destination.pvc.claimName": "shared",
    "backup.destination.pvc.size": "9Gi",
    "backup.destination.pvc.storageClassName": "cheap",
    "backup.destination.s3.bucket": "other",
    "backup.destination.s3.prefix": "b/",
    "backup.destination.s3.endpoint": "http://minio:9001",
    "backup.destination.s3.region": "us",
    "backup.destination.s3.credentialsSecret": "s3-other",
    "backup.retention.maxCount": 3,
    "backup.retention.maxAge": "14d",
    "bootstrap.fromBackup.name": "nightly-2",
    "jobs.resources.requests": {"cpu": "100m"},
    "jobs.resources.limits": {"cpu": "2"},
    "imagePullSecrets[].name": "other-regcred",
    "monitoring.canary.schedule": "*/5 * * * *",
    "monitoring.canary.topK": 10,
    "monitoring.canary.minRecall": 0.9,
    "monitoring.canary.maxLatencyP95Milliseconds": 500,
    "monitoring.canary.suspend": True,
    "tls.mode": "disabled",
    "tls.secretName": "own-tls",
    "tls.issuerRef.name": "other-issuer",
    "tls.issuerRef.kind": "ClusterIssuer",
    "tls.issuerRef.group": "issuers.example.com",
    "tls.clientCaSecret": "clients-ca",
    **{f"{owner}.{leaf}": value for owner in POD_OWNERS for leaf, value in POD_CHANGES.items()},
}
BASES: dict[str, Callable[[dict[str, Any]], None]] = {
    # A store being restored holds its server at zero replicas.
    "server.replicas": lambda spec: spec.pop("bootstrap"),
    "vectorStore.snapshots.storageClassName": lambda spec: spec["vectorStore"].update(
        snapshots={"claim": True}
    ),
    # The canary and TLS need the builtin server.
    "server.user": lambda spec: (
        spec["server"].update(flavor="openmemory", config=None),
        spec.pop("monitoring"),
        spec.pop("tls"),
    ),
    "server.flavor": lambda spec: (
        spec["server"].update(config=None),
        spec.pop("monitoring"),
        spec.pop("tls"),
    ),
    "tls.issuerRef": lambda spec: spec["tls"].update(issuerRef={"name": "issuer"}),
    "backup.destination.s3": lambda spec: spec["backup"].update(destination={"s3": dict(S3)}),
}


def _store_with(path: str, value: Any) -> MemoryStore:
    """The base store (adjusted for `path`), with `path` set to `value` unless `value` is None."""
    spec = copy.deepcopy(BASE)
    for prefix, adjust in BASES.items():
        if path.startswith(prefix):
            adjust(spec)
    if value is not None:
        set_path(spec, path, value)
    return make_store(spec)


def _rendered(store: MemoryStore) -> list[dict[str, Any]]:
    return render_store(store, [make_policy("ttl")], SETTINGS, CREDENTIALS, every_job(store))


# Fields only the controller acts on: a behaviour that changes with them.
def _paused() -> bool:
    body = {"metadata": {"name": "mem", "namespace": "agents"}, "spec": {"paused": True}}
    return decide.is_paused(body) and not decide.is_paused({**body, "spec": {}})


def _due(**backup: Any) -> str | None:
    body = {
        "metadata": {"name": "mem", "namespace": "agents", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"backup": {"destination": {"pvc": {}}, **backup}},
    }
    return schedule.due_backup(
        MemoryStore.model_validate(body), [], dt.datetime(2026, 1, 2, 5, 30, tzinfo=dt.UTC)
    )


class _RecordingKube:
    """Records the writes of a release."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    async def delete(self, resource: Any, namespace: str, name: str, **_: Any) -> bool:
        self.calls.append(("delete", name))
        return True

    async def patch(self, resource: Any, namespace: str, name: str, patch: Any, **_: Any) -> dict[str, Any]:
        self.calls.append(("patch", name))
        return {}


def _released(policy: str) -> list[tuple[str, str]]:
    import asyncio

    from memory_operator.controller.cache import CHILDREN, Cache
    from memory_operator.controller.reconcile import Reconciler
    from memory_operator.render import RenderSettings

    claims = next(w for w in CHILDREN if w.kind == "PersistentVolumeClaim")
    claim = {"kind": "PersistentVolumeClaim", "metadata": {"name": "storage-mem-qdrant-0"}}
    kube = _RecordingKube()
    cache = Cache({claims.index_id: {("agents", "mem"): [claim]}})
    body = {
        "metadata": {"name": "mem", "namespace": "agents", "uid": "u"},
        "spec": {"deletionPolicy": policy},
    }
    asyncio.run(Reconciler(kube, RenderSettings()).release(cache, body))  # type: ignore[arg-type]
    return kube.calls


def _deletion_policy() -> bool:
    return _released("Delete") == [("delete", "storage-mem-qdrant-0")] and _released("Retain") == [
        ("patch", "storage-mem-qdrant-0")
    ]


def _jobs_service_account_annotations() -> bool:
    """The jobs' ServiceAccount (rendered by `jobs.service_account`, applied by the controller)."""
    from memory_operator.render import jobs

    def annotations(value: dict[str, str]) -> Any:
        store = make_store({"jobs": {"serviceAccount": {"annotations": value}}})
        return jobs.service_account(store)["metadata"].get("annotations")

    return annotations({"iam.gke.io/gcp-service-account": "a@p.iam"}) != annotations({})


STORE_BEHAVIOURS: dict[str, Callable[[], bool]] = {
    "paused": _paused,
    "jobs.serviceAccount.annotations": _jobs_service_account_annotations,
    "backup.schedule": lambda: _due(schedule="0 * * * *") != _due(schedule="15 * * * *"),
    "backup.suspend": lambda: _due(suspend=False) is not None and _due(suspend=True) is None,
    "deletionPolicy": _deletion_policy,
}

POLICY_CHANGES: dict[str, Any] = {
    "schedule": "5 4 * * *",
    "rules[].name": "other",
    "rules[].maxAge": "8d",
    "rules[].match.metadata": {"type": "x"},
    "rules[].match.categories": ["y"],
    "rules[].ageField": "created_at",
    "rules[].match.userId": "alice",
    "rules[].match.agentId": "agent",
    "rules[].match.runId": "run",
    "honorExpirationDate": False,
    "dryRun": True,
    "suspend": True,
    "audit.staleAfter": "30d",
    "audit.nearDuplicates": False,
    "audit.nearDuplicateSimilarity": 0.9,
    "audit.dedupe": "exact",
    "audit.sampleSize": 3,
}
POLICY_BASE = {
    "selector": {"matchLabels": {"team": "x"}},
    "rules": [{"name": "old", "maxAge": "7d", "match": {"metadata": {"type": "t"}, "categories": ["c"]}}],
    "audit": {},
}


def _policy_selector() -> bool:
    store = make_store({}, team="x")
    body = {"metadata": {"name": "p", "namespace": "agents"}, "spec": POLICY_BASE}
    other = copy.deepcopy(body)
    other["spec"]["selector"] = {"matchLabels": {"team": "y"}}
    return bool(decide.selecting_policies(store, [body])) and not decide.selecting_policies(store, [other])


POLICY_BEHAVIOURS: dict[str, Callable[[], bool]] = {
    "selector.matchLabels": _policy_selector,
    "selector.matchExpressions[].key": _policy_selector,
    "selector.matchExpressions[].operator": _policy_selector,
    "selector.matchExpressions[].values": _policy_selector,
    "rules[].keep": lambda: True,  # exclusive with maxAge: see test_keep_rules_reach_the_job
}


def _backup_store_ref() -> bool:
    store = make_store({"backup": {"destination": {"pvc": {}}}})

    def backup(of: str) -> dict[str, Any]:
        return {
            "metadata": {"name": "b", "creationTimestamp": "T"},
            "spec": {"storeRef": {"name": of}},
            "status": {},
        }

    body = {"metadata": {"name": "mem", "namespace": "agents"}}
    runs = decide.backups_to_run(store, Snapshot(body=body, backups=[backup("mem")]))
    other = decide.backups_to_run(store, Snapshot(body=body, backups=[backup("another")]))
    return runs == ["b"] and other == []


BACKUP_BEHAVIOURS: dict[str, Callable[[], bool]] = {"storeRef.name": _backup_store_ref}


def leaves(model: type[BaseModel], prefix: str = "") -> Iterator[str]:
    """The wire paths of a model's leaves; lists of models as `[]`, maps as leaves."""
    for name, info in model.model_fields.items():
        alias = info.alias or name
        path = f"{prefix}{alias}"
        inner = _model_of(info.annotation)
        if inner is not None:
            yield from leaves(inner[0], path + ("[]." if inner[1] else "."))
        else:
            yield path


def _model_of(annotation: Any) -> tuple[type[BaseModel], bool] | None:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        found = [_model_of(a) for a in args if a is not type(None)]
        return found[0] if len(found) == 1 else None
    if origin is typing.Annotated:
        return _model_of(args[0])
    if origin is list and args:
        inner = _model_of(args[0])
        return (inner[0], True) if inner else None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    return None


def set_path(obj: dict[str, Any], path: str, value: Any) -> None:
    parts = path.replace("[]", ".[]").split(".")
    parts = [p for p in parts if p]
    target: Any = obj
    for part in parts[:-1]:
        target = target[0] if part == "[]" else target.setdefault(part, {})
    target[parts[-1]] = value


@pytest.mark.parametrize(
    ("model", "listed"),
    [
        (MemoryStoreSpec, set(STORE_CHANGES) | set(STORE_BEHAVIOURS)),
        (MemoryPolicySpec, set(POLICY_CHANGES) | set(POLICY_BEHAVIOURS)),
        (MemoryBackupSpec, set(BACKUP_BEHAVIOURS)),
    ],
    ids=["store", "policy", "backup"],
)
def test_every_leaf_is_listed(model: type[BaseModel], listed: set[str]) -> None:
    assert set(leaves(model)) == listed


@pytest.mark.parametrize("path", sorted(STORE_CHANGES))
def test_changing_a_store_field_changes_the_rendering(path: str) -> None:
    before = _rendered(_store_with(path, None))
    after = _rendered(_store_with(path, STORE_CHANGES[path]))
    assert before != after, f"{path} has no consumer"


@pytest.mark.parametrize("path", sorted(POLICY_CHANGES))
def test_changing_a_policy_field_changes_the_rendering(path: str) -> None:
    store = make_store({}, team="x")
    base = copy.deepcopy(POLICY_BASE)
    changed = copy.deepcopy(POLICY_BASE)
    set_path(changed, path, POLICY_CHANGES[path])
    if path == "rules[].maxAge":
        changed["rules"][0].pop("keep", None)
    before = render_store(store, [make_policy("p", **base)], SETTINGS, CREDENTIALS)
    after = render_store(store, [make_policy("p", **changed)], SETTINGS, CREDENTIALS)
    assert before != after, f"{path} has no consumer"


def test_keep_rules_reach_the_job() -> None:
    store = make_store({}, team="x")
    kept = {**POLICY_BASE, "rules": [{"name": "old", "keep": True}]}
    aged = {**POLICY_BASE, "rules": [{"name": "old", "maxAge": "7d"}]}
    assert render_store(store, [make_policy("p", **kept)], SETTINGS, CREDENTIALS) != render_store(
        store, [make_policy("p", **aged)], SETTINGS, CREDENTIALS
    )


@pytest.mark.parametrize(
    "behaviour",
    sorted({**STORE_BEHAVIOURS, **POLICY_BEHAVIOURS, **BACKUP_BEHAVIOURS}.items()),
    ids=lambda item: item[0] if isinstance(item, tuple) else str(item),
)
def test_controller_only_fields_change_a_named_behaviour(behaviour: tuple[str, Callable[[], bool]]) -> None:
    path, holds = behaviour
    assert holds(), f"{path} changes nothing"
