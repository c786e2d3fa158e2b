"""A Qdrant upgrade as a table: the StatefulSet's partition, the backup before it and the checks between
nodes, decided from what exists. Pure: no cluster (the end-to-end suite runs it on a real one)."""

from __future__ import annotations

import copy
from typing import Any

from controller.test_decide import backup_body, converged, finished, run, store_body
from memory_operator import labels
from memory_operator.api.store import MemoryStore
from memory_operator.controller import decide, upgrade
from memory_operator.controller.snapshot import Snapshot
from memory_operator.render import names

OLD = "docker.io/qdrant/qdrant:v1.16.3-unprivileged"
NEW = "docker.io/qdrant/qdrant:v1.17.0-unprivileged"
BACKUP = "mem-pre-upgrade-1-17-0"
CHECK_OK = '{"phase":"Completed","versions":["1.16.3","1.16.3","1.17.0"]}'
CHECK_FAILED = '{"phase":"Failed","reason":"ShardsNotActive","error":"memories shard 0 on peer 7: Dead"}'


def spec(image: str = OLD, replicas: int = 3, backup: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {
        "vectorStore": {
            "image": image,
            "replicas": replicas,
            "collection": {"replicationFactor": min(2, replicas)},
        }
    }
    if backup:
        body["backup"] = {"destination": {"pvc": {"size": "1Gi"}}}
    return body


def serving(body: dict[str, Any]) -> Snapshot:
    """The store converged, Ready in its status."""
    snap = converged(body)
    decision = run(snap)
    assert decision.phase == "Ready"
    return Snapshot(**{**snap.__dict__, "body": {**snap.body, "status": decision.status.wire()}})


def with_image(snap: Snapshot, image: str, **extra: Any) -> Snapshot:
    """The store's spec edited to `image` (a new generation)."""
    body = copy.deepcopy(snap.body)
    body["spec"]["vectorStore"]["image"] = image
    body["metadata"]["generation"] += 1
    return Snapshot(**{**snap.__dict__, "body": body, **extra})


def statefulset(snap: Snapshot) -> dict[str, Any]:
    return next(c for c in snap.children if c["kind"] == "StatefulSet")


def applied_statefulset(decision: decide.Decision) -> dict[str, Any] | None:
    return next((m for m in decision.apply if m["kind"] == "StatefulSet"), None)


def partition_of(manifest: dict[str, Any]) -> int | None:
    return (manifest["spec"]["updateStrategy"].get("rollingUpdate") or {}).get("partition")


def image_of(manifest: dict[str, Any]) -> str:
    return str(manifest["spec"]["template"]["spec"]["containers"][0]["image"])


def after(snap: Snapshot, decision: decide.Decision, updated: int | None = None) -> Snapshot:
    """The decision applied: the StatefulSet as the API server keeps it (a new generation when it
    changed), seen by its controller with `updated` nodes on the template (none when not given), every
    node ready; the status written; the backups and Jobs as they were."""
    body = {**snap.body, "status": decision.status.wire() if decision.status else {}}
    children = list(snap.children)
    sts = applied_statefulset(decision)
    if sts is not None:
        old = statefulset(snap)
        new = copy.deepcopy(sts)
        new["metadata"]["generation"] = old["metadata"]["generation"] + 1
        replicas = new["spec"]["replicas"]
        new["status"] = {
            "observedGeneration": new["metadata"]["generation"],
            "replicas": replicas,
            "readyReplicas": replicas,
            "updatedReplicas": 0 if updated is None else updated,
        }
        children = [c for c in children if c is not old] + [new]
    for job in (m for m in decision.apply if m["kind"] == "Job"):
        if not any(c["metadata"]["name"] == job["metadata"]["name"] for c in children):
            children.append(copy.deepcopy(job))
    return Snapshot(**{**snap.__dict__, "body": body, "children": children})


def nodes_updated(snap: Snapshot, updated: int, ready: int | None = None) -> Snapshot:
    sts = copy.deepcopy(statefulset(snap))
    sts["status"]["updatedReplicas"] = updated
    sts["status"]["readyReplicas"] = sts["spec"]["replicas"] if ready is None else ready
    children = [c for c in snap.children if c["kind"] != "StatefulSet"] + [sts]
    return Snapshot(**{**snap.__dict__, "children": children})


def with_backup(snap: Snapshot, phase: str | None, error: str | None = None) -> Snapshot:
    backup = backup_body(BACKUP, phase)
    if error:
        backup["status"]["error"] = error
    others = [b for b in snap.backups if b["metadata"]["name"] != BACKUP]
    return Snapshot(**{**snap.__dict__, "backups": [*others, backup]})


def check_finished(snap: Snapshot, ordinal: int, message: str, succeeded: bool = True) -> Snapshot:
    name = names.upgrade_check_job_name(store(snap), NEW, ordinal)
    job = next(c for c in snap.children if c["metadata"]["name"] == name)
    done, pods = finished(job, message, succeeded)
    children = [c for c in snap.children if c is not job] + [done]
    return Snapshot(**{**snap.__dict__, "children": children, "job_pods": {**snap.job_pods, name: pods}})


def store(snap: Snapshot) -> MemoryStore:
    return MemoryStore.model_validate(snap.body)


def condition(decision: decide.Decision) -> tuple[str, str, str]:
    assert decision.status is not None
    found = next(c for c in decision.status.conditions if c.type == upgrade.CONDITION)
    return found.status, found.reason, found.message


def check_jobs(decision: decide.Decision) -> list[str]:
    return [
        m["metadata"]["name"]
        for m in decision.apply
        if m["kind"] == "Job" and labels.QDRANT_UPGRADE in m["metadata"]["labels"]
    ]


def test_a_converged_store_runs_its_image_with_no_partition() -> None:
    snap = serving(store_body(**spec()))
    decision = run(snap)
    assert decision.apply == []
    assert condition(decision) == ("True", "Current", f"every Qdrant node runs {OLD}")
    assert partition_of(statefulset(snap)) is None


def test_an_upgrade_backs_up_then_rolls_one_node_at_a_time_checking_shards_between() -> None:
    snap = with_image(serving(store_body(**spec())), NEW)

    # 1. The new image goes into the template, but no node restarts before the backup.
    decision = run(snap)
    sts = applied_statefulset(decision)
    assert sts is not None and image_of(sts) == NEW and partition_of(sts) == 3
    assert [m["metadata"]["name"] for m in decision.create] == [BACKUP]
    backup = decision.create[0]
    assert backup["kind"] == "MemoryBackup" and "ownerReferences" not in backup["metadata"]
    assert condition(decision)[:2] == ("False", "BackingUp")
    assert check_jobs(decision) == []
    snap = with_backup(after(snap, decision), "Running")
    decision = run(snap)
    assert decision.create == [] and applied_statefulset(decision) is None
    assert decision.phase == "Ready"  # every node serves on its version meanwhile
    assert f"{BACKUP}-backup" in [m["metadata"]["name"] for m in decision.apply]  # its Job runs

    # 2. The backup completed: node 2 restarts on the new image.
    snap = with_backup(snap, "Completed")
    decision = run(snap)
    sts = applied_statefulset(decision)
    assert sts is not None and partition_of(sts) == 2
    assert condition(decision)[1] == "Rolling"
    assert any(e.reason == "Rolling" and not e.warning for e in decision.events)

    # 3. Until node 2 runs it and every node is ready, nothing more.
    snap = after(snap, decision)
    decision = run(snap)
    assert applied_statefulset(decision) is None and check_jobs(decision) == []
    assert decision.phase == "Degraded"  # a node restarts
    snap = nodes_updated(snap, 1, ready=2)
    assert check_jobs(run(snap)) == []

    # 4. Then the check waits for every shard replica to be active again.
    snap = nodes_updated(snap, 1)
    decision = run(snap)
    assert check_jobs(decision) == [names.upgrade_check_job_name(store(snap), NEW, 2)]
    assert condition(decision)[1] == "WaitingForShards"
    assert applied_statefulset(decision) is None
    job = next(
        m for m in decision.apply if m["kind"] == "Job" and labels.QDRANT_UPGRADE in m["metadata"]["labels"]
    )
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][0] == "upgrade-check"
    assert job["spec"]["template"]["spec"]["automountServiceAccountToken"] is False

    # 5. Only after it succeeded does node 1 restart; and so on down to node 0.
    snap = after(snap, decision)
    assert applied_statefulset(run(snap)) is None  # the check still runs
    snap = check_finished(snap, 2, CHECK_OK)
    decision = run(snap)
    sts = applied_statefulset(decision)
    assert sts is not None and partition_of(sts) == 1
    snap = nodes_updated(after(snap, decision), 2)
    decision = run(snap)
    assert check_jobs(decision) == [names.upgrade_check_job_name(store(snap), NEW, 1)]
    snap = check_finished(after(snap, decision), 1, CHECK_OK)
    decision = run(snap)
    sts = applied_statefulset(decision)
    assert sts is not None and partition_of(sts) == 0

    # 6. Every node runs it: the partition goes, the check Jobs are deleted.
    snap = nodes_updated(after(snap, decision), 3)
    decision = run(snap)
    assert condition(decision) == ("True", "Current", f"every Qdrant node runs {NEW}")
    sts = applied_statefulset(decision)
    assert sts is not None and partition_of(sts) is None
    assert sorted(r.name for r in decision.delete) == sorted(
        names.upgrade_check_job_name(store(snap), NEW, n) for n in (1, 2)
    )
    assert any(e.reason == "Current" and not e.warning for e in decision.events)


def test_a_failed_check_stops_the_upgrade_where_it_is() -> None:
    snap = with_image(serving(store_body(**spec(backup=False))), NEW)
    decision = run(snap)
    sts = applied_statefulset(decision)
    assert sts is not None and partition_of(sts) == 2  # no destination: no backup to wait for
    assert decision.create == []
    snap = nodes_updated(after(snap, decision), 1)
    snap = check_finished(after(snap, run(snap)), 2, CHECK_FAILED, succeeded=False)

    decision = run(snap)

    assert applied_statefulset(decision) is None
    status, reason, message = condition(decision)
    assert (status, reason) == ("False", "ShardsNotActive")
    assert "memories shard 0 on peer 7: Dead" in message and "delete the Job to check again" in message
    assert [e.reason for e in decision.events if e.warning] == ["ShardsNotActive"]
    # The failed Job stays as it is: not run again by itself, nor deleted.
    assert check_jobs(decision) == [] and decision.delete == []


def test_a_failed_backup_keeps_every_node_on_its_version() -> None:
    snap = with_image(serving(store_body(**spec())), NEW)
    snap = with_backup(after(snap, run(snap)), "Failed", error="the destination is full")

    decision = run(snap)

    assert applied_statefulset(decision) is None  # the partition stays at the replica count
    assert partition_of(statefulset(snap)) == 3
    status, reason, message = condition(decision)
    assert (status, reason) == ("False", "BackupFailed")
    assert "the destination is full" in message and "delete the MemoryBackup" in message
    assert [e.reason for e in decision.events if e.warning] == ["BackupFailed"]
    assert decision.create == []


def test_a_single_node_restarts_once_the_backup_completed() -> None:
    snap = with_image(serving(store_body(**spec(replicas=1))), NEW)
    snap = with_backup(after(snap, run(snap)), "Completed")
    decision = run(snap)
    sts = applied_statefulset(decision)
    assert sts is not None and partition_of(sts) == 0
    assert check_jobs(decision) == []


def test_a_downgrade_across_minor_versions_is_refused_with_both_versions() -> None:
    snap = with_image(serving(store_body(**spec(image=NEW))), OLD)

    decision = run(snap)

    assert decision.apply == [] and decision.create == [] and decision.phase == "Failed"
    assert decision.status is not None
    ready = next(c for c in decision.status.conditions if c.type == "Ready")
    assert "from 1.17.0 to 1.16.3" in ready.message and NEW in ready.message
    assert [e.reason for e in decision.events] == ["QdrantDowngradeRefused"]


def test_a_patch_downgrade_and_tags_without_a_version_are_not_refused() -> None:
    for old, new in (
        ("qdrant/qdrant:v1.17.1", "qdrant/qdrant:v1.17.0"),
        ("qdrant/qdrant:latest", "qdrant/qdrant:v1.2.0"),
        ("qdrant/qdrant:v1.17.0", "registry.example.com/qdrant@sha256:" + "a" * 64),
    ):
        assert upgrade.downgrade(old, new) is None, (old, new)
    assert upgrade.downgrade("qdrant/qdrant:v1.17.0", "qdrant/qdrant:v1.16.9") is not None
    assert upgrade.downgrade("qdrant/qdrant:v2.0.0", "qdrant/qdrant:v1.99.0") is not None


def test_a_backup_of_another_minor_version_fails_the_restore_saying_which_versions() -> None:
    from memory_operator.api.restore import QDRANT_VERSION_MISMATCH, RestoreSummary
    from memory_operator.backup.restore import VersionMismatch

    body = store_body(bootstrap={"fromBackup": {"name": "b1"}})
    snap = Snapshot(body=body, backups=[backup_body("b1", "Completed")])
    job = next(m for m in run(snap).apply if m["metadata"]["name"] == "mem-restore")
    refusal = VersionMismatch("1.15.2", "1.16.3")
    summary = RestoreSummary(reason=refusal.reason, error=str(refusal))
    done, pods = finished(job, summary.termination_message(), succeeded=False)
    snap = Snapshot(body=body, backups=snap.backups, children=[done], job_pods={"mem-restore": pods})

    decision = run(snap)

    assert decision.status is not None
    restored = next(c for c in decision.status.conditions if c.type == "Restored")
    assert restored.status == "False" and "Qdrant 1.15.2" in restored.message and "1.16.3" in restored.message
    assert [(e.reason, e.warning) for e in decision.events if "1.15.2" in e.message] == [
        ("RestoreFailed", True)
    ]
    assert summary.reason == QDRANT_VERSION_MISMATCH


def test_a_new_store_and_other_template_rolls_post_no_upgrade_event() -> None:
    snap = serving(store_body(**spec()))
    rolling = nodes_updated(snap, 1)
    decision = run(rolling)
    assert condition(decision)[:2] == ("False", "Updating")
    settled = Snapshot(**{**rolling.__dict__, "body": {**rolling.body, "status": decision.status.wire()}})
    decision = run(nodes_updated(settled, 3))
    assert condition(decision)[1] == "Current"
    assert [e for e in decision.events if e.reason in ("Current", "Updating")] == []
