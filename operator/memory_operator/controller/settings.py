"""Options of `memory-operator run` and the Kopf settings derived from them."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any, cast

import kopf

from memory_operator import labels
from memory_operator.api.common import GROUP
from memory_operator.controller import cache

# Kopf keeps its progress (and an earlier version kept the last-handled spec) under a subdomain of ours,
# so that our own annotations (e.g. memory-operator.io/paused) stay part of what Kopf compares to detect
# changes.
KOPF_PREFIX = f"kopf.{labels.PREFIX}"
# How long an object's worker waits for more events before it frees its slot. Kopf's default (5 s)
# admits a burst of new objects in waves; events of one object still come together within it.
IDLE_TIMEOUT_SECONDS = 1.0
# A backup or an erasure deleted while one of its Kopf timers runs keeps its finalizer until the timer
# returns; Kopf looks again after this long (its default, 60 s, holds every such deletion a minute).
TIMER_EXIT_POLL_SECONDS = 2.0
# How long Kopf waits for the watch to show its own patch of an object before it runs the object's
# handlers on what it has. Its default (5 s) is shorter than the watch's lag while hundreds of stores
# are created at once: the stale event then looked unhandled and ran a store's creation a second time.
CONSISTENCY_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class Options:
    namespaces: tuple[str, ...]
    all_namespaces: bool
    liveness_port: int
    metrics_port: int
    bind_address: str
    job_image: str | None
    operator_namespace: str | None
    log_format: str
    verbose: bool
    resync_seconds: float
    schedule_check_seconds: float
    peering: str | None
    peering_lifetime: int
    worker_limit: int | None
    qdrant_url_template: str | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Options:
        namespaces = tuple(ns for item in args.namespace or [] for ns in item.split(",") if ns)
        return cls(
            namespaces=namespaces,
            all_namespaces=bool(args.all_namespaces) or not namespaces,
            liveness_port=int(args.liveness_port),
            metrics_port=int(args.metrics_port),
            bind_address=args.bind_address,
            job_image=args.job_image or None,
            operator_namespace=args.operator_namespace or None,
            log_format=args.log_format,
            verbose=bool(args.verbose),
            resync_seconds=float(args.resync_seconds),
            schedule_check_seconds=float(args.schedule_check_seconds),
            peering=args.peering or None,
            peering_lifetime=int(args.peering_lifetime),
            worker_limit=int(args.worker_limit) if args.worker_limit else None,
            qdrant_url_template=getattr(args, "qdrant_url_template", None) or None,
        )


def apply_kopf_settings(
    settings: kopf.OperatorSettings, options: Options, diffbase: KeptDiffBaseStorage | None = None
) -> None:
    settings.persistence.finalizer = labels.FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=KOPF_PREFIX)
    settings.persistence.diffbase_storage = diffbase or kept_diffbase()
    # Silently dead watch streams are the most common failure of Kopf operators: reconnect regularly.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 30
    settings.watching.reconnect_backoff = 1.0
    settings.networking.request_timeout = 60
    settings.queueing.worker_limit = options.worker_limit
    settings.queueing.idle_timeout = IDLE_TIMEOUT_SECONDS
    settings.background.cancellation_polling = TIMER_EXIT_POLL_SECONDS
    settings.persistence.consistency_timeout = CONSISTENCY_TIMEOUT_SECONDS
    if options.peering:
        settings.peering.mandatory = True
        settings.peering.lifetime = options.peering_lifetime
    cache.configure_watches(settings)
    # Only explicit kopf.event()/kopf.warn() calls become Events, not every log line.
    settings.posting.loggers = False
    settings.posting.level = logging.INFO
    settings.posting.reporting_component = "memory-operator"
    settings.posting.event_name_prefix = "memory-operator-"


def kept_diffbase() -> KeptDiffBaseStorage:
    return KeptDiffBaseStorage(groups=(GROUP,), prefix=KOPF_PREFIX, key="last-handled-configuration")


# What Kopf's diff-base keeps of an object's metadata (and reads to name its annotation).
ESSENTIAL_METADATA = ("labels", "annotations", "ownerReferences")


class LeanDiffBaseStorage(kopf.AnnotationsDiffBaseStorage):
    """Kopf's last-handled-configuration annotation, its essence built only where it is used.

    Kopf builds an object's essence on every event of every watched kind by deep-copying the whole
    object, then deleting its status and all of its metadata but labels and annotations. Only the kinds
    with change handlers or timers use it: those of `groups` (the operator's own resources). The
    children, watched for the cache and their progress, get an empty one; the others' essence is
    Kopf's, built from a copy of only what it keeps."""

    def __init__(self, *, groups: Collection[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.groups = frozenset(groups)

    def build(self, *, body: kopf.Body, extra_fields: Iterable[Any] | None = None) -> kopf.BodyEssence:
        if str(body.get("apiVersion")).partition("/")[0] not in self.groups:
            return cast(kopf.BodyEssence, {})
        if extra_fields:  # fields of status or metadata a handler asked for: Kopf's own way
            return super().build(body=body, extra_fields=extra_fields)
        meta = body.get("metadata") or {}
        lean: dict[str, Any] = {k: v for k, v in body.items() if k not in ("metadata", "status")}
        lean["metadata"] = {key: meta[key] for key in ESSENTIAL_METADATA if key in meta}
        return super().build(body=kopf.Body(cast(kopf.RawBody, lean)))


class KeptDiffBaseStorage(LeanDiffBaseStorage):
    """The last-handled essence of each object kept in the operator's memory, by uid, instead of in an
    annotation of the object: Kopf would patch every store (and policy) once more after each handled
    change only to write it. After a restart none is known: Kopf sees each object as new, and its
    handler (the same for creation, change and resumption) converges it as it would on resuming. The
    annotation an earlier version wrote stays out of the essence (`build`) and is no longer read."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._kept: dict[str, kopf.BodyEssence] = {}

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return self._kept.get(str(body.get("metadata", {}).get("uid")))

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        self._kept[str(body.get("metadata", {}).get("uid"))] = essence

    def forget(self, uid: str) -> None:
        """The object is gone."""
        self._kept.pop(uid, None)
