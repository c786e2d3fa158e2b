"""The store's decision as a table: what exists in, what to write out. Pure: no cluster."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from memory_operator import labels
from memory_operator.api.store import MemoryStore
from memory_operator.commands.render import render_documents
from memory_operator.controller import decide, plan
from memory_operator.controller.snapshot import Snapshot
from memory_operator.render import Credentials, RenderSettings, names

KEYS = Credentials("rw-key", "ro-key", "qdrant-key")
NOW = "2026-01-02T03:04:05Z"
SETTINGS = RenderSettings()


def store_body(name: str = "mem", labels_: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "memory-operator.io/v1alpha1",
        "kind": "MemoryStore",
        "metadata": {
            "name": name,
            "namespace": "agents",
            "uid": f"uid-{name}",
            "generation": 2,
            "labels": labels_ or {},
            "creationTimestamp": "2026-01-01T00:00:00Z",
        },
        "spec": spec,
    }


def backup_body(
    name: str, phase: str | None = None, store: str = "mem", created: str = "T1"
) -> dict[str, Any]:
    return {
        "apiVersion": "memory-operator.io/v1alpha1",
        "kind": "MemoryBackup",
        "metadata": {"name": name, "namespace": "agents", "uid": f"uid-{name}", "creationTimestamp": created},
        "spec": {"storeRef": {"name": store}},
        "status": {"phase": phase, "stopTime": "2026-01-01T02:00:00Z"} if phase else {},
    }


def policy_body(name: str = "ttl", runs: list[dict[str, Any]] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "memory-operator.io/v1alpha1",
        "kind": "MemoryPolicy",
        "metadata": {"name": name, "namespace": "agents", "uid": f"uid-{name}"},
        "spec": {"rules": [{"name": "old", "maxAge": "7d"}], **spec},
        "status": {"lastRuns": runs or []},
    }


def live(manifest: dict[str, Any], **status: Any) -> dict[str, Any]:
    """A child as the API server keeps it after the operator applied it."""
    obj = plan.comparable(copy.deepcopy(manifest))
    obj["metadata"].setdefault("generation", 1)
    obj["status"] = {"observedGeneration": 1, **status}
    return obj


def ready(manifest: dict[str, Any]) -> dict[str, Any]:
    replicas = manifest["spec"].get("replicas", 1)
    return live(manifest, readyReplicas=replicas, updatedReplicas=replicas)


def run(snap: Snapshot) -> decide.Decision:
    return decide.decide(snap, SETTINGS, KEYS, NOW)


COLLECTION_DONE = '{"phase":"Completed","peers":1,"collections":[{"name":"memories","created":true}]}'


def finished(job: dict[str, Any], message: str, succeeded: bool = True) -> tuple[dict[str, Any], list[Any]]:
    """A Job finished, and its pod with the termination message."""
    body = live(job)
    body["status"]["conditions"] = [{"type": "Complete" if succeeded else "Failed", "status": "True"}]
    pod = {
        "status": {"containerStatuses": [{"state": {"terminated": {"message": message, "finishedAt": "T"}}}]}
    }
    return body, [pod]


def settle(snap: Snapshot) -> Snapshot:
    """Apply what the store wants, with the workloads ready and its Jobs done; once more for what their
    end releases (the server held for the collection)."""
    for _ in range(2):
        decision = run(snap)
        children = {(c["kind"], c["metadata"]["name"]): c for c in snap.children}
        pods = dict(snap.job_pods)
        for m in decision.apply:
            if m["kind"] in ("StatefulSet", "Deployment"):
                children[(m["kind"], m["metadata"]["name"])] = ready(m)
            elif m["kind"] == "Job":
                job, pods[m["metadata"]["name"]] = finished(m, COLLECTION_DONE)
                children[("Job", m["metadata"]["name"])] = job
            else:
                children[(m["kind"], m["metadata"]["name"])] = live(m)
        assert decision.status is not None
        secrets = {
            **snap.secrets,
            **{c["metadata"]["name"]: c for c in children.values() if c["kind"] == "Secret"},
        }
        body = {**snap.body, "status": decision.status.wire()}
        if decision.finalizer is not None:
            finalizers = [*(body["metadata"].get("finalizers") or []), labels.FINALIZER]
            body["metadata"] = {**body["metadata"], "finalizers": finalizers}
        snap = Snapshot(
            **{
                **snap.__dict__,
                "body": body,
                "children": list(children.values()),
                "secrets": secrets,
                "job_pods": pods,
            }
        )
    return snap


def converged(body: dict[str, Any], **extra: Any) -> Snapshot:
    """The store with every child it wants applied and ready, its Jobs done and its own Secrets."""
    return settle(Snapshot(body=body, **extra))


def kinds(manifests: list[dict[str, Any]]) -> list[str]:
    return [m["kind"] for m in manifests]


def test_a_new_store_gets_every_child_with_the_given_keys() -> None:
    decision = run(Snapshot(body=store_body()))
    assert kinds(decision.apply)[:2] == ["Secret", "Secret"]
    assert {"StatefulSet", "Deployment", "Service", "NetworkPolicy"} <= set(kinds(decision.apply))
    assert decision.prune == [] and decision.events == []
    assert all(m["metadata"]["ownerReferences"][0]["uid"] == "uid-mem" for m in decision.apply)
    qdrant_secret = next(m for m in decision.apply if m["metadata"]["name"] == "mem-qdrant-key")
    assert qdrant_secret["data"][labels.QDRANT_API_KEY]  # from KEYS, base64
    # Nothing runs yet, and the server waits for its collection.
    assert decision.status is not None and decision.status.phase == "Provisioning"
    assert next(m for m in decision.apply if m["kind"] == "Deployment")["spec"]["replicas"] == 0


def test_a_converged_store_writes_nothing() -> None:
    snap = converged(store_body())
    decision = run(snap)
    assert decision.apply == [] and decision.prune == [] and decision.delete == [] and decision.adopt == []
    assert decision.finalizer is None
    assert decision.status is not None and decision.status.phase == "Ready"
    assert decision.events == []


def test_a_new_store_gets_the_finalizer_with_its_first_children_never_dropping_another() -> None:
    body = store_body()
    body["metadata"]["resourceVersion"] = "7"
    decision = run(Snapshot(body=body))
    assert decision.finalizer == decide.Finalizer(
        "mem",
        [
            {"op": "test", "path": "/metadata/uid", "value": "uid-mem"},
            # With no finalizer read, any change since the read fails the patch.
            {"op": "test", "path": "/metadata/resourceVersion", "value": "7"},
            {"op": "add", "path": "/metadata/finalizers", "value": [labels.FINALIZER]},
        ],
    )
    body["metadata"]["finalizers"] = ["example.com/other"]
    decision = run(Snapshot(body=body))
    assert decision.finalizer is not None and decision.finalizer.patch[1:] == [
        {"op": "test", "path": "/metadata/finalizers", "value": ["example.com/other"]},
        {"op": "add", "path": "/metadata/finalizers/-", "value": labels.FINALIZER},
    ]
    body["metadata"]["finalizers"] = ["example.com/other", labels.FINALIZER]
    assert run(Snapshot(body=body)).finalizer is None
    # A store refused or paused gets no children, so needs no release.
    assert run(Snapshot(body=store_body(paused=True))).finalizer is None
    refused = store_body(vectorStore={"replicas": 1, "collection": {"replicationFactor": 2}})
    assert run(Snapshot(body=refused)).finalizer is None


def test_drift_is_repaired_child_by_child() -> None:
    snap = converged(store_body())
    deployment = next(c for c in snap.children if c["kind"] == "Deployment")
    deployment["spec"]["replicas"] = 5
    service = next(
        c
        for c in snap.children
        if c["metadata"]["name"] == names.qdrant_service_name(MemoryStore.model_validate(store_body()))
    )
    snap.children.remove(service)
    decision = run(snap)
    assert sorted((m["kind"], m["metadata"]["name"]) for m in decision.apply) == [
        ("Deployment", "mem-server"),
        ("Service", "mem-qdrant"),
    ]
    assert decision.status is not None and decision.status.phase != "Ready"


def test_a_paused_store_is_left_alone() -> None:
    body = store_body(paused=True)
    decision = run(Snapshot(body=body))
    assert decision.apply == [] and decision.status is not None and decision.status.phase == "Paused"
    annotated = store_body()
    annotated["metadata"]["annotations"] = {labels.PAUSED: "true"}
    assert run(Snapshot(body=annotated)).apply == []


def test_a_spec_that_cannot_work_is_refused_once_loudly() -> None:
    body = store_body(vectorStore={"replicas": 1, "collection": {"replicationFactor": 2}})
    first = run(Snapshot(body=body))
    assert first.apply == [] and first.status is not None and first.status.phase == "Failed"
    assert [e.reason for e in first.events] == ["ReplicationExceedsReplicas"]
    again = run(Snapshot(body={**body, "status": first.status.wire()}))
    assert again.events == []


def test_storage_grows_by_recreating_the_statefulset_and_never_shrinks() -> None:
    snap = converged(store_body(vectorStore={"storage": {"size": "10Gi"}}))
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "storage-mem-qdrant-0", "labels": {labels.STORE: "mem"}},
        "spec": {"resources": {"requests": {"storage": "10Gi"}}},
    }
    snap.children.append(claim)
    grown = run(Snapshot(**{**snap.__dict__, "body": store_body(vectorStore={"storage": {"size": "20Gi"}})}))
    assert grown.recreate == "mem-qdrant" and grown.grow == [("storage-mem-qdrant-0", "20Gi")]
    shrunk = run(Snapshot(**{**snap.__dict__, "body": store_body(vectorStore={"storage": {"size": "5Gi"}})}))
    assert shrunk.apply == [] and shrunk.status is not None and shrunk.status.phase == "Failed"
    assert shrunk.events[0].reason == "StorageShrinkRefused"


def test_a_missing_existing_secret_fails_the_credentials() -> None:
    decision = run(Snapshot(body=store_body(auth={"existingSecret": "mine"})))
    assert decision.apply == [] and decision.status is not None
    credentials = next(c for c in decision.status.conditions if c.type == "CredentialsReady")
    assert credentials.reason == "SecretNotFound"
    found = run(
        Snapshot(
            body=store_body(auth={"existingSecret": "mine"}),
            secrets={"mine": {"digests": {"api-key": "a" * 64}}},
        )
    )
    assert found.apply and "mem-api-keys" not in [m["metadata"]["name"] for m in found.apply]


BACKUP_SPEC = {"destination": {"pvc": {"size": "1Gi"}}}


def backup_jobs(decision: decide.Decision) -> list[str]:
    return [
        m["metadata"]["labels"][labels.BACKUP]
        for m in decision.apply
        if labels.BACKUP in m["metadata"]["labels"]
    ]


def test_backups_run_one_at_a_time_oldest_first_each_owned_by_its_backup() -> None:
    backups = [
        backup_body("b2", created="T2"),
        backup_body("b1", created="T1"),
        backup_body("b0", "Completed", created="T0"),
    ]
    decision = run(Snapshot(body=store_body(backup=BACKUP_SPEC), backups=backups))
    assert backup_jobs(decision) == ["b1"]
    job = next(m for m in decision.apply if m["kind"] == "Job")
    assert job["metadata"]["ownerReferences"][0]["uid"] == "uid-b1"
    # While b1's Job exists (running or not yet reported), b2 waits.
    snap = Snapshot(body=store_body(backup=BACKUP_SPEC), backups=backups, children=[live(job)])
    assert backup_jobs(run(snap)) == []
    # A store without spec.backup runs none (its backups fail on their own).
    assert backup_jobs(run(Snapshot(body=store_body(), backups=backups))) == []


def test_last_backup_and_its_condition_come_from_the_backups() -> None:
    backups = [backup_body("b1", "Completed", created="T1"), backup_body("b2", "Failed", created="T2")]
    backups[1]["status"]["error"] = "disk full"
    decision = run(Snapshot(body=store_body(backup=BACKUP_SPEC), backups=backups))
    assert decision.status is not None and decision.status.last_backup is not None
    assert (decision.status.last_backup.name, decision.status.last_backup.phase) == ("b2", "Failed")
    condition = next(c for c in decision.status.conditions if c.type == "LastBackupSucceeded")
    assert condition.status == "False" and "disk full" in condition.message


def test_a_restore_holds_the_server_until_it_is_done() -> None:
    body = store_body(bootstrap={"fromBackup": {"name": "b1"}})
    waiting = run(Snapshot(body=body, backups=[backup_body("b1", "Running")]))
    assert "Job" not in kinds(waiting.apply)
    deployment = next(m for m in waiting.apply if m["kind"] == "Deployment")
    assert deployment["spec"]["replicas"] == 0
    restoring = run(Snapshot(body=body, backups=[backup_body("b1", "Completed")]))
    job = next(m for m in restoring.apply if m["kind"] == "Job")
    assert job["metadata"]["name"] == "mem-restore"
    done = run(Snapshot(body={**body, "status": {"restoredFrom": "b1"}}, backups=[]))
    # Restored: the collection Job comes next, and the server waits for it.
    assert [m["metadata"]["name"] for m in done.apply if m["kind"] == "Job"] == [
        "mem-collection-" + digest(body)
    ]


def test_volumes_and_backups_kept_from_a_deleted_store_are_taken_back() -> None:
    kept = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": "storage-mem-qdrant-0",
            "labels": {labels.STORE: "mem", labels.RETAINED_FROM: "mem"},
        },
        "spec": {"resources": {"requests": {"storage": "10Gi"}}},
    }
    backup = backup_body("old", "Completed")
    backup["metadata"]["labels"] = {labels.RETAINED_FROM: "mem"}
    decision = run(Snapshot(body=store_body(), children=[kept], backups=[backup]))
    assert sorted((r.kind, r.name) for r in decision.adopt) == [
        ("MemoryBackup", "old"),
        ("PersistentVolumeClaim", "storage-mem-qdrant-0"),
    ]


def test_policies_select_by_label_and_report_the_newest_run() -> None:
    runs = [{"store": "mem", "time": "2026-01-01T03:00:00Z", "deleted": 4, "succeeded": True}]
    policies = [
        policy_body("ttl", runs, selector={"matchLabels": {"team": "x"}}),
        policy_body("off", suspend=True),
    ]
    decision = run(Snapshot(body=store_body(labels_={"team": "x"}), policies=policies))
    cronjobs = [m["metadata"]["name"] for m in decision.apply if m["kind"] == "CronJob"]
    assert cronjobs == [names.expiration_cronjob_name(MemoryStore.model_validate(store_body()), "ttl")]
    assert decision.status is not None and decision.status.last_expiration is not None
    assert (decision.status.last_expiration.policy, decision.status.last_expiration.deleted) == ("ttl", 4)
    scheduled = next(c for c in decision.status.conditions if c.type == "ExpirationScheduled")
    assert scheduled.message.endswith("ttl")
    unselected = run(Snapshot(body=store_body(labels_={"team": "y"}), policies=policies))
    assert "CronJob" not in kinds(unselected.apply)


def test_a_store_being_deleted_is_not_converged() -> None:
    body = store_body()
    body["metadata"]["deletionTimestamp"] = NOW
    decision = run(Snapshot(body=body))
    assert decision.status is None and decision.apply == []


@pytest.mark.parametrize(
    "case",
    ["plain", "policies", "backups", "restoring", "restored"],
)
def test_what_the_operator_applies_is_what_render_prints(case: str) -> None:
    body, policies, backups = store_body(labels_={"team": "x"}, backup=BACKUP_SPEC), [], []
    if case == "policies":
        policies = [policy_body("ttl", selector={"matchLabels": {"team": "x"}})]
    if case == "backups":
        backups = [backup_body("b1", created="T1"), backup_body("b2", created="T2")]
    if case in ("restoring", "restored"):
        body = store_body(bootstrap={"fromBackup": {"name": "b1"}})
        backups = [backup_body("b1", "Completed")]
    if case == "restored":
        body["status"] = {"restoredFrom": "b1"}
    applied = run(Snapshot(body=body, policies=policies, backups=backups)).apply
    printed = render_documents(
        {"MemoryStore": [body], "MemoryPolicy": policies, "MemoryBackup": backups},
        SETTINGS,
        with_secrets=False,
    )
    assert [bare(m) for m in applied if m["kind"] != "Secret"] == printed


def bare(manifest: dict[str, Any]) -> dict[str, Any]:
    """A manifest without what the controller adds to render's output: ownership and its hash."""
    result = copy.deepcopy(manifest)
    meta = result["metadata"]
    meta.pop("ownerReferences", None)
    meta["annotations"].pop(labels.APPLIED_HASH)
    if not meta["annotations"]:
        del meta["annotations"]
    return result


def digest(body: dict[str, Any]) -> str:
    from memory_operator.render import collection

    return collection.settings_digest(MemoryStore.model_validate(body))


def collection_job(decision: decide.Decision) -> dict[str, Any]:
    return next(
        m
        for m in decision.apply
        if m["kind"] == "Job" and labels.COLLECTION_SETTINGS in m["metadata"]["labels"]
    )


def test_a_new_store_serves_once_its_collection_is_made() -> None:
    body = store_body()
    first = run(Snapshot(body=body))
    job = collection_job(first)
    assert next(m for m in first.apply if m["kind"] == "Deployment")["spec"]["replicas"] == 0
    done, pods = finished(job, COLLECTION_DONE)
    snap = Snapshot(
        body={**body, "status": first.status.wire()},
        children=[done],
        job_pods={job["metadata"]["name"]: pods},
    )  # type: ignore[union-attr]
    second = run(snap)
    assert next(m for m in second.apply if m["kind"] == "Deployment")["spec"]["replicas"] == 1
    assert second.status is not None
    assert next(c for c in second.status.conditions if c.type == "CollectionReady").status == "True"


def test_a_failed_collection_job_keeps_a_new_store_from_serving_and_says_why() -> None:
    body = store_body()
    job = collection_job(run(Snapshot(body=body)))
    failure = '{"phase":"Failed","reason":"IncompatibleCollection","error":"vectors of size 768, not 384"}'
    done, pods = finished(job, failure, succeeded=False)
    decision = run(Snapshot(body=body, children=[done], job_pods={job["metadata"]["name"]: pods}))
    assert next(m for m in decision.apply if m["kind"] == "Deployment")["spec"]["replicas"] == 0
    assert [e.reason for e in decision.events] == ["IncompatibleCollection"]
    assert "768" in decision.events[0].message


def test_settings_qdrant_cannot_change_are_reported_and_the_server_keeps_serving() -> None:
    snap = converged(store_body())
    changed = store_body(vectorStore={"collection": {"onDisk": True}})
    decision = run(Snapshot(**{**snap.__dict__, "body": {**changed, "status": snap.body["status"]}}))
    new_job = collection_job(decision)
    stale = [r.name for r in decision.delete]
    assert stale and new_job["metadata"]["name"] not in stale
    assert "Deployment" not in kinds(decision.apply)  # it keeps serving meanwhile
    message = (
        '{"phase":"Completed","collections":[{"name":"memories","notUpdatable":'
        '[{"setting":"shardNumber","desired":"2","actual":"1"}]}]}'
    )
    done, pods = finished(new_job, message)
    after = run(
        Snapshot(
            **{
                **snap.__dict__,
                "body": {**changed, "status": snap.body["status"]},
                "children": [*snap.children, done],
                "job_pods": {new_job["metadata"]["name"]: pods},
            }
        )
    )
    assert [e.reason for e in after.events] == ["SettingsNotApplied"]


def test_a_store_that_served_before_the_collection_job_is_never_held() -> None:
    """An operator upgrade brings the collection Job to stores that already serve: no downtime."""
    snap = converged(store_body())
    no_condition = {
        **snap.body["status"],
        "conditions": [c for c in snap.body["status"]["conditions"] if c["type"] != "CollectionReady"],
    }
    jobless = [c for c in snap.children if c["kind"] != "Job"]
    decision = run(
        Snapshot(**{**snap.__dict__, "body": {**snap.body, "status": no_condition}, "children": jobless})
    )
    assert "Deployment" not in kinds(decision.apply)
    assert collection_job(decision)


def test_the_backup_gauges_come_from_the_spec_and_the_backups() -> None:
    """The backup-missing alert's inputs: a restarted operator has them again from the objects."""
    done = backup_body("b1", "Completed")
    done["status"]["stopTime"] = "2026-01-01T02:00:00Z"
    since, last = run(
        Snapshot(body=store_body(backup=BACKUP_SPEC), backups=[done, backup_body("b2", "Failed")])
    ).backup_gauges
    assert since == 1767225600.0 and last == 1767232800.0
    assert run(Snapshot(body=store_body(backup={**BACKUP_SPEC, "suspend": True}))).backup_gauges == (
        None,
        None,
    )
    assert run(Snapshot(body=store_body())).backup_gauges == (None, None)
