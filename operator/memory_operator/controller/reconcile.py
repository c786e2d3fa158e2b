"""One idempotent reconcile of a MemoryStore, and the release of its volumes and backups on deletion."""

from __future__ import annotations

import asyncio
import collections
import logging
import re
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager, suppress
from typing import Any

import kopf
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from memory_operator.api.policy import MemoryPolicy
from memory_operator.api.store import DeletionPolicy, MemoryStore
from memory_operator.controller import (
    bootstrap,
    counting,
    credentials,
    metrics,
    plan,
    results,
    status,
    validation,
)
from memory_operator.controller.kube import (
    BACKUP,
    JOB,
    POD,
    POLICY,
    PVC,
    RESOURCES,
    SECRET,
    STATEFULSET,
    STORE,
    Kube,
    Resource,
    event_target,
    namespace_terminating,
    selector,
)
from memory_operator.controller.settings import (
    MANAGED_BY,
    PAUSED_ANNOTATION,
    RETAINED_FROM_LABEL,
    STORE_LABEL,
)
from memory_operator.render import RenderSettings, names, render_store

logger = logging.getLogger("memory_operator.controller")

# Waiting for the garbage collector to orphan a StatefulSet's pods before applying it again.
ORPHAN_DELETE_POLLS = 60
ORPHAN_DELETE_POLL_SECONDS = 0.5

# Kinds listed by the store's labels to find children to compare and to prune.
# Jobs (the restore Job) are listed to be compared, never pruned.
LISTED_KINDS = sorted({kind for kind in plan.PRUNABLE_KINDS} | {"Secret", "PersistentVolumeClaim", "Job"})


def _listed_resources() -> list[Resource]:
    return [r for r in RESOURCES.values() if r.kind in LISTED_KINDS]


def store_selector(name: str) -> str:
    return selector({**MANAGED_BY, STORE_LABEL: name})


def is_paused(body: Mapping[str, Any]) -> bool:
    annotations = body.get("metadata", {}).get("annotations") or {}
    return bool((body.get("spec") or {}).get("paused")) or annotations.get(PAUSED_ANNOTATION) == "true"


def selecting_policies(store: MemoryStore, policies: list[dict[str, Any]]) -> list[MemoryPolicy]:
    """The live policies of the store's namespace whose selector matches the store's labels."""
    result = []
    for body in policies:
        if body.get("metadata", {}).get("deletionTimestamp"):
            continue
        policy = MemoryPolicy.model_validate(body)
        if policy.spec.selector.matches(store.metadata.labels):
            result.append(policy)
    return sorted(result, key=lambda p: p.metadata.name)


def claim_template_pattern(statefulset: Mapping[str, Any]) -> re.Pattern[str]:
    """Names of the claims a StatefulSet makes from its volume templates: `<template>-<sts>-<ordinal>`."""
    sts_name = statefulset["metadata"]["name"]
    templates = [t["metadata"]["name"] for t in statefulset.get("spec", {}).get("volumeClaimTemplates") or []]
    alternatives = "|".join(re.escape(t) for t in templates) or "(?!)"
    return re.compile(rf"^(?:{alternatives})-{re.escape(sts_name)}-\d+$")


class Reconciler:
    """Converges stores; one reconcile at a time per store."""

    def __init__(
        self, kube: Kube, render_settings: RenderSettings, qdrant_url_template: str | None = None
    ) -> None:
        self.kube = kube
        self.render_settings = render_settings
        self.qdrant_url_template = qdrant_url_template
        self._locks: dict[tuple[str, str], asyncio.Lock] = collections.defaultdict(asyncio.Lock)
        self._queued: set[tuple[str, str]] = set()

    @asynccontextmanager
    async def locked(self, namespace: str, name: str) -> AsyncIterator[None]:
        async with self._locks[(namespace, name)]:
            yield

    async def reconcile_soon(self, namespace: str, name: str, *, trigger: str) -> None:
        """Reconcile unless a reconcile of the store is already waiting: bursts of events cost one."""
        key = (namespace, name)
        if key in self._queued:
            return
        self._queued.add(key)
        try:
            await self.reconcile(namespace, name, trigger=trigger, _queued_key=key)
        finally:
            self._queued.discard(key)

    async def reconcile(
        self, namespace: str, name: str, *, trigger: str, _queued_key: tuple[str, str] | None = None
    ) -> str | None:
        """Converge one store; returns its phase, or `None` when it is gone or being deleted."""
        started = time.monotonic()
        async with self.locked(namespace, name):
            # Once the lock is held, later events must queue another reconcile: they may be newer.
            self._queued.discard(_queued_key or ("", ""))
            try:
                phase = await self._reconcile(namespace, name, trigger)
            except ApiException as error:
                if not namespace_terminating(error):
                    metrics.RECONCILES.labels(result="error").inc()
                    raise
                logger.info("namespace %s is being deleted: not converging %s", namespace, name)
                phase = None
            except Exception:
                metrics.RECONCILES.labels(result="error").inc()
                raise
            finally:
                metrics.RECONCILE_DURATION.observe(time.monotonic() - started)
        result = {"Failed": "invalid", "Paused": "paused", None: "gone"}.get(phase, "success")
        metrics.RECONCILES.labels(result=result).inc()
        metrics.PHASE_BOOK.record(namespace, name, phase)
        return phase

    async def _reconcile(self, namespace: str, name: str, trigger: str) -> str | None:
        kube = self.kube
        body = await kube.get(STORE, namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return None
        previous: dict[str, Any] = dict(body.get("status") or {})
        generation = body["metadata"].get("generation")
        now = status.now_rfc3339()
        try:
            store = MemoryStore.model_validate(body)
        except ValidationError as error:
            problem = validation.Problem("InvalidSpec", f"the spec is invalid: {error.errors()[0]['msg']}")
            return await self._fail(body, previous, [problem], None, generation, now)

        if is_paused(body):
            new = status.paused_status(previous, generation, now)
            await self._write_status(namespace, name, previous, new)
            return "Paused"

        # Keys: read what exists, generate only what is missing, adopt the user's Secret when named.
        auth = store.spec.auth
        generated_name = names.credentials_secret_name(store)
        resolution = credentials.resolve(
            store,
            generated_secret=None
            if auth.existing_secret
            else await kube.get(SECRET, namespace, generated_name),
            qdrant_secret=await kube.get(SECRET, namespace, names.qdrant_secret_name(store)),
            existing_secret=(
                await kube.get(SECRET, namespace, auth.existing_secret) if auth.existing_secret else None
            ),
            generated_secret_name=generated_name,
        )
        referenced = {
            ref_name: await kube.get(SECRET, namespace, ref_name)
            for ref_name, _, _ in validation.referenced_secrets(store)
        }
        problems = validation.secret_problems(store, referenced)
        if resolution.problem is not None:
            problems.insert(0, resolution.problem)

        all_policies = await kube.list(POLICY, namespace)
        policies = selecting_policies(store, all_policies)
        await self._refresh_policy_matches(name, all_policies, {p.metadata.name for p in policies})
        restore = await self._bootstrap(store, previous, generation)
        rendered = render_store(store, policies, self.render_settings, resolution.credentials)
        desired = [plan.stamped(plan.owned(m, body)) for m in bootstrap.shape(rendered, restore)]
        live_sts = await kube.get(STATEFULSET, namespace, names.qdrant_statefulset_name(store))
        claims = await self._vector_claims(namespace, [live_sts, *self._statefulsets(desired)])
        problems += validation.check_spec(
            store,
            statefulset=live_sts,
            vector_claims=claims,
            annotations=body["metadata"].get("annotations") or {},
        )
        if problems or resolution.credentials is None:
            return await self._fail(body, previous, problems, resolution.problem, generation, now)

        existing: list[dict[str, Any]] = []
        for resource in _listed_resources():
            existing += await kube.list(resource, namespace, store_selector(name))
        todo = plan.plan(desired, existing)
        live = {plan.ObjectRef.of(obj): obj for obj in existing}
        for manifest in todo.apply:
            ref = plan.ObjectRef.of(manifest)
            if manifest["kind"] == "StatefulSet" and plan.claim_templates_changed(manifest, live.get(ref)):
                refused = await self._grow_claims(namespace, manifest, claims)
                if refused is not None:
                    return await self._fail(body, previous, [refused], None, generation, now)
                await self._recreate_orphaning(namespace, ref.name, trigger)
                live.pop(ref, None)
        for manifest in todo.apply:
            ref = plan.ObjectRef.of(manifest)
            logger.info(
                "applying %s %s/%s",
                manifest["kind"],
                namespace,
                ref.name,
                extra={"store": name, "trigger": trigger},
            )
            live[ref] = await kube.apply(manifest)
        if trigger == "timer" and todo.apply:
            metrics.DRIFT_REPAIRS.inc(len(todo.apply))
        for ref in todo.prune:
            logger.info("pruning %s %s/%s", ref.kind, namespace, ref.name, extra={"store": name})
            await kube.delete(RESOURCES[(ref.api_version, ref.kind)], namespace, ref.name)
            live.pop(ref, None)

        await self._adopt_retained(namespace, name)
        await self._remember_immutable(body, store)

        sts = live.get(self._ref(desired, "StatefulSet"))
        deployment = live.get(self._ref(desired, "Deployment"))
        active = [p.metadata.name for p in policies if not p.spec.suspend]
        new = status.observed_status(
            previous,
            generation=generation,
            statefulset=sts,
            deployment=deployment,
            qdrant_replicas=store.spec.vector_store.replicas,
            server_replicas=store.spec.server.replicas,
            credentials_secret=resolution.secret_name,
            endpoints={
                "server": names.server_url(store),
                "mcp": names.server_url(store) + "/mcp/{client}/http/{user_id}",
                "qdrant": names.qdrant_url(store),
            },
            expiration=status.expiration_condition(active, generation),
            now=now,
            held=restore.held,
            extra=[restore.condition] if restore.condition else [],
        )
        if restore.restored_from is not None:
            new["restoredFrom"] = restore.restored_from
        if status.condition_true(new, "VectorStoreReady"):
            count = await counting.count_points(
                counting.qdrant_base_url(store, self.qdrant_url_template),
                store.spec.vector_store.collection.name,
                resolution.credentials.qdrant_api_key,
            )
            if count is not None:
                new["memoryCount"] = count
        self._announce_restore(body, previous, restore)
        await self._write_status(namespace, name, previous, new)
        return str(new["phase"])

    async def _bootstrap(
        self, store: MemoryStore, previous: Mapping[str, Any], generation: int | None
    ) -> bootstrap.Bootstrap:
        """Read what the restore decision needs: nothing once the store was restored."""
        source = store.spec.bootstrap.from_backup if store.spec.bootstrap else None
        restored_from = previous.get("restoredFrom")
        backup = job = None
        job_error = None
        if source is not None and restored_from != source.name:
            namespace = store.metadata.namespace
            backup = await self.kube.get(BACKUP, namespace, source.name)
            job_name = names.restore_job_name(store)
            job = await self.kube.get(JOB, namespace, job_name)
            if job is not None and results.job_finished(job) is False:
                pods = await self.kube.list(POD, namespace, selector({"job-name": job_name}))
                message = results.termination_message(pods) or {}
                job_error = str(message["error"])[: results.MAX_ERROR] if message.get("error") else None
        return bootstrap.decide(
            store,
            restored_from=restored_from,
            backup=backup,
            job=job,
            job_error=job_error,
            generation=generation,
        )

    @staticmethod
    def _announce_restore(
        body: Mapping[str, Any], previous: Mapping[str, Any], restore: bootstrap.Bootstrap
    ) -> None:
        """One Event per new restore outcome (the condition's message changed)."""
        if restore.condition is None:
            return
        old = {c["type"]: c for c in previous.get("conditions") or []}.get(bootstrap.CONDITION, {})
        if old.get("message") == restore.condition["message"]:
            return
        reason, message = restore.condition["reason"], restore.condition["message"]
        if restore.warning:
            kopf.warn(event_target(body), reason=reason, message=message)
        elif restore.just_restored:
            kopf.info(event_target(body), reason=reason, message=message)

    @staticmethod
    def _statefulsets(desired: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [m for m in desired if m["kind"] == "StatefulSet"]

    @staticmethod
    def _ref(desired: list[dict[str, Any]], kind: str) -> plan.ObjectRef:
        for manifest in desired:
            if manifest["kind"] == kind:
                return plan.ObjectRef.of(manifest)
        return plan.ObjectRef("", kind, "", "")

    async def _refresh_policy_matches(
        self, store_name: str, policies: list[dict[str, Any]], selecting: set[str]
    ) -> None:
        """Keep each policy's `matchedStores` true of this store when the store's labels change."""
        for policy in policies:
            meta = policy["metadata"]
            matched = list((policy.get("status") or {}).get("matchedStores") or [])
            updated = plan.with_member(matched, store_name, meta["name"] in selecting)
            if updated != matched and not meta.get("deletionTimestamp"):
                await self.kube.patch_status(
                    POLICY, meta["namespace"], meta["name"], {"matchedStores": updated}
                )

    async def _grow_claims(
        self, namespace: str, statefulset: Mapping[str, Any], claims: list[dict[str, Any]]
    ) -> validation.Problem | None:
        """Request the templates' new size on every existing claim; why not, if the cluster refuses."""
        for claim_name, size in plan.claims_to_grow(statefulset, claims):
            logger.info("expanding PersistentVolumeClaim %s/%s to %s", namespace, claim_name, size)
            try:
                await self.kube.patch(
                    PVC, namespace, claim_name, {"spec": {"resources": {"requests": {"storage": size}}}}
                )
            except ApiException as error:
                if error.status not in (403, 422):
                    raise
                return validation.Problem(
                    "StorageExpansionRefused",
                    f"PersistentVolumeClaim {claim_name} cannot grow to {size} ({error.reason}); its "
                    "StorageClass must allow volume expansion (allowVolumeExpansion: true)",
                )
        return None

    async def _recreate_orphaning(self, namespace: str, name: str, trigger: str) -> None:
        """Delete a StatefulSet but not its pods, so that it can be applied again with new templates."""
        logger.info(
            "recreating StatefulSet %s/%s for its new volume claim templates (pods keep running)",
            namespace,
            name,
            extra={"trigger": trigger},
        )
        await self.kube.delete(STATEFULSET, namespace, name, propagation="Orphan")
        for _ in range(ORPHAN_DELETE_POLLS):
            if await self.kube.get(STATEFULSET, namespace, name) is None:
                return
            await asyncio.sleep(ORPHAN_DELETE_POLL_SECONDS)
        raise kopf.TemporaryError(f"StatefulSet {namespace}/{name} is still being deleted", delay=10)

    async def _vector_claims(
        self, namespace: str, statefulsets: list[dict[str, Any] | None]
    ) -> list[dict[str, Any]]:
        patterns = [claim_template_pattern(s) for s in statefulsets if s]
        if not patterns:
            return []
        claims = await self.kube.list(PVC, namespace)
        return [c for c in claims if any(p.match(c["metadata"]["name"]) for p in patterns)]

    async def _fail(
        self,
        body: Mapping[str, Any],
        previous: dict[str, Any],
        problems: list[validation.Problem],
        credentials_problem: validation.Problem | None,
        generation: int | None,
        now: str,
    ) -> str:
        """Refuse the spec: condition, phase Failed, one Warning Event per new message; no retry loop."""
        meta = body["metadata"]
        new = status.failed_status(previous, problems, generation, now, credentials_problem)
        old_ready = {c["type"]: c for c in previous.get("conditions") or []}.get("Ready", {})
        new_ready = {c["type"]: c for c in new["conditions"]}["Ready"]
        if old_ready.get("message") != new_ready["message"]:
            kopf.warn(
                event_target(body),
                reason=problems[0].reason if problems else "InvalidSpec",
                message=new_ready["message"],
            )
        logger.warning(
            "store %s/%s cannot be applied: %s", meta["namespace"], meta["name"], new_ready["message"]
        )
        await self._write_status(meta["namespace"], meta["name"], previous, new)
        return "Failed"

    async def _write_status(
        self, namespace: str, name: str, previous: Mapping[str, Any], new: Mapping[str, Any]
    ) -> None:
        if status.changed(previous, new):
            await self.kube.patch_status(STORE, namespace, name, new)

    async def _remember_immutable(self, body: Mapping[str, Any], store: MemoryStore) -> None:
        encoded = validation.encode_immutable(validation.immutable_fields(store))
        annotations = body["metadata"].get("annotations") or {}
        if annotations.get(validation.APPLIED_SPEC_ANNOTATION) != encoded:
            await self.kube.patch(
                STORE,
                store.metadata.namespace,
                store.metadata.name,
                {"metadata": {"annotations": {validation.APPLIED_SPEC_ANNOTATION: encoded}}},
            )

    async def _adopt_retained(self, namespace: str, name: str) -> None:
        """Volumes and backups kept from a deleted store of the same name belong to this one again."""
        retained = selector({RETAINED_FROM_LABEL: name})
        for resource in (PVC, BACKUP):
            for obj in await self.kube.list(resource, namespace, retained):
                logger.info("adopting retained %s %s/%s", resource.kind, namespace, obj["metadata"]["name"])
                await self.kube.patch(
                    resource,
                    namespace,
                    obj["metadata"]["name"],
                    {"metadata": {"labels": {RETAINED_FROM_LABEL: None}}},
                )

    async def release(self, body: Mapping[str, Any]) -> None:
        """On deletion: keep (orphan and label) or delete the store's volumes and backups."""
        meta = body["metadata"]
        namespace, name, uid = meta["namespace"], meta["name"], meta["uid"]
        policy = (body.get("spec") or {}).get("deletionPolicy", DeletionPolicy.Retain.value)
        async with self.locked(namespace, name):
            owners = {uid}
            sts_name = None
            with suppress(ValidationError):
                sts_name = names.qdrant_statefulset_name(MemoryStore.model_validate(body))
            sts = await self.kube.get(STATEFULSET, namespace, sts_name) if sts_name else None
            if sts is not None:
                owners.add(sts["metadata"]["uid"])
            claims = [
                c
                for c in await self.kube.list(PVC, namespace)
                if (sts is not None and claim_template_pattern(sts).match(c["metadata"]["name"]))
                or any(ref.get("uid") in owners for ref in c["metadata"].get("ownerReferences") or [])
                or (c["metadata"].get("labels") or {}).get(STORE_LABEL) == name
            ]
            backups = [
                b
                for b in await self.kube.list(BACKUP, namespace)
                if ((b.get("spec") or {}).get("storeRef") or {}).get("name") == name
            ]
            await self._refresh_policy_matches(name, await self.kube.list(POLICY, namespace), set())
            for resource, objs in ((PVC, claims), (BACKUP, backups)):
                for obj in objs:
                    obj_name = obj["metadata"]["name"]
                    if policy == DeletionPolicy.Delete.value:
                        logger.info("deleting %s %s/%s with its store", resource.kind, namespace, obj_name)
                        await self.kube.delete(resource, namespace, obj_name)
                    else:
                        logger.info("retaining %s %s/%s", resource.kind, namespace, obj_name)
                        refs = [
                            ref
                            for ref in obj["metadata"].get("ownerReferences") or []
                            if ref.get("uid") not in owners
                        ]
                        await self.kube.patch(
                            resource,
                            namespace,
                            obj_name,
                            {"metadata": {"ownerReferences": refs, "labels": {RETAINED_FROM_LABEL: name}}},
                        )
        metrics.PHASE_BOOK.record(namespace, name, None)

    async def update_store_status(
        self,
        namespace: str,
        name: str,
        fields: Mapping[str, Any],
        conditions: list[status.Condition],
    ) -> dict[str, Any] | None:
        """Set some status fields and conditions of a store, keeping the rest; `None` if it is gone."""
        async with self.locked(namespace, name):
            body = await self.kube.get(STORE, namespace, name)
            if body is None:
                return None
            previous = dict(body.get("status") or {})
            new = {**previous, **fields}
            new["conditions"] = status.merge_conditions(
                previous.get("conditions") or [], conditions, status.now_rfc3339()
            )
            await self._write_status(namespace, name, previous, new)
            return body
