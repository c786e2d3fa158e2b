"""Act: carry out a store's decision through the API, then report its status and Events."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import kopf
from kubernetes.client.exceptions import ApiException

from memory_operator import labels
from memory_operator.controller import metrics, status
from memory_operator.controller.child_events import STATUS_FIELDS
from memory_operator.controller.decide import Decision, Event, Finalizer
from memory_operator.controller.kube import (
    BACKUP,
    JSON_PATCH,
    PVC,
    RESOURCES,
    STATEFULSET,
    STORE,
    Kube,
    event_target,
)
from memory_operator.controller.plan import ObjectRef
from memory_operator.controller.validation import Problem
from memory_operator.render import apply_waves

logger = logging.getLogger("memory_operator.controller")

# Waiting for the garbage collector to orphan a StatefulSet's pods before applying it again.
ORPHAN_DELETE_POLLS = 60
ORPHAN_DELETE_POLL_SECONDS = 0.5
# The store's status fields the reconcile writes: all but those of writers of their own, `memoryCount`
# (counting) and `lastCanary` (the canary's results).
COUNT_FIELD = "memoryCount"
CANARY_FIELD = "lastCanary"
OTHER_WRITERS_FIELDS = (COUNT_FIELD, CANARY_FIELD)


Written = Callable[[Mapping[str, Any]], None]


async def act(
    kube: Kube, namespace: str, decision: Decision, trigger: str, written: Written
) -> Problem | None:
    """Apply, prune, delete and adopt as decided; a problem when the cluster refuses to grow a volume.
    `written` is told each object whose status a reconcile reads (`child_events.STATUS_FIELDS`) as an
    apply or a create left it."""
    if decision.recreate is not None:
        refused = await grow_claims(kube, namespace, decision.grow)
        if refused is not None:
            return refused
        await recreate_orphaning(kube, namespace, decision.recreate, trigger)
    for ref in decision.delete:
        logger.info("deleting %s %s/%s", ref.kind, namespace, ref.name)
        await kube.delete(RESOURCES[(ref.api_version, ref.kind)], namespace, ref.name)
    # The finalizer goes on with the first wave: before the StatefulSet, whose volumes release keeps or
    # deletes, and without a round of its own.
    finalize = [] if decision.finalizer is None else [add_finalizer(kube, namespace, decision.finalizer)]
    for index, wave in enumerate(apply_waves(decision.apply) or [[]]):
        await apply_together(kube, namespace, wave, trigger, written, also=finalize if index == 0 else [])
    if trigger == "timer" and decision.apply:
        metrics.DRIFT_REPAIRS.inc(len(decision.apply))
    for ref in decision.prune:
        logger.info("pruning %s %s/%s", ref.kind, namespace, ref.name)
        await kube.delete(RESOURCES[(ref.api_version, ref.kind)], namespace, ref.name)
    for ref in decision.adopt:
        await adopt(kube, namespace, ref)
    for manifest in decision.create:
        logger.info("creating %s %s/%s", manifest["kind"], namespace, manifest["metadata"]["name"])
        created = await kube.create(manifest)
        if created is not None:
            written(created)
    return None


async def apply_together(
    kube: Kube,
    namespace: str,
    wave: list[Mapping[str, Any]],
    trigger: str,
    written: Written,
    also: Sequence[Awaitable[None]] = (),
) -> None:
    """Apply every manifest of a wave at once (and run `also` with them): a store's reconcile waits for
    its slowest child, not for the sum of them (a Service's cluster IP is allocated one at a time
    cluster-wide). `written` is told each object as soon as it is applied, before the watch's echo of it
    can count as news. Raises the first failure, in the wave's order, once every apply has answered
    (none is left running)."""

    async def apply(manifest: Mapping[str, Any]) -> None:
        logger.info(
            "applying %s %s/%s",
            manifest["kind"],
            namespace,
            manifest["metadata"]["name"],
            extra={"trigger": trigger},
        )
        if manifest["kind"] in STATUS_FIELDS:
            written(await kube.apply(manifest))
        else:  # nothing reads the answer
            await kube.apply_unanswered(manifest)

    for result in await asyncio.gather(*(apply(m) for m in wave), *also, return_exceptions=True):
        if isinstance(result, BaseException):
            raise result


async def add_finalizer(kube: Kube, namespace: str, finalizer: Finalizer) -> None:
    """Put the operator's finalizer on the store. A store that changed since it was read (its finalizers
    or, with none, anything), is being deleted or is gone gets no more children from this reconcile: it
    is tried again (Kopf retries the handler) from what the watch shows by then."""
    try:
        added = await kube.patch(STORE, namespace, finalizer.store, finalizer.patch, content_type=JSON_PATCH)
    except ApiException as error:
        if error.status not in (409, 422):
            raise
        added = None
    if added is None:
        raise kopf.TemporaryError(
            f"MemoryStore {namespace}/{finalizer.store} changed while its finalizer was added", delay=1
        )


async def grow_claims(kube: Kube, namespace: str, claims: list[tuple[str, str]]) -> Problem | None:
    """Request the templates' new size on every existing claim; why not, if the cluster refuses."""
    for claim_name, size in claims:
        logger.info("expanding PersistentVolumeClaim %s/%s to %s", namespace, claim_name, size)
        try:
            await kube.patch(
                PVC, namespace, claim_name, {"spec": {"resources": {"requests": {"storage": size}}}}
            )
        except ApiException as error:
            if error.status not in (403, 422):
                raise
            return Problem(
                "StorageExpansionRefused",
                f"PersistentVolumeClaim {claim_name} cannot grow to {size} ({error.reason}); its "
                "StorageClass must allow volume expansion (allowVolumeExpansion: true)",
            )
    return None


async def recreate_orphaning(kube: Kube, namespace: str, name: str, trigger: str) -> None:
    """Delete a StatefulSet but not its pods, so that it can be applied again with new templates."""
    logger.info(
        "recreating StatefulSet %s/%s for its new volume claim templates (pods keep running)",
        namespace,
        name,
        extra={"trigger": trigger},
    )
    await kube.delete(STATEFULSET, namespace, name, propagation="Orphan")
    for _ in range(ORPHAN_DELETE_POLLS):
        if await kube.get(STATEFULSET, namespace, name) is None:
            return
        await asyncio.sleep(ORPHAN_DELETE_POLL_SECONDS)
    raise kopf.TemporaryError(f"StatefulSet {namespace}/{name} is still being deleted", delay=10)


async def adopt(kube: Kube, namespace: str, ref: ObjectRef) -> None:
    """A volume or backup kept from a deleted store of this name belongs to this one again."""
    resource = PVC if ref.kind == "PersistentVolumeClaim" else BACKUP
    logger.info("adopting retained %s %s/%s", ref.kind, namespace, ref.name)
    await kube.patch(resource, namespace, ref.name, {"metadata": {"labels": {labels.RETAINED_FROM: None}}})


async def report(kube: Kube, body: Mapping[str, Any], decision: Decision) -> None:
    """Write the store's status when its meaning changed, and post the decided Events."""
    meta = body["metadata"]
    if decision.status is not None:
        new = decision.status.wire()
        old = dict(body.get("status") or {})
        for field in OTHER_WRITERS_FIELDS:
            new.pop(field, None)
            old.pop(field, None)
        if status.changed(old, new):
            await kube.apply_status(STORE, meta["namespace"], meta["name"], new)
    for event in decision.events:
        post(event)
    if decision.phase == "Failed" and decision.status is not None:
        ready = status.find(decision.status.conditions, "Ready")
        logger.warning(
            "store %s/%s cannot be applied: %s",
            meta["namespace"],
            meta["name"],
            ready.message if ready else "",
        )


def post(event: Event) -> None:
    if event.warning:
        kopf.warn(event_target(event.target), reason=event.reason, message=event.message)
    else:
        kopf.info(event_target(event.target), reason=event.reason, message=event.message)
