"""Decide: what one reconcile of a store does, from a snapshot of what exists. Pure: no I/O.

The decision lists the manifests to server-side apply (rendered by render/, owned and stamped), the
children to prune, the claims to grow and the StatefulSet to recreate for new volume templates, the
retained volumes and backups to take back, the status to write and the Events to post. A spec that
cannot work is refused: nothing is applied, deleted or shrunk until it changes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from memory_operator import labels
from memory_operator.api.common import Condition
from memory_operator.api.policy import MemoryPolicy
from memory_operator.api.store import Endpoints, LastBackup, LastExpiration, MemoryStore, MemoryStoreStatus
from memory_operator.controller import (
    bootstrap,
    certificates,
    collection,
    credentials,
    erasures,
    grants,
    plan,
    results,
    status,
    upgrade,
    validation,
)
from memory_operator.controller.snapshot import Snapshot
from memory_operator.controller.validation import Problem
from memory_operator.render import Credentials, Directives, RenderSettings, names, render_store
from memory_operator.render import backup as backup_render
from memory_operator.render import qdrant as qdrant_render
from memory_operator.render.backup import BackupSource

Manifest = dict[str, Any]
FINISHED = ("Completed", "Failed")


@dataclass(frozen=True)
class Event:
    """An Event to post about `target` (the store, or one of its backups)."""

    target: Mapping[str, Any]
    reason: str
    message: str
    warning: bool = True


@dataclass(frozen=True)
class Steps:
    """What the operator runs beyond the spec, decided from what exists: a restore, the collection Job,
    a Qdrant upgrade."""

    restore: bootstrap.Bootstrap
    collection: collection.Collection
    upgrade: upgrade.Upgrade
    tls: certificates.Tls = certificates.DISABLED
    erasures: erasures.Erasures = field(default_factory=erasures.Erasures)


def steps(
    store: MemoryStore,
    snap: Snapshot,
    previous: MemoryStoreStatus,
    settings: RenderSettings,
    now: str | None = None,
    minter: certificates.Minter | None = None,
) -> Steps:
    """`now` and `minter` decide the certificates (by default: the clock, and new ones when needed)."""
    restore = restore_decision(store, snap, previous)
    restoring = restore.held is not None or restore.run_job
    return Steps(
        restore=restore,
        collection=collection.decide(store, snap, previous, restoring=restoring),
        upgrade=upgrade.decide(
            store,
            snap,
            qdrant_render.image(store, settings.images),
            status.find(previous.conditions, upgrade.CONDITION),
        ),
        tls=certificates.decide(
            store,
            snap.secrets,
            status.parse_rfc3339(now or status.now_rfc3339()),
            minter or certificates.FreshMinter(),
            cert_manager=settings.cert_manager,
        ),
        erasures=erasures.decide(store, snap, previous, restoring=restoring, restore_job=restore.run_job),
    )


@dataclass(frozen=True)
class Finalizer:
    """A JSON patch that puts the operator's finalizer on a store, so that its deletion waits for its
    release (its volumes and backups kept or deleted, as `deletionPolicy` says). It only adds: it
    applies to the store read (its uid) with the finalizers read (or, with none, its resourceVersion),
    and fails otherwise, never dropping another's finalizer or touching a store made again."""

    store: str
    patch: list[dict[str, Any]]


def finalizer_patch(body: Mapping[str, Any]) -> Finalizer | None:
    """Kopf's finalizer for the store, when it has none: added by the store's first reconcile with its
    first children (before its StatefulSet makes volumes), not in a round of its own."""
    meta = body["metadata"]
    present = list(meta.get("finalizers") or [])
    if labels.FINALIZER in present:
        return None
    patch: list[dict[str, Any]] = [{"op": "test", "path": "/metadata/uid", "value": meta.get("uid")}]
    if present:
        patch += [
            {"op": "test", "path": "/metadata/finalizers", "value": present},
            {"op": "add", "path": "/metadata/finalizers/-", "value": labels.FINALIZER},
        ]
    else:
        patch += [
            {"op": "test", "path": "/metadata/resourceVersion", "value": meta.get("resourceVersion")},
            {"op": "add", "path": "/metadata/finalizers", "value": [labels.FINALIZER]},
        ]
    return Finalizer(str(meta["name"]), patch)


@dataclass
class Decision:
    status: MemoryStoreStatus | None
    """The store's status after this reconcile; `None` when the store is gone or being deleted."""
    apply: list[Manifest] = field(default_factory=list)
    """Stamped, owned manifests to server-side apply, in apply order."""
    prune: list[plan.ObjectRef] = field(default_factory=list)
    """Children no longer rendered."""
    delete: list[plan.ObjectRef] = field(default_factory=list)
    """Children to delete before they can be made again (a failed restore Job to retry)."""
    grow: list[tuple[str, str]] = field(default_factory=list)
    """(claim, size): Qdrant's volumes to expand before the StatefulSet gets its new templates."""
    recreate: str | None = None
    """A StatefulSet to delete, orphaning its pods, because its volume templates change."""
    adopt: list[plan.ObjectRef] = field(default_factory=list)
    """Volumes and backups kept from a deleted store of this name, taken back."""
    create: list[Manifest] = field(default_factory=list)
    """Objects the operator makes once and does not own: the MemoryBackup taken before a Qdrant upgrade."""
    events: list[Event] = field(default_factory=list)
    backup_gauges: tuple[float | None, float | None] = (None, None)
    """Since when backups are scheduled, and the last success (Unix times), for the metrics."""
    finalizer: Finalizer | None = None
    """The operator's finalizer to put on the store, which does not have it yet."""

    @property
    def phase(self) -> str | None:
        return None if self.status is None else self.status.phase


def decide(
    snap: Snapshot,
    settings: RenderSettings,
    fresh: Credentials,
    now: str,
    minter: certificates.Minter | None = None,
) -> Decision:
    """One reconcile of the store in `snap`. `fresh` are keys to use for any key not yet generated,
    `minter` makes the certificates not yet generated (or due for renewal)."""
    body = snap.body
    if body["metadata"].get("deletionTimestamp"):
        return Decision(status=None)
    previous = previous_status(body)
    generation = body["metadata"].get("generation")
    try:
        store = MemoryStore.model_validate(body)
    except ValidationError as error:
        problem = Problem("InvalidSpec", f"the spec is invalid: {error.errors()[0]['msg']}")
        return refuse(body, previous, [problem], None, now)
    if is_paused(body):
        return Decision(status=status.paused(previous, generation, now))
    keys = resolve_credentials(store, snap, fresh)
    problems = validation.secret_problems(store, snap.secrets)
    if keys.problem is not None:
        problems.insert(0, keys.problem)
    decided = steps(store, snap, previous, settings, now, minter)
    restore, made, upgraded = decided.restore, decided.collection, decided.upgrade
    if upgraded.problem is not None:
        problems.append(upgraded.problem)
    problems += decided.tls.problems
    policies = selecting_policies(store, snap.policies)
    manifests = children_of(store, snap, settings, keys.credentials, decided)
    desired = desired_children(snap, manifests)
    live_sts = snap.child("StatefulSet", names.qdrant_statefulset_name(store))
    claims = vector_claims(snap, [live_sts, *(m for m in desired if m["kind"] == "StatefulSet")])
    problems += validation.check_spec(store, statefulset=live_sts, vector_claims=claims)
    if problems or keys.credentials is None:
        return refuse(body, previous, problems, keys.problem, now)
    decision = changes(desired, snap, claims)
    decision.delete = restore.delete + made.delete + upgraded.delete + decided.erasures.delete
    if upgraded.backup is not None:
        decision.create = [backup_render.upgrade_backup(store, qdrant_render.image(store, settings.images))]
    decision.adopt = retained(snap)
    decision.finalizer = finalizer_patch(body)
    decision.backup_gauges = backup_gauges(store, snap)
    decision.status = store_status(store, snap, previous, decision, decided, keys.secret_name, policies, now)
    decision.events = (
        restore_events(body, previous, restore)
        + new_warning(body, previous, made.condition, made.warning)
        + upgrade_events(body, previous, upgraded)
        + new_warning(body, previous, decided.erasures.condition, decided.erasures.warning)
        + refusal_cleared(body, previous, decision)
    )
    return decision


def previous_status(body: Mapping[str, Any]) -> MemoryStoreStatus:
    raw = body.get("status") or {}
    try:
        return MemoryStoreStatus.model_validate(raw)
    except ValidationError:
        # A status written by another version: keep what still parses, start over otherwise.
        return MemoryStoreStatus()


def is_paused(body: Mapping[str, Any]) -> bool:
    annotations = body.get("metadata", {}).get("annotations") or {}
    return bool((body.get("spec") or {}).get("paused")) or annotations.get(labels.PAUSED) == "true"


def refuse(
    body: Mapping[str, Any],
    previous: MemoryStoreStatus,
    problems: Sequence[Problem],
    credentials_problem: Problem | None,
    now: str,
) -> Decision:
    """Refuse the spec: condition, phase Failed, a Warning Event when the message is new."""
    new = status.failed(previous, problems, body["metadata"].get("generation"), now, credentials_problem)
    old_ready = status.find(previous.conditions, "Ready")
    new_ready = status.find(new.conditions, "Ready")
    assert new_ready is not None
    events = []
    if old_ready is None or old_ready.message != new_ready.message:
        reason = problems[0].reason if problems else "InvalidSpec"
        events.append(Event(body, reason, new_ready.message))
    return Decision(status=new, events=events)


def refusal_cleared(body: Mapping[str, Any], previous: MemoryStoreStatus, decision: Decision) -> list[Event]:
    """An Event when a refused spec is applied again."""
    if previous.phase != "Failed" or decision.phase == "Failed":
        return []
    return [Event(body, "Applied", "the spec is applied again", warning=False)]


def resolve_credentials(store: MemoryStore, snap: Snapshot, fresh: Credentials) -> credentials.Resolution:
    auth = store.spec.auth
    return credentials.resolve(
        store,
        generated_secret=None
        if auth.existing_secret
        else snap.secrets.get(names.credentials_secret_name(store)),
        qdrant_secret=snap.secrets.get(names.qdrant_secret_name(store)),
        existing_secret=snap.secrets.get(auth.existing_secret) if auth.existing_secret else None,
        generated_secret_name=names.credentials_secret_name(store),
        fresh=fresh,
    )


def selecting_policies(store: MemoryStore, policies: Sequence[Mapping[str, Any]]) -> list[MemoryPolicy]:
    """The live policies of the store's namespace whose selector matches the store's labels."""
    result = []
    for body in policies:
        if body.get("metadata", {}).get("deletionTimestamp"):
            continue
        try:
            policy = MemoryPolicy.model_validate(body)
        except ValidationError:
            continue
        if policy.spec.selector.matches(store.metadata.labels):
            result.append(policy)
    return sorted(result, key=lambda p: p.metadata.name)


def restore_decision(store: MemoryStore, snap: Snapshot, previous: MemoryStoreStatus) -> bootstrap.Bootstrap:
    source = store.spec.bootstrap.from_backup if store.spec.bootstrap else None
    job_name = names.restore_job_name(store)
    job = snap.child("Job", job_name)
    error = None
    if job is not None and results.job_finished(job) is False:
        message = results.termination_message(snap.job_pods.get(job_name, [])) or {}
        error = str(message["error"])[: results.MAX_ERROR] if message.get("error") else None
    backup = None
    if source is not None:
        backup = next((b for b in snap.backups if b["metadata"]["name"] == source.name), None)
    return bootstrap.decide(
        store,
        restored_from=previous.restored_from,
        backup=backup,
        job=job,
        job_error=error,
        generation=store.metadata.generation,
        retry=store.metadata.annotations.get(labels.RETRY_RESTORE),
    )


def directives(store: MemoryStore, snap: Snapshot, decided: Steps) -> Directives:
    """What the operator runs beyond the spec: the Jobs of backups, of a restore, of the collection and
    of a Qdrant upgrade, a server held until the restore and the collection are done, the nodes an
    upgrade has not reached yet, and the clients the server admits."""
    restore, made = decided.restore, decided.collection
    return Directives(
        backups=backups_to_run(store, snap),
        restore=restore.run_job,
        restore_attempt=restore.attempt,
        restore_source=restore_source(store, snap),
        collection=made.run_job,
        hold_server=restore.held is not None or made.hold_server,
        qdrant_partition=decided.upgrade.partition,
        upgrade_check=decided.upgrade.check,
        certificates=decided.tls.certificates,
        clients=grants.store_grants(
            store,
            snap.clients,
            snap.secrets,
            has_clients_secret=snap.child("Secret", names.clients_secret_name(store)) is not None,
        ),
        erasures=decided.erasures.run,
        reapply=decided.erasures.reapply,
        erasures_secret=decided.erasures.secret,
    )


def restore_source(store: MemoryStore, snap: Snapshot) -> BackupSource:
    """The store the backup to restore was taken of and its location, from its MemoryBackup."""
    source = store.spec.bootstrap.from_backup if store.spec.bootstrap else None
    backup = next((b for b in snap.backups if source and b["metadata"]["name"] == source.name), None)
    if backup is None:
        return BackupSource()
    return BackupSource(
        store=((backup.get("spec") or {}).get("storeRef") or {}).get("name"),
        location=(backup.get("status") or {}).get("location"),
    )


def store_backups(store: MemoryStore, backups: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The store's MemoryBackups, oldest first."""
    mine = [
        b
        for b in backups
        if ((b.get("spec") or {}).get("storeRef") or {}).get("name") == store.metadata.name
        and not b["metadata"].get("deletionTimestamp")
    ]
    return sorted(mine, key=lambda b: (b["metadata"].get("creationTimestamp") or "", b["metadata"]["name"]))


def backup_phase(backup: Mapping[str, Any]) -> str:
    return str((backup.get("status") or {}).get("phase") or "Pending")


def backups_to_run(store: MemoryStore, snap: Snapshot) -> list[str]:
    """The MemoryBackups whose Jobs exist or start now: one at a time, the oldest unfinished first."""
    if store.spec.backup is None:
        return []
    unfinished = [
        b["metadata"]["name"] for b in store_backups(store, snap.backups) if backup_phase(b) not in FINISHED
    ]
    jobs = {c["metadata"]["name"] for c in snap.of_kind("Job")}
    started = [name for name in unfinished if names.backup_job_name(name) in jobs]
    return started or unfinished[:1]


def children_of(
    store: MemoryStore,
    snap: Snapshot,
    settings: RenderSettings,
    keys: Credentials | None,
    decided: Steps,
) -> list[Manifest]:
    """What render/ makes of the store given what exists: exactly what `memory-operator render` prints
    for the same objects."""
    policies = selecting_policies(store, snap.policies)
    return render_store(store, policies, settings, keys, directives(store, snap, decided))


def desired_children(snap: Snapshot, manifests: Sequence[Manifest]) -> list[Manifest]:
    """The children owned (by the store; a backup's Job by its MemoryBackup, an erasure's by its
    MemoryErasure) and stamped."""
    owners = {
        labels.BACKUP: {b["metadata"]["name"]: b for b in snap.backups},
        labels.ERASURE: {e["metadata"]["name"]: e for e in snap.erasures},
    }
    desired = []
    for manifest in manifests:
        owner: Mapping[str, Any] | None = None
        if manifest["kind"] == "Job":
            job_labels = manifest["metadata"].get("labels") or {}
            owner = next((owners[k].get(job_labels[k]) for k in owners if k in job_labels), None)
        desired.append(plan.stamped(plan.owned(manifest, owner or snap.body)))
    return desired


def vector_claims(snap: Snapshot, statefulsets: Sequence[Mapping[str, Any] | None]) -> list[dict[str, Any]]:
    """Claims made from the volume templates of these StatefulSets (live and desired)."""
    patterns = [plan.claim_template_pattern(s) for s in statefulsets if s]
    return [
        c
        for c in snap.of_kind("PersistentVolumeClaim")
        if any(p.match(c["metadata"]["name"]) for p in patterns)
    ]


def changes(desired: Sequence[Manifest], snap: Snapshot, claims: Sequence[Mapping[str, Any]]) -> Decision:
    """What to write so that the children are as desired."""
    todo = plan.plan(desired, snap.children)
    decision = Decision(status=None, apply=todo.apply, prune=todo.prune)
    for manifest in todo.apply:
        if manifest["kind"] != "StatefulSet":
            continue
        live = snap.child("StatefulSet", manifest["metadata"]["name"])
        if plan.claim_templates_changed(manifest, live):
            decision.grow = plan.claims_to_grow(manifest, claims)
            decision.recreate = manifest["metadata"]["name"]
    return decision


def retained(snap: Snapshot) -> list[plan.ObjectRef]:
    """Volumes and backups of a deleted store of the same name: this store takes them back."""
    found = [c for c in snap.of_kind("PersistentVolumeClaim")] + list(snap.backups)
    return [
        plan.ObjectRef.of(obj)
        for obj in found
        if (obj["metadata"].get("labels") or {}).get(labels.RETAINED_FROM) == snap.name
    ]


def store_status(
    store: MemoryStore,
    snap: Snapshot,
    previous: MemoryStoreStatus,
    decision: Decision,
    decided: Steps,
    credentials_secret: str,
    policies: Sequence[MemoryPolicy],
    now: str,
) -> MemoryStoreStatus:
    applying = {m["kind"] for m in decision.apply}
    spec = store.spec
    restore, made = decided.restore, decided.collection
    live_sts = snap.child("StatefulSet", names.qdrant_statefulset_name(store))
    held = restore.held or (
        status.Held("Provisioning", "CollectionNotReady", made.condition.message if made.condition else "")
        if made.hold_server
        else None
    )
    server_replicas = 0 if held is not None else spec.server.replicas
    seen = status.Observed(
        generation=store.metadata.generation,
        vector=status.workload(
            live_sts,
            "Qdrant",
            spec.vector_store.replicas,
            applying="StatefulSet" in applying,
            partition=upgrade.live_partition(live_sts) if live_sts else 0,
        ),
        server=status.workload(
            snap.child("Deployment", names.server_deployment_name(store)),
            "memory server",
            server_replicas,
            applying="Deployment" in applying,
        ),
        qdrant_replicas=spec.vector_store.replicas,
        credentials_secret=credentials_secret,
        endpoints=Endpoints(
            server=names.server_url(store),
            mcp=names.server_url(store) + "/mcp/{client}/http/{user_id}",
            qdrant=names.qdrant_url(store),
        ),
        held=held,
        extra=[
            expiration_scheduled(policies, store.metadata.generation),
            *([restore.condition] if restore.condition else []),
            *([made.condition] if made.condition else []),
            *([decided.upgrade.condition] if decided.upgrade.condition else []),
            *([decided.tls.condition] if decided.tls.condition else []),
            *([decided.erasures.condition] if decided.erasures.condition else []),
            *backup_conditions(store, snap),
            *expiration_conditions(store, snap),
        ],
    )
    new = status.observed(previous, seen, now)
    return new.model_copy(
        update={
            "restored_from": restore.restored_from,
            "last_backup": last_backup(store, snap) or previous.last_backup,
            "last_expiration": last_expiration(store, snap) or previous.last_expiration,
        }
    )


def expiration_scheduled(policies: Sequence[MemoryPolicy], generation: int | None) -> Condition:
    active = sorted(p.metadata.name for p in policies if not p.spec.suspend)
    if active:
        message = "expiration scheduled by MemoryPolicy " + ", ".join(active)
        return status.condition("ExpirationScheduled", True, "Scheduled", message, generation)
    return status.condition(
        "ExpirationScheduled", False, "NoPolicy", "no MemoryPolicy selects this store", generation
    )


def backup_gauges(store: MemoryStore, snap: Snapshot) -> tuple[float | None, float | None]:
    """Since when the store's backups are scheduled (its creation; none when unscheduled), and when its
    newest successful backup completed."""
    backup = store.spec.backup
    scheduled = backup is not None and not backup.suspend and store.metadata.creation_timestamp
    since = status.parse_rfc3339(str(store.metadata.creation_timestamp)).timestamp() if scheduled else None
    completed = [
        str(b["status"]["stopTime"])
        for b in store_backups(store, snap.backups)
        if backup_phase(b) == "Completed" and (b.get("status") or {}).get("stopTime")
    ]
    return since, (status.parse_rfc3339(max(completed)).timestamp() if completed else None)


def last_backup(store: MemoryStore, snap: Snapshot) -> LastBackup | None:
    backups = store_backups(store, snap.backups)
    if not backups:
        return None
    newest = backups[-1]
    return LastBackup(
        name=newest["metadata"]["name"],
        phase=backup_phase(newest),
        completion_time=(newest.get("status") or {}).get("stopTime"),
    )


def backup_conditions(store: MemoryStore, snap: Snapshot) -> list[Condition]:
    """`LastBackupSucceeded`, from the newest finished backup of the store."""
    finished = [b for b in store_backups(store, snap.backups) if backup_phase(b) in FINISHED]
    if not finished:
        return []
    newest = finished[-1]
    name, backup_status = newest["metadata"]["name"], newest.get("status") or {}
    if backup_phase(newest) == "Completed":
        message = f"backup {name} completed at {backup_status.get('stopTime')}"
        return [status.condition("LastBackupSucceeded", True, "Completed", message, None)]
    message = f"backup {name} failed: {backup_status.get('error')}"
    return [status.condition("LastBackupSucceeded", False, "BackupFailed", message, None)]


def newest_run(store: MemoryStore, snap: Snapshot) -> tuple[str, Mapping[str, Any]] | None:
    """(policy, run) of the newest expiration run on the store, from the policies' `lastRuns`."""
    runs = [
        (str(p["metadata"]["name"]), run)
        for p in snap.policies
        for run in (p.get("status") or {}).get("lastRuns") or []
        if run.get("store") == store.metadata.name
    ]
    return max(runs, key=lambda item: (str(item[1].get("time") or ""), item[0])) if runs else None


def last_expiration(store: MemoryStore, snap: Snapshot) -> LastExpiration | None:
    found = newest_run(store, snap)
    if found is None:
        return None
    policy, run = found
    return LastExpiration(
        policy=policy,
        time=str(run.get("time") or ""),
        deleted=int(run.get("deleted") or 0),
        succeeded=bool(run.get("succeeded", True)),
    )


def expiration_conditions(store: MemoryStore, snap: Snapshot) -> list[Condition]:
    """`ExpirationSucceeded`, from the newest run of any policy on the store."""
    found = newest_run(store, snap)
    if found is None:
        return []
    policy, run = found
    when = run.get("time")
    if run.get("succeeded", True):
        verb = "would delete" if run.get("dryRun") else "deleted"
        message = f"policy {policy} {verb} {run.get('deleted', 0)} memories at {when}"
        return [status.condition("ExpirationSucceeded", True, "Succeeded", message, None)]
    message = f"policy {policy} failed at {when}: {run.get('error')}"
    return [status.condition("ExpirationSucceeded", False, "RunFailed", message, None)]


def new_warning(
    body: Mapping[str, Any],
    previous: MemoryStoreStatus,
    condition: Condition | None,
    warning: str | None,
) -> list[Event]:
    """A Warning when a component reports a problem its condition did not already say (the collection
    Job's, erasures a restore left out)."""
    if warning is None or condition is None:
        return []
    old = status.find(previous.conditions, condition.type)
    if old is not None and old.message == condition.message:
        return []
    return [Event(body, condition.reason, warning)]


def upgrade_events(
    body: Mapping[str, Any], previous: MemoryStoreStatus, upgraded: upgrade.Upgrade
) -> list[Event]:
    """An Event for each step of a Qdrant upgrade and its end (the condition's message changed), a
    Warning when it stopped; none for other rolls of the pod template."""
    if upgraded.condition is None:
        return []
    old = status.find(previous.conditions, upgrade.CONDITION)
    if old is None or old.message == upgraded.condition.message:
        return []
    if upgraded.condition.reason not in upgrade.STEPS and old.reason not in upgrade.STEPS:
        return []
    if upgraded.warning is not None:
        return [Event(body, upgraded.condition.reason, upgraded.warning)]
    return [Event(body, upgraded.condition.reason, upgraded.condition.message, warning=False)]


def restore_events(
    body: Mapping[str, Any], previous: MemoryStoreStatus, restore: bootstrap.Bootstrap
) -> list[Event]:
    """One Event per new restore outcome (the condition's message changed)."""
    if restore.condition is None:
        return []
    old = status.find(previous.conditions, bootstrap.CONDITION)
    if old is not None and old.message == restore.condition.message:
        return []
    reason, message = restore.condition.reason, restore.condition.message
    if restore.warning:
        return [Event(body, reason, message)]
    if restore.just_restored:
        return [Event(body, reason, message, warning=False)]
    return []
